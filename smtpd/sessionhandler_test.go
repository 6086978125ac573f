package smtpd

import (
	"context"
	"io"
	"reflect"
	"strings"
	"sync"
	"testing"
)

// eventMaker records, per session, the calls a SessionHandler gets.
type eventMaker struct {
	nopHandler
	mu       sync.Mutex
	sessions [][]string
}

type eventSession struct {
	m *eventMaker
	i int
}

func (m *eventMaker) NewSession(remote string) SessionHandler {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sessions = append(m.sessions, nil)
	return &eventSession{m: m, i: len(m.sessions) - 1}
}

func (s *eventSession) note(ev string) {
	s.m.mu.Lock()
	defer s.m.mu.Unlock()
	s.m.sessions[s.i] = append(s.m.sessions[s.i], ev)
}

func (s *eventSession) Rcpt(_ context.Context, _ *Envelope, addr string) *Reply {
	s.note("rcpt " + addr)
	return nil
}

func (s *eventSession) Data(_ context.Context, _ *Envelope, r io.Reader) *Reply {
	s.note("data")
	io.Copy(io.Discard, r)
	return nil
}

func (s *eventSession) Reset(context.Context) { s.note("reset") }
func (s *eventSession) Close()                { s.note("close") }

// TestSessionMaker: one SessionHandler per session, told of every
// transaction that ends without DATA and closed once at the end.
func TestSessionMaker(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  []string
	}{
		{"two messages then QUIT",
			"EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nDATA\r\nhi\r\n.\r\nMAIL FROM:<a@x>\r\nRCPT TO:<c@x>\r\nDATA\r\nho\r\n.\r\nQUIT\r\n",
			[]string{"rcpt b@x", "data", "rcpt c@x", "data", "close"}},
		{"RSET and EHLO end a transaction, RSET without one does not",
			"EHLO c\r\nRSET\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\nRSET\r\nMAIL FROM:<a@x>\r\nEHLO c\r\nQUIT\r\n",
			[]string{"rcpt b@x", "reset", "reset", "close"}},
		{"client leaves mid-transaction",
			"EHLO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@x>\r\n",
			[]string{"rcpt b@x", "close"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := &eventMaker{}
			out, err := runSession(t, &Server{Hostname: testHost, Handler: m}, tt.input)
			if err != nil {
				t.Fatalf("ServeConn: %v\n%s", err, out)
			}
			if strings.Contains(out, "451") {
				t.Fatalf("unexpected 451:\n%s", out)
			}
			if len(m.sessions) != 1 || !reflect.DeepEqual(m.sessions[0], tt.want) {
				t.Errorf("events = %q, want one session with %q", m.sessions, tt.want)
			}
		})
	}
}
