package bench

import (
	"bytes"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"testing"
)

// batchMessages is how many messages SwiftMailer's pattern sends in one
// -bs process in the batch table (issue 11).
const batchMessages = 100

// BenchmarkBatch compares 100 messages sent in one `relaymail -bs`
// session (SwiftMailer, Symfony and Laravel workers keep one process for
// a batch) with 100 separate `relaymail -bm` processes, against one
// STARTTLS+AUTH smarthost on loopback: wall time and the smarthost
// connections each used (the live proxy keeps one smarthost session per
// client session: one TLS handshake and one AUTH for the batch).
func BenchmarkBatch(b *testing.B) {
	requireSetup(b)
	srv := startServer(b, true, true, serverTimeout)
	caFile, err := writeCA(env.dir, srv)
	if err != nil {
		b.Fatal(err)
	}
	sh := smarthost{host: srv.Host(), port: srv.Port(), tls: true, auth: true, caFile: caFile}
	cfg, err := writeConfig(env.dir, "relaymail-batch.toml",
		relaymailConfig(sh, fmt.Sprintf("mode = \"never\"\ndir = %q\n", filepath.Join(env.dir, "spool-batch"))))
	if err != nil {
		b.Fatal(err)
	}
	msg := "Subject: batch\r\n\r\nA short notification.\r\n"

	var bsWall, bmWall time.Duration
	var bsConns, bmConns int
	for range b.N {
		// One -bs session, all messages pipelined as SwiftMailer writes them.
		var in strings.Builder
		in.WriteString("EHLO app.local\r\n")
		for i := range batchMessages {
			fmt.Fprintf(&in, "MAIL FROM:<%s>\r\nRCPT TO:<r%d@example.com>\r\nDATA\r\n%s.\r\n", benchFrom, i, msg)
		}
		in.WriteString("QUIT\r\n")
		before, sessions := len(srv.Messages()), srv.Sessions()
		start := time.Now()
		cmd := exec.Command(env.relaymail, "-C", cfg, "-bs")
		cmd.Stdin = strings.NewReader(in.String())
		out, err := cmd.Output()
		bsWall = time.Since(start)
		bsConns = srv.Sessions() - sessions
		if err != nil || strings.Count(string(out), "250 2.0.0 OK: queued") != batchMessages {
			b.Fatalf("-bs batch: %v\n%s", err, out)
		}
		if n := len(srv.Messages()) - before; n != batchMessages {
			b.Fatalf("-bs batch: smarthost got %d messages, want %d", n, batchMessages)
		}

		// The same messages, one -bm process each.
		before, sessions = len(srv.Messages()), srv.Sessions()
		start = time.Now()
		for i := range batchMessages {
			cmd := exec.Command(env.relaymail, "-C", cfg, "-i", fmt.Sprintf("r%d@example.com", i))
			cmd.Stdin = bytes.NewReader([]byte(msg))
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("-bm %d: %v\n%s", i, err, out)
			}
		}
		bmWall = time.Since(start)
		bmConns = srv.Sessions() - sessions
		if n := len(srv.Messages()) - before; n != batchMessages {
			b.Fatalf("-bm: smarthost got %d messages, want %d", n, batchMessages)
		}
	}
	fmt.Printf("\n== Batch: %d messages, STARTTLS+AUTH smarthost on loopback (issue 11)\n", batchMessages)
	fmt.Printf("   load average: %s (2 cores here; other work on the machine skews wall times)\n", loadAvg())
	fmt.Printf("%-34s %12s %14s %12s\n", "how", "wall", "per message", "connections")
	fmt.Printf("%-34s %10dms %12.1fms %12d\n", "one -bs session (SwiftMailer)", bsWall.Milliseconds(),
		float64(bsWall.Microseconds())/1000/batchMessages, bsConns)
	fmt.Printf("%-34s %10dms %12.1fms %12d\n", fmt.Sprintf("%d separate -bm processes", batchMessages), bmWall.Milliseconds(),
		float64(bmWall.Microseconds())/1000/batchMessages, bmConns)
	fmt.Printf("   -bs is %.1fx faster; smarthost connections %d vs %d\n", bmWall.Seconds()/bsWall.Seconds(), bsConns, bmConns)
	b.ReportMetric(float64(bsConns), "conns/bs-batch")
	b.ReportMetric(bsWall.Seconds()*1000/batchMessages, "ms/msg-bs")
	b.ReportMetric(bmWall.Seconds()*1000/batchMessages, "ms/msg-bm")
}
