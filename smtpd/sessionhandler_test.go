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

// batchHandler records how a session asks about recipients: "rcpt a" for
// Rcpt, "batch a b" for RcptBatch. It refuses the addresses in refuse and
// answers only the first short replies of a batch when short is set
// (panics when it is -1).
type batchHandler struct {
	nopHandler
	calls  []string
	refuse map[string]*Reply
	short  int
}

func (h *batchHandler) Rcpt(_ context.Context, _ *Envelope, addr string) *Reply {
	h.calls = append(h.calls, "rcpt "+addr)
	return h.refuse[addr]
}

func (h *batchHandler) RcptBatch(_ context.Context, env *Envelope, addrs []string) []*Reply {
	h.calls = append(h.calls, "batch "+strings.Join(addrs, " "))
	if h.short < 0 {
		panic("batch")
	}
	replies := make([]*Reply, len(addrs))
	for i, a := range addrs {
		replies[i] = h.refuse[a]
	}
	if h.short > 0 {
		replies = replies[:h.short]
	}
	return replies
}

// TestRcptBatch: pipelined RCPTs already in the input reach an
// RcptBatcher as one batch, cut at anything the session answers itself
// (a syntax error, a parameter, the recipient limit) and at any other
// command; the replies go out in the order of the commands.
func TestRcptBatch(t *testing.T) {
	const (
		ok     = "250 2.1.5 Recipient OK\r\n"
		start  = "EHLO c\r\nMAIL FROM:<s@x>\r\n"
		starts = greeting + ehloReply + "250 2.1.0 Sender OK\r\n"
		end    = "DATA\r\nhi\r\n.\r\nQUIT\r\n"
		ends   = "354 Send message, end with <CRLF>.<CRLF>\r\n250 2.0.0 OK: message accepted\r\n221 2.0.0 Bye\r\n"
	)
	refused := &Reply{550, "5.1.1", "no such user"}
	tests := []struct {
		name      string
		max       int
		short     int
		input     string
		wantCalls []string
		wantOut   string
	}{
		{"one batch, a refusal in the middle",
			0, 0, start + "RCPT TO:<a@x>\r\nRCPT TO:<bad@x>\r\nRCPT TO:<c@x>\r\n" + end,
			[]string{"batch a@x bad@x c@x"},
			starts + ok + "550 5.1.1 no such user\r\n" + ok + ends},
		{"cut by a syntax error and a parameter",
			0, 0, start + "RCPT TO:<a@x>\r\nrcpt to:<b@x>\r\nRCPT TO:a@x@\r\nRCPT TO:<c@x>\r\nRCPT TO:<d@x> NOTIFY=NEVER\r\nRCPT TO:<e@x>\r\n" + end,
			[]string{"batch a@x b@x", "rcpt c@x", "rcpt e@x"},
			starts + ok + ok + "501 5.1.3 Bad recipient address syntax\r\n" + ok + "555 5.5.4 Parameter NOTIFY not supported\r\n" + ok + ends},
		{"no more than the recipient limit",
			3, 0, start + "RCPT TO:<a@x>\r\nRCPT TO:<b@x>\r\nRCPT TO:<c@x>\r\nRCPT TO:<d@x>\r\nRCPT TO:<e@x>\r\n" + end,
			[]string{"batch a@x b@x c@x"},
			starts + ok + ok + ok + "452 4.5.3 Too many recipients\r\n452 4.5.3 Too many recipients\r\n" + ends},
		{"too few replies: 451 for the rest",
			0, 1, start + "RCPT TO:<a@x>\r\nRCPT TO:<b@x>\r\n" + end,
			[]string{"batch a@x b@x"},
			starts + ok + "451 4.3.0 Local error in processing\r\n" + ends},
		{"a panic: 451 for all",
			0, -1, start + "RCPT TO:<a@x>\r\nRCPT TO:<b@x>\r\nQUIT\r\n",
			[]string{"batch a@x b@x"},
			starts + "451 4.3.0 Local error in processing\r\n451 4.3.0 Local error in processing\r\n221 2.0.0 Bye\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := &batchHandler{refuse: map[string]*Reply{"bad@x": refused}, short: tt.short}
			out, err := runSession(t, &Server{Hostname: testHost, Handler: h, MaxRecipients: tt.max}, tt.input)
			if err != nil {
				t.Fatalf("ServeConn: %v", err)
			}
			if !reflect.DeepEqual(h.calls, tt.wantCalls) {
				t.Errorf("calls = %q, want %q", h.calls, tt.wantCalls)
			}
			if out != tt.wantOut {
				t.Errorf("dialogue:\n%s\nwant:\n%s", out, tt.wantOut)
			}
		})
	}
}
