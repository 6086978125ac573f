package smtpd

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// capturesDir holds the real caller captures, relative to this package
// (the repository's testdata/clients).
const capturesDir = "../testdata/clients"

// TestCapturedTranscripts replays what Symfony Mailer and SwiftMailer sent
// over `sendmail -bs` (the C: lines and the DATA payload) and checks that
// every reply has the code the captured server gave and that the message
// arrives intact.
func TestCapturedTranscripts(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(capturesDir, "*", "*", "smtp-transcript.txt"))
	if len(files) == 0 {
		t.Fatalf("no captured transcripts under %s (they are part of the repository)", capturesDir)
	}
	for _, want := range []string{"php-symfony-mailer/001", "php-symfony-mailer/004", "php-swiftmailer/001"} {
		if _, err := os.Stat(filepath.Join(capturesDir, want, "smtp-transcript.txt")); err != nil {
			t.Errorf("capture %s missing: %v", want, err)
		}
	}
	for _, f := range files {
		dir := filepath.Dir(f)
		name, _ := filepath.Rel(capturesDir, dir)
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			payload, err := os.ReadFile(filepath.Join(dir, "stdin.eml"))
			if err != nil {
				t.Fatal(err)
			}
			var in strings.Builder
			var wantCodes []string
			var from string
			var to []string
			for _, line := range strings.Split(strings.TrimRight(string(raw), "\n"), "\n") {
				switch {
				case strings.HasPrefix(line, "S: "):
					s, err := strconv.Unquote(line[3:])
					if err != nil {
						t.Fatalf("%q: %v", line, err)
					}
					for _, l := range strings.SplitAfter(s, "\r\n") {
						if len(l) >= 4 && l[3] == ' ' {
							wantCodes = append(wantCodes, l[:3])
						}
					}
				case strings.HasPrefix(line, "C: (DATA "):
					var n int
					if _, err := fmt.Sscanf(line, "C: (DATA %d bytes)", &n); err != nil || n != len(payload) {
						t.Fatalf("%q: payload is %d bytes (%v)", line, len(payload), err)
					}
					in.Write(payload)
					in.WriteString(".\r\n")
				case strings.HasPrefix(line, "C: "):
					s, err := strconv.Unquote(line[3:])
					if err != nil {
						t.Fatalf("%q: %v", line, err)
					}
					if a, ok := strings.CutPrefix(s, "MAIL FROM:<"); ok {
						from = a[:strings.IndexByte(a, '>')]
					}
					if a, ok := strings.CutPrefix(s, "RCPT TO:<"); ok {
						to = append(to, a[:strings.IndexByte(a, '>')])
					}
					in.WriteString(s)
				default:
					t.Fatalf("unexpected transcript line %q", line)
				}
			}
			h := &recHandler{dataReply: &Reply{Code: 250, Enhanced: "2.0.0", Text: "OK: queued as ABC"}}
			out, err := runSession(t, &Server{Hostname: testHost, Handler: h}, in.String())
			if err != nil {
				t.Fatal(err)
			}
			var gotCodes []string
			for _, l := range strings.SplitAfter(out, "\r\n") {
				if len(l) >= 4 && l[3] == ' ' {
					gotCodes = append(gotCodes, l[:3])
				}
			}
			if strings.Join(gotCodes, " ") != strings.Join(wantCodes, " ") {
				t.Errorf("reply codes %v, captured server gave %v\n%s", gotCodes, wantCodes, out)
			}
			wantMsg, ok := referenceData(string(payload) + ".\r\n")
			if !ok {
				t.Fatal("payload has no end")
			}
			m := h.messages()
			if len(m) != 1 || m[0].data != wantMsg || m[0].env.From != from || strings.Join(m[0].env.To, ",") != strings.Join(to, ",") {
				t.Fatalf("messages %+v, want from %s to %v and %q", m, from, to, wantMsg)
			}
			if !strings.Contains(wantMsg, "\r\n.\r\n") {
				t.Errorf("the capture's stuffed line did not come out as a lone dot")
			}
		})
	}
}

// fileHandler writes each accepted message to dir/N.eml with its envelope
// in the first line, for a helper process.
type fileHandler struct {
	dir string
	n   int
}

func (h *fileHandler) Rcpt(_ context.Context, _ *Envelope, addr string) *Reply {
	if strings.HasPrefix(addr, "refuse") {
		return &Reply{Code: 550, Enhanced: "5.1.1", Text: "no such user"}
	}
	return nil
}

func (h *fileHandler) Data(_ context.Context, env *Envelope, r io.Reader) *Reply {
	b, err := io.ReadAll(r)
	if err != nil {
		return &Reply{Code: 451}
	}
	h.n++
	head := fmt.Sprintf("from=%s to=%s\n", env.From, strings.Join(env.To, ","))
	if err := os.WriteFile(filepath.Join(h.dir, fmt.Sprintf("%d.eml", h.n)), append([]byte(head), b...), 0o600); err != nil {
		return &Reply{Code: 451}
	}
	return &Reply{Code: 250, Enhanced: "2.0.0", Text: fmt.Sprintf("OK: queued as Q%d", h.n)}
}

// TestHelperBS is not a test: run as a child process with
// SMTPD_HELPER_DIR set, it is `sendmail -bs`: one session on its real
// stdin and stdout (blocking pipes, without deadlines).
func TestHelperBS(t *testing.T) {
	dir := os.Getenv("SMTPD_HELPER_DIR")
	if dir == "" {
		t.Skip("helper process only")
	}
	srv := &Server{Hostname: testHost, Handler: &fileHandler{dir: dir}, CommandTimeout: 10 * time.Second}
	err := srv.ServeConn(context.Background(), os.Stdin, os.Stdout, "")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	os.Exit(0)
}

func helperCmd(t *testing.T, ctx context.Context, name string, args ...string) (*exec.Cmd, string) {
	dir := t.TempDir()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "SMTPD_HELPER_DIR="+dir)
	return cmd, dir
}

// TestStdioProcess is -bs for real: a child process on stdin/stdout pipes,
// talking to the test as Symfony would.
func TestStdioProcess(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd, dir := helperCmd(t, ctx, os.Args[0], "-test.run=^TestHelperBS$")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(stdout)
	step := func(send, want string) {
		t.Helper()
		if send != "" {
			io.WriteString(stdin, send)
		}
		line, err := br.ReadString('\n')
		if err != nil || !strings.HasPrefix(line, want) {
			t.Fatalf("after %q: read %q, %v; want %q (stderr %s)", send, line, err, want, stderr.String())
		}
	}
	step("", "220 mx.test ESMTP")
	step("HELO [127.0.0.1]\r\n", "250 mx.test")
	step("MAIL FROM:<app@example.com>\r\n", "250 ")
	step("RCPT TO:<a@example.com>\r\n", "250 ")
	step("RCPT TO:<refused@example.com>\r\n", "550 5.1.1")
	step("DATA\r\n", "354 ")
	step("Subject: x\r\n\r\n..\r\nline\r\n.\r\n", "250 2.0.0 OK: queued as Q1")
	step("QUIT\r\n", "221 ")
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("helper: %v (stderr %s)", err, stderr.String())
	}
	got, err := os.ReadFile(filepath.Join(dir, "1.eml"))
	if want := "from=app@example.com to=a@example.com\nSubject: x\r\n\r\n.\r\nline\r\n"; err != nil || string(got) != want {
		t.Fatalf("message %q, %v; want %q", got, err, want)
	}
}

func needTool(t *testing.T, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed", name)
	}
	return p
}

// TestSwaks drives Serve with swaks, pipelined, and the -bs helper with
// swaks --pipe.
func TestSwaks(t *testing.T) {
	swaks := needTool(t, "swaks")
	body := "Subject: swaks\r\n\r\n.leading dot\r\nGr\xc3\xbc\xc3\x9fe\r\n"
	t.Run("server pipelined", func(t *testing.T) {
		h := &recHandler{}
		addr, _ := startServer(t, &Server{Hostname: testHost, Handler: h})
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		out, err := exec.CommandContext(ctx, swaks, "--server", addr, "--pipeline", "--timeout", "10",
			"--from", "a@x.example", "--to", "b@y.example,c@y.example", "--data", body).CombinedOutput()
		if err != nil {
			t.Fatalf("swaks: %v\n%s", err, out)
		}
		if !bytes.Contains(out, []byte("250-PIPELINING")) {
			t.Errorf("no PIPELINING in EHLO:\n%s", out)
		}
		m := h.messages()
		if len(m) != 1 || strings.Join(m[0].env.To, ",") != "b@y.example,c@y.example" || !strings.Contains(m[0].data, "\r\n.leading dot\r\nGrüße\r\n") {
			t.Fatalf("messages %+v\n%s", m, out)
		}
	})
	t.Run("pipe", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		cmd, dir := helperCmd(t, ctx, swaks, "--pipe", os.Args[0]+" -test.run=^TestHelperBS$", "--timeout", "10",
			"--from", "a@x.example", "--to", "b@y.example", "--data", body)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("swaks: %v\n%s", err, out)
		}
		got, err := os.ReadFile(filepath.Join(dir, "1.eml"))
		if err != nil || !bytes.HasPrefix(got, []byte("from=a@x.example to=b@y.example\n")) || !bytes.Contains(got, []byte("\r\n.leading dot\r\n")) {
			t.Fatalf("message %q, %v\n%s", got, err, out)
		}
	})
}

// TestPythonSmtplib drives Serve with Python's smtplib: several recipients
// with one refused, then an internationalised address over SMTPUTF8.
func TestPythonSmtplib(t *testing.T) {
	python := needTool(t, "python3")
	h := &recHandler{refuse: map[string]*Reply{"nobody@y.example": {Code: 550, Enhanced: "5.1.1", Text: "no such user"}}}
	addr, _ := startServer(t, &Server{Hostname: testHost, Handler: h})
	host, port, _ := strings.Cut(addr, ":")
	const script = `
import json, smtplib, sys
from email.message import EmailMessage
s = smtplib.SMTP(sys.argv[1], int(sys.argv[2]), timeout=10)
refused = s.sendmail("a@x.example", ["b@y.example", "nobody@y.example", "c@y.example"],
                     b"Subject: py\r\n\r\n.dot\r\nbody\r\n")
m = EmailMessage()
m["From"] = "a@x.example"
m["To"] = "j\u00fcrgen@b\u00fccher.example"
m["Subject"] = "utf8"
m.set_content("hallo")
s.send_message(m)
s.quit()
print(json.dumps({k: [v[0], v[1].decode()] for k, v in refused.items()}))
`
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, python, "-c", script, host, port).CombinedOutput()
	if err != nil {
		t.Fatalf("python: %v\n%s", err, out)
	}
	var refused map[string][]any
	if err := json.Unmarshal(out, &refused); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if len(refused) != 1 || refused["nobody@y.example"] == nil || refused["nobody@y.example"][0] != float64(550) {
		t.Errorf("refused = %v", refused)
	}
	m := h.messages()
	if len(m) != 2 {
		t.Fatalf("messages %+v", m)
	}
	if strings.Join(m[0].env.To, ",") != "b@y.example,c@y.example" || m[0].data != "Subject: py\r\n\r\n.dot\r\nbody\r\n" {
		t.Errorf("first message %+v", m[0])
	}
	if !m[1].env.SMTPUTF8 || strings.Join(m[1].env.To, ",") != "jürgen@bücher.example" || !strings.Contains(m[1].data, "hallo") {
		t.Errorf("second message %+v", m[1])
	}
}
