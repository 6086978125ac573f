package bench

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Per-process cost (issue 13): what one sendmail call costs a PHP site or
// a cron host, next to a Go hello-world and a minimal Go SMTP client
// built the same way (static, -trimpath). Each figure is the median of
// BENCH_PROC_REPS runs, wall time from start to exit and CPU time (user
// + system, from the child's rusage), straight to the server: no proxy.

// helloSrc is the yardstick for start-up: a Go program that prints.
const helloSrc = `package main

import "fmt"

func main() { fmt.Println("hello") }
`

// miniSrc is the yardstick for a send: net/smtp from the standard
// library, STARTTLS with the given CA and AUTH PLAIN when asked, one
// message from stdin, QUIT. No config, no queue, no rewriting.
const miniSrc = `package main

import (
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/smtp"
	"os"
)

// usage: mini addr from rcpt [ca user pass]
func main() {
	a := os.Args[1:]
	msg, err := io.ReadAll(os.Stdin)
	check(err)
	c, err := smtp.Dial(a[0])
	check(err)
	check(c.Hello("bench.local"))
	if len(a) > 3 {
		pem, err := os.ReadFile(a[3])
		check(err)
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		check(c.StartTLS(&tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}))
		check(c.Auth(smtp.PlainAuth("", a[4], a[5], "127.0.0.1")))
	}
	check(c.Mail(a[1]))
	check(c.Rcpt(a[2]))
	w, err := c.Data()
	check(err)
	_, err = w.Write(msg)
	check(err)
	check(w.Close())
	check(c.Quit())
}

func check(err error) {
	if err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		os.Exit(1)
	}
}
`

// buildYardstick builds src as a static program under env.dir.
func buildYardstick(name, src string) (string, error) {
	dir := filepath.Join(env.dir, name+"-src")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "main.go"), []byte(src), 0o644); err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, "go.mod"), []byte("module "+name+"\n\ngo 1.22\n"), 0o644); err != nil {
		return "", err
	}
	bin := filepath.Join(env.dir, name)
	cmd := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-trimpath", "-o", bin, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOFLAGS=", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build %s: %v\n%s", name, err, out)
	}
	return bin, nil
}

// procCost is the median wall and CPU time of one command.
type procCost struct {
	wall, cpu time.Duration
	err       error
}

func (p procCost) cell() string {
	if p.err != nil {
		return "FAIL"
	}
	return fmt.Sprintf("%5.1f / %4.1f ms", ms(p.wall), ms(p.cpu))
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// measureProc runs argv reps times with stdin from file (none if "") and
// returns the medians; check, if set, runs after each run.
func measureProc(argv []string, stdin string, reps int, check func() error) procCost {
	var walls, cpus []time.Duration
	for range reps {
		cmd := exec.Command(argv[0], argv[1:]...)
		if stdin != "" {
			f, err := os.Open(stdin)
			if err != nil {
				return procCost{err: err}
			}
			cmd.Stdin = f
			defer f.Close()
		}
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		start := time.Now()
		err := cmd.Run()
		wall := time.Since(start)
		if err != nil {
			return procCost{err: fmt.Errorf("%s: %v: %s", filepath.Base(argv[0]), err, out.String())}
		}
		if check != nil {
			if err := check(); err != nil {
				return procCost{err: err}
			}
		}
		walls = append(walls, wall)
		cpus = append(cpus, cmd.ProcessState.UserTime()+cmd.ProcessState.SystemTime())
	}
	return procCost{wall: median(walls), cpu: median(cpus)}
}

// BenchmarkProcessCost prints the per-process table: relaymail, msmtp
// and the yardstick side by side, with relaymail's ratio to the
// yardstick and issue 13's targets.
func BenchmarkProcessCost(b *testing.B) {
	requireSetup(b)
	reps := intEnv(b, "BENCH_PROC_REPS", 30)
	hello, err := buildYardstick("hello", helloSrc)
	if err != nil {
		b.Fatal(err)
	}
	mini, err := buildYardstick("minismtp", miniSrc)
	if err != nil {
		b.Fatal(err)
	}
	body := "From: " + benchFrom + "\nTo: rcpt1@example.com\nSubject: process cost\n\n" +
		strings.Repeat("The quick brown fox jumps over the lazy dog, once more.\n", 36)
	msgFile := filepath.Join(env.dir, "proc-2k.eml")
	if err := os.WriteFile(msgFile, []byte(body[:2047]+"\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	rcpts := []string{"rcpt1@example.com"}

	type row struct {
		name                 string
		relaymail, msmtp, ys procCost
		ysName               string
		target               float64 // relaymail wall <= target x yardstick wall
	}
	var rows []row
	loadBefore := loadAvg()
	for range b.N {
		rows = rows[:0]
		rows = append(rows, row{name: "--version / hello-world", ysName: "Go hello-world",
			relaymail: measureProc([]string{env.relaymail, "--version"}, "", reps, nil),
			ys:        measureProc([]string{hello}, "", reps, nil), target: 1.5})
		for _, tls := range []bool{false, true} {
			srv := startServer(b, tls, tls, serverTimeout)
			sh := smarthost{host: "127.0.0.1", port: srv.Port(), tls: tls, auth: tls}
			if tls {
				if sh.caFile, err = writeCA(env.dir, srv); err != nil {
					b.Fatal(err)
				}
			}
			sent := func(n int) func() error {
				return func() error {
					if got := len(srv.Messages()); got != n {
						return fmt.Errorf("server holds %d messages, want %d", got, n)
					}
					return nil
				}
			}
			count := 0
			next := func() func() error { count++; return sent(count) }
			measure := func(argv []string) procCost {
				var p procCost
				var walls, cpus []time.Duration
				for range reps {
					p = measureProc(argv, msgFile, 1, next())
					if p.err != nil {
						return p
					}
					walls, cpus = append(walls, p.wall), append(cpus, p.cpu)
				}
				return procCost{wall: median(walls), cpu: median(cpus)}
			}
			r := row{name: "2 KB, plaintext", ysName: "Go hello-world", target: 1.5}
			miniArgv := []string{mini, srv.Addr(), benchFrom, rcpts[0]}
			if tls {
				r = row{name: "2 KB, STARTTLS + AUTH PLAIN", ysName: "minimal Go client", target: 1.5}
				miniArgv = append(miniArgv, sh.caFile, benchUser, benchPass)
			}
			argv, err := relaymailArgv(env.dir, sh, rcpts)
			if err != nil {
				b.Fatal(err)
			}
			r.relaymail = measure(argv)
			if env.msmtp != "" {
				if argv, err = msmtpArgv(env.dir, sh, rcpts); err != nil {
					b.Fatal(err)
				}
				r.msmtp = measure(argv)
			} else {
				r.msmtp.err = fmt.Errorf("n/a")
			}
			if tls {
				r.ys = measure(miniArgv)
			} else {
				r.ys = measureProc([]string{hello}, "", reps, nil)
			}
			rows = append(rows, r)
			srv.Close()
		}
	}

	fmt.Printf("\n== Per-process cost (median of %d runs; wall / CPU = user+sys; no proxy)\n", reps)
	fmt.Printf("   load average before/after: %s / %s (2 cores; CPU time is steadier than wall under load)\n", loadBefore, loadAvg())
	fmt.Printf("%-30s %18s %18s %18s %-18s %14s  %s\n", "case", "relaymail", "msmtp", "yardstick", "(which)", "ratio wall/CPU", "target")
	for _, r := range rows {
		ratio, verdictText := "-", "-"
		if r.relaymail.err == nil && r.ys.err == nil {
			rw, rc := ms(r.relaymail.wall)/ms(r.ys.wall), ms(r.relaymail.cpu)/ms(r.ys.cpu)
			ratio = fmt.Sprintf("%.2fx / %.2fx", rw, rc)
			verdictText = fmt.Sprintf("wall <= %.1fx: %s", r.target, verdict(rw <= r.target))
		}
		msmtpCell := r.msmtp.cell()
		if r.msmtp.err != nil && r.msmtp.err.Error() == "n/a" || r.name == "--version / hello-world" {
			msmtpCell = "-"
		}
		fmt.Printf("%-30s %18s %18s %18s %-18s %14s  %s\n", r.name, r.relaymail.cell(), msmtpCell, r.ys.cell(), r.ysName, ratio, verdictText)
	}
	for _, r := range rows {
		for who, p := range map[string]procCost{"relaymail": r.relaymail, "yardstick": r.ys} {
			if p.err != nil {
				fmt.Printf("FAIL %s, %s: %v\n", who, r.name, p.err)
				b.Fail()
			}
		}
		if r.relaymail.err == nil {
			b.ReportMetric(ms(r.relaymail.cpu), "cpu-ms/"+strings.Fields(r.name)[0]+"-"+map[bool]string{false: "plain", true: "tls"}[strings.Contains(r.name, "TLS")])
		}
	}
}
