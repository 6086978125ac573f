package delivery

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"relaymail/message"
	"slices"
	"strings"
	"testing"
	"time"

	"relaymail/config"
	"relaymail/internal/heaptest"
	"relaymail/internal/smtptest"
	"relaymail/queue"
)

func runnerFor(t *testing.T, srv *smtptest.Server, maxAge string) (*Runner, *queue.Queue, *bytes.Buffer) {
	t.Helper()
	cfg, err := config.Parse([]byte(fmt.Sprintf(`hostname = "relay.test"
domain = "example.com"
[smarthost]
host = %q
port = %d
tls = "none"
timeout = "5s"
[queue]
max_age = %q
`, srv.Host(), srv.Port(), maxAge)), "runner.toml")
	if err != nil {
		t.Fatal(err)
	}
	q, err := queue.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	return &Runner{Config: cfg, Queue: q, Logger: slog.New(slog.NewTextHandler(&log, nil))}, q, &log
}

func queueMessage(t *testing.T, q *queue.Queue, n int, to ...string) *queue.Envelope {
	t.Helper()
	env := &queue.Envelope{Envelope: message.Envelope{From: "app@example.com", To: to},
		Header: []byte(fmt.Sprintf("Subject: message %d\n\n", n))}
	if err := q.Enqueue(env, strings.NewReader(fmt.Sprintf("body %d\n", n))); err != nil {
		t.Fatal(err)
	}
	return env
}

// TestRunnerOneSession: a pass delivers every queued message over one
// SMTP session and empties the queue.
func TestRunnerOneSession(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{})
	r, q, _ := runnerFor(t, srv, "120h")
	for i := range 5 {
		queueMessage(t, q, i, fmt.Sprintf("rcpt%d@example.org", i))
	}
	if err := r.Run(context.Background(), FullPass); err != nil {
		t.Fatal(err)
	}
	if n := len(srv.Messages()); n != 5 {
		t.Errorf("delivered %d messages, want 5", n)
	}
	if s := srv.Sessions(); s != 1 {
		t.Errorf("used %d SMTP sessions, want 1", s)
	}
	if envs := slices.Collect(q.Walk().All()); len(envs) != 0 {
		t.Errorf("%d messages left", len(envs))
	}
}

// TestRunnerPartial: one recipient deferred, one refused, one accepted:
// the deferred one stays queued with a later retry time, the refused one
// is bounced to the sender, the message is not sent twice to the others.
func TestRunnerPartial(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{})
	r, q, _ := runnerFor(t, srv, "120h")
	now := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	r.Now = func() time.Time { return now }
	srv.SetRcptErr("later@example.org", smtptest.Reply(451, "4.2.0", "try later"))
	srv.SetRcptErr("gone@example.org", smtptest.Reply(550, "5.1.1", "no such user"))
	env := queueMessage(t, q, 1, "ok@example.org", "later@example.org", "gone@example.org")
	if err := r.Run(context.Background(), DuePass); err != nil {
		t.Fatal(err)
	}
	msgs := srv.Messages()
	if len(msgs) != 2 || strings.Join(msgs[0].To, ",") != "ok@example.org" ||
		msgs[1].From != "" || strings.Join(msgs[1].To, ",") != "app@example.com" {
		t.Fatalf("smarthost got %+v, want the message to ok@ and a bounce to the sender", msgs)
	}
	if !strings.Contains(string(msgs[1].Data), "gone@example.org") || strings.Contains(string(msgs[1].Data), "later@example.org") {
		t.Errorf("the bounce must name only the refused recipient:\n%s", msgs[1].Data)
	}
	envs := slices.Collect(q.Walk().All())
	if len(envs) != 1 || envs[0].ID != env.ID {
		t.Fatalf("queue holds %+v, want the original for later@", envs)
	}
	e := envs[0]
	if strings.Join(e.To, ",") != "later@example.org" || e.Attempts != 1 ||
		!e.NextAttempt.After(now) || !strings.Contains(e.LastError, "451") {
		t.Errorf("deferred envelope: %+v", e)
	}
	// Not due yet: a pass that honours retry times leaves it alone.
	if err := r.Run(context.Background(), DuePass); err != nil {
		t.Fatal(err)
	}
	if len(srv.Messages()) != 2 {
		t.Errorf("a message not yet due was tried")
	}
	// Due: delivered to later@ alone.
	srv.ResetErrors()
	now = e.NextAttempt.Add(time.Second)
	if err := r.Run(context.Background(), DuePass); err != nil {
		t.Fatal(err)
	}
	if msgs := srv.Messages(); len(msgs) != 3 || strings.Join(msgs[2].To, ",") != "later@example.org" {
		t.Errorf("retry delivered %+v", msgs[2:])
	}
}

// TestRunnerMemoryFlat: a pass holds the envelopes of the message it
// sends and the next one, not the queue's (issue 13.4). When it starts
// talking to the smarthost, the live heap has not grown by the queue's
// header blocks: 64 messages of 512 KiB of header, 32 MiB in all.
func TestRunnerMemoryFlat(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{})
	r, q, _ := runnerFor(t, srv, "120h")
	line := "X-Pad: " + strings.Repeat("x", 90) + "\n"
	header := strings.Repeat(line, (512<<10)/len(line)) + "Subject: a large header\n\n"
	const n = 64
	for range n {
		env := &queue.Envelope{Envelope: message.Envelope{From: "app@example.com", To: []string{"rcpt@example.org"}},
			Header: []byte(header)}
		if err := q.Enqueue(env, strings.NewReader("body\n")); err != nil {
			t.Fatal(err)
		}
	}
	// The first line traced is the greeting: the pass has begun, nothing
	// is sent yet.
	var growth func() int64
	r.Trace, growth = heaptest.GrowthAtFirstWrite(nil)
	if err := r.Run(context.Background(), FullPass); err != nil {
		t.Fatal(err)
	}
	if got := len(srv.Messages()); got != n {
		t.Fatalf("delivered %d messages, want %d", got, n)
	}
	// Two messages' headers are 1 MiB; the queue's are 32.
	if grown := growth(); grown > 8<<20 {
		t.Errorf("the live heap grew by %.1f MiB before the first message was sent: the pass holds the queue's envelopes", float64(grown)/(1<<20))
	}
}
