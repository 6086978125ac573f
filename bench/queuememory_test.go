//go:build linux

package bench

// The queue-memory benchmark of issue 13 item 4: the peak RSS of one
// `relaymail -q` runner flushing 1,000 and then 10,000 queued messages,
// side by side. A pass should hold memory independent of the queue's
// size: the two figures close together, not growing with the queue.

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"time"

	"testing"

	"relaymail/message"
	"relaymail/queue"
)

// queueMemorySizes are the queue sizes the benchmark compares.
var queueMemorySizes = []int{1000, 10000}

// fillSpool queues msgs into a new spool at dir in this process (with
// package queue, as relaymail -odq would, but without a process per
// message: 10,000 of those take minutes), from benchFrom to rcpts.
func fillSpool(dir string, msgs []flushMsg, rcpts []string) error {
	q, err := queue.Open(dir)
	if err != nil {
		return err
	}
	for _, m := range msgs {
		data, err := os.ReadFile(m.file)
		if err != nil {
			return err
		}
		data = bytes.ReplaceAll(data, []byte("\n"), []byte("\r\n"))
		head, body, _ := bytes.Cut(data, []byte("\r\n\r\n"))
		env := &queue.Envelope{
			Envelope: message.Envelope{From: benchFrom, To: rcpts},
			Header:   append(head, "\r\n\r\n"...),
		}
		if err := q.Enqueue(env, bytes.NewReader(body)); err != nil {
			return err
		}
	}
	return nil
}

// BenchmarkQueueMemory queues 1,000 and then 10,000 small messages and
// flushes each queue with one `relaymail -q` against a fresh server,
// checking that every message arrived once and the queue is empty, and
// prints the runner's peak RSS (VmHWM under ptrace) for both sizes side
// by side. It asserts nothing about time or memory: the figures are for
// README.md.
func BenchmarkQueueMemory(b *testing.B) {
	requireSetup(b)
	rcpts := recipients(1)
	work := filepath.Join(env.dir, "queuememory")
	type row struct {
		n    int
		fill time.Duration
		r    flushResult
	}
	var rows []row
	loadBefore := loadAvg()
	for range b.N {
		rows = rows[:0]
		for _, n := range queueMemorySizes {
			msgs, err := writeQueueMessages(filepath.Join(work, fmt.Sprintf("msgs-%d", n)), n, queueMsgSize)
			if err != nil {
				b.Fatal(err)
			}
			spool := filepath.Join(work, fmt.Sprintf("spool-%d", n))
			start := time.Now()
			if err := fillSpool(spool, msgs, rcpts); err != nil {
				b.Fatalf("queue %d messages: %v", n, err)
			}
			fill := time.Since(start)
			r := flushSpool(b, spool, msgs, rcpts)
			rows = append(rows, row{n: n, fill: fill, r: r})
			os.RemoveAll(spool)
			os.RemoveAll(filepath.Join(work, fmt.Sprintf("msgs-%d", n)))
		}
	}
	loadAfter := loadAvg()

	fmt.Printf("\n== Queue memory: one relaymail -q runner over N queued messages of %d bytes, 1 recipient, local go-smtp server\n", queueMsgSize)
	fmt.Printf("   load average before/after: %s / %s on %d CPUs\n", loadBefore, loadAfter, runtime.NumCPU())
	fmt.Printf("%-10s %8s %8s %10s %12s\n", "messages", "wall", "msgs/s", "peak RSS", "sessions")
	for _, rw := range rows {
		if rw.r.err != nil {
			fmt.Printf("%-10d FAIL: %v\n", rw.n, rw.r.err)
			b.Errorf("bench: queue memory, %d messages: %v", rw.n, rw.r.err)
			continue
		}
		rss := fmt.Sprintf("%.1f MiB", float64(rw.r.maxRSS)/1024)
		if !rw.r.exact {
			rss += "*"
		}
		fmt.Printf("%-10d %7.2fs %8.0f %10s %12d\n", rw.n, rw.r.wall.Seconds(), rw.r.rate(rw.n), rss, rw.r.sessions)
	}
	if len(rows) == 2 && rows[0].r.err == nil && rows[1].r.err == nil {
		small, large := rows[0], rows[1]
		growth := float64(large.r.maxRSS-small.r.maxRSS) / 1024
		per := float64(large.r.maxRSS-small.r.maxRSS) * 1024 / float64(large.n-small.n)
		fmt.Printf("peak RSS %d -> %d messages: %+.1f MiB (%.0f bytes per extra queued message)\n", small.n, large.n, growth, per)
		b.ReportMetric(float64(small.r.maxRSS)/1024, "peak-RSS-MiB-1k")
		b.ReportMetric(float64(large.r.maxRSS)/1024, "peak-RSS-MiB-10k")
	}
}

// flushSpool times one `relaymail -q` over spool against a fresh server
// and checks that msgs all arrived once and nothing is left queued.
func flushSpool(b *testing.B, spool string, msgs []flushMsg, rcpts []string) flushResult {
	b.Helper()
	srv, sh, stop, err := flushServer(b, flushLink{name: "direct"})
	if err != nil {
		return flushResult{err: err}
	}
	defer stop()
	cfg, err := writeConfig(env.dir, "relaymail-queuememory.toml",
		relaymailConfig(sh, fmt.Sprintf("dir = %q\n", spool)))
	if err != nil {
		return flushResult{err: err}
	}
	if err := checkQueued(cfg, len(msgs)); err != nil {
		return flushResult{err: fmt.Errorf("before relaymail -q: %w", err)}
	}
	r, err := runChild([]string{env.relaymail, "-C", cfg, "-q"}, os.DevNull, queueFlushWait)
	if err != nil {
		return flushResult{err: err}
	}
	res := flushResult{wall: r.wall, sessions: srv.Sessions(), maxRSS: r.maxRSS, exact: r.exact}
	if err := checkFlush(srv.Messages(), msgs, rcpts); err != nil {
		res.err = fmt.Errorf("relaymail -q: %w", err)
		return res
	}
	if left, err := spoolEntries(spool); err != nil || left != 0 {
		res.err = fmt.Errorf("after relaymail -q: %d envelopes left in %s (%v)", left, spool, err)
	}
	return res
}
