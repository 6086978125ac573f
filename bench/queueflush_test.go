//go:build linux

package bench

// The queue-flush benchmark of issue 4: 1,000 small messages queued with
// relaymail -odq and delivered by one `relaymail -q` runner, beside the
// same 1,000 messages sent by 1,000 sequential msmtp processes, each
// against a fresh go-smtp fake smarthost (internal/smtptest) with no
// delay: once directly, once through a zero-delay proxy that ACKs at
// once (see flushLinks for why). README.md explains the figures.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"relaymail/internal/smtptest"
)

// envQueueMsgs overrides how many messages the queue-flush benchmark
// queues (default queueMsgs), e.g. for a quick trial run.
const envQueueMsgs = "BENCH_QUEUE_MSGS"

const (
	queueMsgs      = 1000 // issue 4: "1,000 queued messages"
	queueMsgSize   = 2048 // bytes per message as the caller writes it (LF endings)
	queueTarget    = 10.0 // issue 4: at least 10 times msmtp's rate
	queueChildWait = 60 * time.Second
	queueFlushWait = 10 * time.Minute
)

// flushMsg is one message of the queue-flush run: the file a client
// reads on stdin, and what the server must receive for it.
type flushMsg struct {
	file  string
	msgID string // Message-ID, without the angle brackets
	body  []byte // the body after the header block, in CRLF form
}

// queueMessage returns message i of n: exactly size bytes with LF line
// endings, a unique Message-ID, and a body that names i (so a body
// delivered under another message's header is caught) and holds a line
// that needs dot-stuffing. It also returns the Message-ID and the body
// as the server should receive it.
func queueMessage(i, n, size int) (msg []byte, msgID string, body []byte) {
	msgID = fmt.Sprintf("qf-%04d@bench.local", i)
	hdr := "From: Bench <" + benchFrom + ">\n" +
		"To: rcpt1@example.com\n" +
		fmt.Sprintf("Subject: relaymail queue-flush bench %d of %d\n", i, n) +
		"Date: Mon, 01 Jan 2024 00:00:00 +0000\n" +
		"Message-ID: <" + msgID + ">\n" +
		"\n"
	var b bytes.Buffer
	fmt.Fprintf(&b, "This is message %d of %d from the queue-flush benchmark.\n", i, n)
	b.WriteString(".A line that needs dot-stuffing.\n")
	const filler = "The quick brown fox jumps over the lazy dog, again and again and again.\n"
	for len(hdr)+b.Len() < size {
		left := size - len(hdr) - b.Len()
		if left <= len(filler) {
			b.WriteString(strings.Repeat("x", left-1) + "\n")
			break
		}
		b.WriteString(filler)
	}
	msg = append([]byte(hdr), b.Bytes()...)
	return msg, msgID, bytes.ReplaceAll(b.Bytes(), []byte("\n"), []byte("\r\n"))
}

// writeQueueMessages writes n messages of size bytes under dir.
func writeQueueMessages(dir string, n, size int) ([]flushMsg, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	msgs := make([]flushMsg, n)
	for i := range msgs {
		data, id, body := queueMessage(i+1, n, size)
		p := filepath.Join(dir, fmt.Sprintf("msg-%04d.eml", i+1))
		if err := os.WriteFile(p, data, 0o644); err != nil {
			return nil, err
		}
		msgs[i] = flushMsg{file: p, msgID: id, body: body}
	}
	return msgs, nil
}

// checkFlush verifies the server received every message in want exactly
// once, from benchFrom to rcpts, with its own body intact. It names the
// first few problems.
func checkFlush(got []smtptest.Message, want []flushMsg, rcpts []string) error {
	index := make(map[string]int, len(want))
	for i, w := range want {
		index[w.msgID] = i
	}
	seen := make([]int, len(want))
	var probs []string
	add := func(format string, args ...any) {
		if len(probs) < 5 {
			probs = append(probs, fmt.Sprintf(format, args...))
		}
	}
	for k, m := range got {
		id := headerMessageID(m.Data)
		i, ok := index[id]
		if !ok {
			add("message %d has Message-ID %q, not one of those sent", k+1, id)
			continue
		}
		seen[i]++
		if seen[i] == 2 {
			add("<%s> arrived more than once", id)
		}
		if m.From != benchFrom {
			add("<%s>: MAIL FROM:<%s>, want <%s>", id, m.From, benchFrom)
		}
		if !slices.Equal(m.To, rcpts) {
			add("<%s>: RCPT %v, want %v", id, m.To, rcpts)
		}
		_, body, found := bytes.Cut(m.Data, []byte("\r\n\r\n"))
		if !found || !bytes.Equal(body, want[i].body) {
			add("<%s>: body differs from the one sent (%d bytes, want %d)", id, len(body), len(want[i].body))
		}
	}
	missing := 0
	for i, n := range seen {
		if n == 0 {
			if missing == 0 {
				add("<%s> never arrived", want[i].msgID)
			}
			missing++
		}
	}
	if len(got) != len(want) || len(probs) > 0 {
		return fmt.Errorf("server holds %d messages, want %d (%d missing): %s",
			len(got), len(want), missing, strings.Join(probs, "; "))
	}
	return nil
}

// headerMessageID returns the Message-ID in data's header block, without
// angle brackets, or "".
func headerMessageID(data []byte) string {
	hdr, _, _ := bytes.Cut(data, []byte("\r\n\r\n"))
	for line := range strings.SplitSeq(string(hdr), "\r\n") {
		name, value, ok := strings.Cut(line, ":")
		if ok && strings.EqualFold(name, "Message-ID") {
			return strings.Trim(strings.TrimSpace(value), "<>")
		}
	}
	return ""
}

// runQuiet runs argv plainly (no ptrace), stdin from the file, output into
// out (truncated first), and fails on a non-zero exit with the first lines
// of that output. It is for loops of many short-lived processes, where
// neither side should pay for tracing.
func runQuiet(argv []string, stdin string, out *os.File, timeout time.Duration) error {
	in, err := os.Open(stdin)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := out.Truncate(0); err != nil {
		return err
	}
	if _, err := out.Seek(0, 0); err != nil {
		return err
	}
	_, status, err := runPlain(argv, in, out, timeout)
	if err != nil {
		return fmt.Errorf("%s: %w", filepath.Base(argv[0]), err)
	}
	if !status.Exited() || status.ExitStatus() != 0 {
		text, _ := os.ReadFile(out.Name())
		return fmt.Errorf("%s: %s: %s", filepath.Base(argv[0]), describe(status), firstLines(string(text), 3))
	}
	return nil
}

// sendEach runs one process per message, one after the other, the way a
// queue of msmtp invocations would, and returns the total wall time.
func sendEach(argv []string, msgs []flushMsg, out *os.File) (time.Duration, error) {
	start := time.Now()
	for i, m := range msgs {
		if err := runQuiet(argv, m.file, out, queueChildWait); err != nil {
			return 0, fmt.Errorf("message %d of %d: %w", i+1, len(msgs), err)
		}
	}
	return time.Since(start), nil
}

// listQueue returns what `relaymail -bp` prints for cfg.
func listQueue(cfg string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), queueChildWait)
	defer cancel()
	cmd := exec.CommandContext(ctx, env.relaymail, "-C", cfg, "-bp")
	cmd.Env = append(os.Environ(), "HOME="+childHome())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("relaymail -bp: %v: %s", err, firstLines(stderr.String(), 3))
	}
	return stdout.String(), nil
}

// checkQueued verifies `relaymail -bp` lists exactly n queued messages
// and nothing failed; n == 0 means "Mail queue is empty".
func checkQueued(cfg string, n int) error {
	out, err := listQueue(cfg)
	if err != nil {
		return err
	}
	return checkListing(out, n)
}

// checkListing judges a -bp listing (queue.FormatList's layout): for
// n == 0 the empty-queue line, else a summary line counting n requests;
// in both cases no failed section.
func checkListing(out string, n int) error {
	if strings.Contains(out, "Failed") {
		return fmt.Errorf("relaymail -bp lists failed messages: %s", firstLines(out[strings.Index(out, "Failed"):], 4))
	}
	if n == 0 {
		if !strings.HasPrefix(out, "Mail queue is empty") {
			return fmt.Errorf("relaymail -bp: queue not empty: %s", firstLines(out, 4))
		}
		return nil
	}
	req := "Requests."
	if n == 1 {
		req = "Request."
	}
	if !strings.Contains(out, " in "+strconv.Itoa(n)+" "+req) {
		lines := strings.Split(strings.TrimSpace(out), "\n")
		return fmt.Errorf("relaymail -bp: want %d queued, summary says %q", n, lines[len(lines)-1])
	}
	return nil
}

// spoolEntries counts files in the spool's env/ and failed/env/ (the
// layout of package queue's doc): a backstop for the -bp listing.
func spoolEntries(spool string) (int, error) {
	total := 0
	for _, sub := range []string{"env", filepath.Join("failed", "env")} {
		ents, err := os.ReadDir(filepath.Join(spool, sub))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return 0, err
		}
		total += len(ents)
	}
	return total, nil
}

// flushLink is how the clients reach the server in one pair of rows.
type flushLink struct {
	name  string
	proxy bool // through a zero-delay DelayProxy, which ACKs at once
}

// flushLinks are the two links of the table. Direct is the comparison
// issue 4 asks for. Through the proxy, the proxy acknowledges every
// segment at once (TCP_QUICKACK), so msmtp, which leaves Nagle's
// algorithm on and writes each line in its own send, no longer waits for
// the server's delayed ACK (about 40 ms) before its final dot may leave;
// that row shows what msmtp costs without this stall.
var flushLinks = []flushLink{
	{name: "direct"},
	{name: "quick-ACK proxy", proxy: true},
}

// flushResult is one client's figures in the queue-flush table.
type flushResult struct {
	wall     time.Duration
	sessions int
	maxRSS   int64 // KiB; 0 when not measured
	exact    bool
	err      error
}

func (r flushResult) rate(n int) float64 { return float64(n) / r.wall.Seconds() }

// flushRatio is relaymail's rate over msmtp's, and whether it meets
// issue 4's target; ok is false when either figure is missing.
func flushRatio(rm, ms flushResult, n int) (ratio float64, met, ok bool) {
	if rm.err != nil || ms.err != nil || rm.wall <= 0 || ms.wall <= 0 {
		return 0, false, false
	}
	ratio = rm.rate(n) / ms.rate(n)
	return ratio, ratio >= queueTarget, true
}

// BenchmarkQueueFlush is issue 4's benchmark: it queues N small messages
// with relaymail -odq (timed separately, for information), flushes them
// with one `relaymail -q` and counts the SMTP sessions that used, then
// sends the same N with N sequential msmtp processes, and prints both
// rates, the sessions and the ratio against the 10x target, once with
// the clients talking to the server directly and once through a
// zero-delay quick-ACK proxy (see flushLinks).
func BenchmarkQueueFlush(b *testing.B) {
	requireSetup(b)
	n := intEnv(b, envQueueMsgs, queueMsgs)
	rcpts := recipients(1)
	work := filepath.Join(env.dir, "queueflush")
	msgs, err := writeQueueMessages(filepath.Join(work, "msgs"), n, queueMsgSize)
	if err != nil {
		b.Fatal(err)
	}
	out, err := os.CreateTemp(work, "child-*.out")
	if err != nil {
		b.Fatal(err)
	}
	defer out.Close()

	enqueue := make([]time.Duration, len(flushLinks))
	rm := make([]flushResult, len(flushLinks))
	ms := make([]flushResult, len(flushLinks))
	loadBefore := loadAvg()
	for iter := range b.N {
		for li, link := range flushLinks {
			spool := filepath.Join(work, fmt.Sprintf("spool-%d-%d", iter, li))
			enqueue[li], rm[li] = flushRelaymail(b, link, spool, msgs, rcpts, out)
			os.RemoveAll(spool)
			ms[li] = flushResult{err: errors.New("msmtp not installed")}
			if env.msmtp != "" {
				ms[li] = flushMsmtp(b, link, msgs, rcpts, out)
			}
		}
	}
	loadAfter := loadAvg()

	fmt.Printf("\n== Queue flush: %d queued messages of %d bytes, 1 recipient, to a local go-smtp server (no delay)\n", n, queueMsgSize)
	fmt.Printf("   load average before/after: %s / %s on %d CPUs\n", loadBefore, loadAfter, runtime.NumCPU())
	fmt.Printf("   msgs/s = messages / wall time (relaymail: the one -q runner process; msmtp: all %d processes, start of the first to exit of the last)\n", n)
	fmt.Printf("   quick-ACK proxy: zero-delay proxy that ACKs at once, so msmtp's last line is not held by Nagle for the server's delayed ACK\n")
	for li, link := range flushLinks {
		if enqueue[li] > 0 {
			fmt.Printf("enqueue: %.0f msgs/s (%d relaymail -odq processes in %.2fs, %s run; not part of the flush figure)\n",
				float64(n)/enqueue[li].Seconds(), n, enqueue[li].Seconds(), link.name)
		}
	}
	fmt.Printf("%-42s %-16s %8s %8s %14s %10s\n", "client", "link", "wall", "msgs/s", "SMTP sessions", "peak RSS")
	inexact := false
	for li, link := range flushLinks {
		rows := []struct {
			name   string
			r      flushResult
			absent bool
		}{
			{"relaymail -q (one runner)", rm[li], false},
			{fmt.Sprintf("msmtp (%d processes, one after another)", n), ms[li], env.msmtp == ""},
		}
		for _, row := range rows {
			switch {
			case row.absent:
				fmt.Printf("%-42s %-16s n/a (msmtp not installed)\n", row.name, link.name)
			case row.r.err != nil:
				fmt.Printf("%-42s %-16s FAIL: %v\n", row.name, link.name, row.r.err)
			default:
				rss := "-"
				if row.r.maxRSS > 0 {
					rss = fmt.Sprintf("%.1f MiB", float64(row.r.maxRSS)/1024)
					if !row.r.exact {
						rss, inexact = rss+"*", true
					}
				}
				fmt.Printf("%-42s %-16s %7.2fs %8.0f %14d %10s\n", row.name, link.name,
					row.r.wall.Seconds(), row.r.rate(n), row.r.sessions, rss)
			}
		}
	}
	if inexact {
		fmt.Println("* ptrace was unavailable: rusage's maxrss, which includes this benchmark's own size")
	}
	for li, link := range flushLinks {
		if rm[li].err == nil && rm[li].sessions != 1 {
			fmt.Printf("NOTE: %s, the runner used %d SMTP sessions for %d messages; one was expected\n", link.name, rm[li].sessions, n)
		}
	}
	fmt.Printf("target, relaymail -q at least %.0fx msmtp's rate:\n", queueTarget)
	for li, link := range flushLinks {
		ratio, met, ok := flushRatio(rm[li], ms[li], n)
		if !ok {
			fmt.Printf("  %-16s n/a\n", link.name+":")
			continue
		}
		fmt.Printf("  %-16s %.1fx  [%s]\n", link.name+":", ratio, verdict(met))
	}

	for li, link := range flushLinks {
		if rm[li].err != nil {
			b.Errorf("bench: relaymail queue flush, %s: %v", link.name, rm[li].err)
		}
		if env.msmtp != "" && ms[li].err != nil {
			b.Errorf("bench: msmtp, %s: %v", link.name, ms[li].err)
		}
	}
	if rm[0].err == nil {
		b.ReportMetric(rm[0].rate(n), "msgs/s")
		b.ReportMetric(float64(rm[0].sessions), "sessions")
	}
	for li, unit := range []string{"x-msmtp", "x-msmtp-quickack"} {
		if ratio, _, ok := flushRatio(rm[li], ms[li], n); ok {
			b.ReportMetric(ratio, unit)
		}
	}
}

// flushServer starts a fresh server and, for a proxied link, a
// zero-delay proxy in front of it; stop closes both.
func flushServer(b *testing.B, link flushLink) (srv *smtptest.Server, sh smarthost, stop func(), err error) {
	srv = startServer(b, false, false, serverTimeout)
	if !link.proxy {
		return srv, smarthost{host: srv.Host(), port: srv.Port()}, srv.Close, nil
	}
	p, err := NewDelayProxy(srv.Addr(), 0)
	if err != nil {
		srv.Close()
		return nil, smarthost{}, nil, err
	}
	host, port, err := splitHostPort(p.Addr())
	if err != nil {
		p.Close()
		srv.Close()
		return nil, smarthost{}, nil, err
	}
	return srv, smarthost{host: host, port: port}, func() { p.Close(); srv.Close() }, nil
}

// flushRelaymail queues msgs with relaymail -odq into spool, then times
// one `relaymail -q` against a fresh server over link and checks that
// everything arrived once and the queue is empty. It returns the enqueue
// time and the flush figures.
func flushRelaymail(b *testing.B, link flushLink, spool string, msgs []flushMsg, rcpts []string, out *os.File) (time.Duration, flushResult) {
	b.Helper()
	srv, sh, stop, err := flushServer(b, link)
	if err != nil {
		return 0, flushResult{err: err}
	}
	defer stop()
	cfg, err := writeConfig(env.dir, "relaymail-queue.toml",
		relaymailConfig(sh, fmt.Sprintf("dir = %q\n", spool)))
	if err != nil {
		return 0, flushResult{err: err}
	}
	enqueueArgv := append([]string{env.relaymail, "-C", cfg, "-odq", "-i"}, rcpts...)
	enqueue, err := sendEach(enqueueArgv, msgs, out)
	if err != nil {
		return 0, flushResult{err: fmt.Errorf("enqueue: %w", err)}
	}
	if s, m := srv.Sessions(), len(srv.Messages()); s != 0 || m != 0 {
		return enqueue, flushResult{err: fmt.Errorf("-odq contacted the server: %d sessions, %d messages", s, m)}
	}
	if err := checkQueued(cfg, len(msgs)); err != nil {
		return enqueue, flushResult{err: fmt.Errorf("after enqueue: %w", err)}
	}

	r, err := runChild([]string{env.relaymail, "-C", cfg, "-q"}, os.DevNull, queueFlushWait)
	if err != nil {
		return enqueue, flushResult{err: err}
	}
	res := flushResult{wall: r.wall, sessions: srv.Sessions(), maxRSS: r.maxRSS, exact: r.exact}
	if err := checkFlush(srv.Messages(), msgs, rcpts); err != nil {
		res.err = fmt.Errorf("relaymail -q: %w", err)
		return enqueue, res
	}
	if err := checkQueued(cfg, 0); err != nil {
		res.err = fmt.Errorf("after relaymail -q: %w", err)
		return enqueue, res
	}
	if left, err := spoolEntries(spool); err != nil || left != 0 {
		res.err = fmt.Errorf("after relaymail -q: %d envelopes left in %s (%v)", left, spool, err)
	}
	return enqueue, res
}

// flushMsmtp sends msgs with one msmtp process each, one after the
// other, to a fresh server over link, and checks everything arrived once.
func flushMsmtp(b *testing.B, link flushLink, msgs []flushMsg, rcpts []string, out *os.File) flushResult {
	b.Helper()
	srv, sh, stop, err := flushServer(b, link)
	if err != nil {
		return flushResult{err: err}
	}
	defer stop()
	argv, err := msmtpArgv(env.dir, sh, rcpts)
	if err != nil {
		return flushResult{err: err}
	}
	wall, err := sendEach(argv, msgs, out)
	if err != nil {
		return flushResult{err: err}
	}
	res := flushResult{wall: wall, sessions: srv.Sessions()}
	if err := checkFlush(srv.Messages(), msgs, rcpts); err != nil {
		res.err = fmt.Errorf("msmtp: %w", err)
	}
	return res
}

func TestFlushRatio(t *testing.T) {
	ok := func(d time.Duration) flushResult { return flushResult{wall: d} }
	tests := []struct {
		name         string
		rm, ms       flushResult
		ratio        float64
		met, present bool
	}{
		{"ten times", ok(time.Second), ok(10 * time.Second), 10, true, true},
		{"just under", ok(time.Second), ok(9990 * time.Millisecond), 9.99, false, true},
		{"slower", ok(2 * time.Second), ok(time.Second), 0.5, false, true},
		{"msmtp failed", ok(time.Second), flushResult{err: errors.New("x")}, 0, false, false},
		{"relaymail failed", flushResult{err: errors.New("x")}, ok(time.Second), 0, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ratio, met, present := flushRatio(tt.rm, tt.ms, 1000)
			if present != tt.present || met != tt.met || math.Abs(ratio-tt.ratio) > 1e-9 {
				t.Fatalf("flushRatio = %v, %v, %v; want %v, %v, %v", ratio, met, present, tt.ratio, tt.met, tt.present)
			}
		})
	}
}

func TestQueueMessage(t *testing.T) {
	for _, tt := range []struct{ i, n, size int }{{1, 1000, 2048}, {1000, 1000, 2048}, {7, 9, 300}, {3, 3, 4096}} {
		msg, id, body := queueMessage(tt.i, tt.n, tt.size)
		if len(msg) != tt.size {
			t.Errorf("queueMessage(%d, %d, %d) is %d bytes", tt.i, tt.n, tt.size, len(msg))
		}
		if want := fmt.Sprintf("qf-%04d@bench.local", tt.i); id != want {
			t.Errorf("queueMessage(%d, ...) id = %q, want %q", tt.i, id, want)
		}
		crlf := bytes.ReplaceAll(msg, []byte("\n"), []byte("\r\n"))
		if got := headerMessageID(crlf); got != id {
			t.Errorf("headerMessageID = %q, want %q", got, id)
		}
		if _, b, _ := bytes.Cut(crlf, []byte("\r\n\r\n")); !bytes.Equal(b, body) {
			t.Errorf("queueMessage(%d, ...) body is not the message's own body in CRLF", tt.i)
		}
		if !bytes.HasSuffix(msg, []byte("\n")) || bytes.Contains(msg, []byte("\r")) {
			t.Errorf("queueMessage(%d, ...) does not end in LF or holds a CR", tt.i)
		}
		if !bytes.Contains(body, []byte(fmt.Sprintf("message %d of %d", tt.i, tt.n))) || !bytes.Contains(body, []byte("\r\n.A line")) {
			t.Errorf("queueMessage(%d, ...) body lacks its number or its dot line", tt.i)
		}
	}
	a, _, _ := queueMessage(1, 2, 2048)
	b, _, _ := queueMessage(2, 2, 2048)
	if bytes.Equal(a, b) {
		t.Error("messages 1 and 2 are identical")
	}
}

func TestCheckFlush(t *testing.T) {
	rcpts := []string{"rcpt1@example.com"}
	var want []flushMsg
	var good []smtptest.Message
	for i := 1; i <= 3; i++ {
		msg, id, body := queueMessage(i, 3, 512)
		want = append(want, flushMsg{msgID: id, body: body})
		data := append([]byte("Received: by bench.local\r\n"), bytes.ReplaceAll(msg, []byte("\n"), []byte("\r\n"))...)
		good = append(good, smtptest.Message{From: benchFrom, To: rcpts, Data: data})
	}
	edit := func(f func(ms []smtptest.Message) []smtptest.Message) []smtptest.Message {
		ms := slices.Clone(good)
		return f(ms)
	}
	tests := []struct {
		name string
		got  []smtptest.Message
		want string // "" for no error
	}{
		{"all once", good, ""},
		{"any order", edit(func(ms []smtptest.Message) []smtptest.Message { slices.Reverse(ms); return ms }), ""},
		{"one missing", good[:2], "<qf-0003@bench.local> never arrived"},
		{"one twice", append(slices.Clone(good[:2]), good[1]), "<qf-0002@bench.local> arrived more than once"},
		{"wrong recipient", edit(func(ms []smtptest.Message) []smtptest.Message {
			ms[0].To = []string{"other@example.com"}
			return ms
		}), "RCPT [other@example.com]"},
		{"wrong sender", edit(func(ms []smtptest.Message) []smtptest.Message {
			ms[2].From = ""
			return ms
		}), "MAIL FROM:<>"},
		{"bodies swapped", edit(func(ms []smtptest.Message) []smtptest.Message {
			h0, b0, _ := bytes.Cut(ms[0].Data, []byte("\r\n\r\n"))
			h1, b1, _ := bytes.Cut(ms[1].Data, []byte("\r\n\r\n"))
			ms[0].Data = slices.Concat(h0, []byte("\r\n\r\n"), b1)
			ms[1].Data = slices.Concat(h1, []byte("\r\n\r\n"), b0)
			return ms
		}), "body differs"},
		{"dot not unstuffed", edit(func(ms []smtptest.Message) []smtptest.Message {
			ms[0].Data = bytes.Replace(ms[0].Data, []byte("\r\n.A line"), []byte("\r\n..A line"), 1)
			return ms
		}), "body differs"},
		{"stranger", append(slices.Clone(good), smtptest.Message{From: benchFrom, To: rcpts, Data: []byte("Subject: x\r\n\r\nhi\r\n")}),
			`Message-ID ""`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkFlush(tt.got, want, rcpts)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("checkFlush: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("checkFlush error = %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

func TestCheckListing(t *testing.T) {
	one := "-Queue ID-           --Size-- --Age-- Tries  -Sender/Recipient-------\n" +
		"0SGPXQBT7SR9EBFT0D20      155      0s     0  bench@example.com\n" +
		"                                             rcpt@example.com\n\n" +
		"-- 1 Kbytes in 1 Request.\n"
	many := strings.Replace(one, "in 1 Request.", "in 1000 Requests.", 1)
	failed := "Mail queue is empty\n\nFailed, not retried (relaymail --requeue ID to retry, --delete ID to remove):\n" + one
	tests := []struct {
		name string
		out  string
		n    int
		ok   bool
	}{
		{"empty", "Mail queue is empty\n", 0, true},
		{"empty but one queued", one, 0, false},
		{"one", one, 1, true},
		{"one is not 1000", one, 1000, false},
		{"1000", many, 1000, true},
		{"100 is not 1000", strings.Replace(many, "1000", "100", 1), 1000, false},
		{"empty with failed", failed, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkListing(tt.out, tt.n)
			if (err == nil) != tt.ok {
				t.Fatalf("checkListing(%d) = %v, want ok %v", tt.n, err, tt.ok)
			}
		})
	}
}
