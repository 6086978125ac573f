package relay

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

// A deadline covers a whole reply, not each read: a server that drips its
// greeting an octet at a time cannot hold the caller longer than
// Host.Timeout (issue 20, item 2).
func TestWholeReplyDeadline(t *testing.T) {
	const drip = 100 * time.Millisecond
	const octets = 100 // 10 s in all, far beyond the timeout
	sc := &scripted{t: t, done: make(chan error, 1), trace: &syncBuffer{}}
	cli, srv := net.Pipe()
	t.Cleanup(func() { cli.Close(); srv.Close() })
	sc.cli = cli
	go func() {
		defer srv.Close()
		line := "220 " + strings.Repeat("x", octets) + "\r\n"
		for i := 0; i < len(line); i++ {
			if _, err := srv.Write([]byte{line[i]}); err != nil {
				sc.done <- nil // the client gave up and closed
				return
			}
			time.Sleep(drip)
		}
		sc.done <- errors.New("the whole greeting was sent: the client waited for all of it")
	}()
	h := plainHost()
	h.Timeout = 500 * time.Millisecond
	start := time.Now()
	_, err := Dial(context.Background(), h, sc.options())
	took := time.Since(start)
	if !errors.Is(err, ErrTransport) || !Temporary(err) {
		t.Errorf("error %v: want a temporary transport timeout", err)
	}
	// Generous for a loaded machine, yet well under the drip's 10 s.
	if took > 4*time.Second {
		t.Errorf("Dial took %v with a %v timeout", took, h.Timeout)
	}
	sc.wait()
}

// data_timeout bounds the wait after the final dot as configured, also
// when it is shorter than the command timeout.
func TestDataTimeoutAsConfigured(t *testing.T) {
	h := plainHost()
	h.Timeout, h.DataTimeout = time.Minute, 300*time.Millisecond
	s, sc := dialScriptedHost(t, h, nil,
		ex{c: "MAIL FROM:<a@x>\r\n", s: ok}, ex{c: "RCPT TO:<b@y>\r\n", s: ok},
		ex{c: "DATA\r\n", s: "354 go\r\n"},
		ex{c: "body\r\n.\r\n"},
		ex{drain: true},
	)
	start := time.Now()
	_, err := s.Send(context.Background(), &Envelope{From: "a@x", To: []string{"b@y"}}, strings.NewReader("body"))
	var ne net.Error
	if !errors.Is(err, ErrTransport) || !Temporary(err) || !errors.As(err, &ne) || !ne.Timeout() {
		t.Errorf("error %v: want a temporary timeout", err)
	}
	// The script's server gives up after 5 s; the data timeout is 300 ms.
	if took := time.Since(start); took > 4*time.Second {
		t.Errorf("the final reply was awaited %v with data timeout %v", took, h.DataTimeout)
	}
	s.Quit()
	sc.wait()
}

// A reply queued behind the 354 puts the dialogue out of step: the
// message is not sent and the error is an unknown reply (issue 20, item 4).
func TestReplyBehind354(t *testing.T) {
	for _, tt := range []struct {
		name   string
		ext    []string
		script []ex
	}{
		{"one at a time", nil, []ex{
			{c: "MAIL FROM:<a@x>\r\n", s: ok}, {c: "RCPT TO:<b@y>\r\n", s: ok},
			{c: "DATA\r\n", s: "354 go\r\n250 2.0.0 fake\r\n"}}},
		{"pipelined", []string{"PIPELINING"}, []ex{
			{c: "MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n", s: ok + ok + "354 go\r\n250 2.0.0 fake\r\n"}}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// serveScript fails if anything (the body, a dot) follows DATA.
			s, sc := dialScripted(t, tt.ext, tt.script...)
			res, err := s.SendAndQuit(context.Background(), &Envelope{From: "a@x", To: []string{"b@y"}}, strings.NewReader("body"))
			if !errors.Is(err, ErrUnknownReply) || !TryNextHost(err) {
				t.Errorf("error %v: want an unknown reply", err)
			}
			if res.Data != nil || len(res.Accepted()) != 0 {
				t.Errorf("result %+v: the message counted as sent", res)
			}
			sc.wait()
		})
	}
}

// Only 250 accepts the message (RFC 5321 §4.3.2); a 221 to the final dot
// is an unknown reply (issue 20, item 5).
func TestOnly250AcceptsData(t *testing.T) {
	s, sc := dialScripted(t, nil,
		ex{c: "MAIL FROM:<a@x>\r\n", s: ok}, ex{c: "RCPT TO:<b@y>\r\n", s: ok},
		ex{c: "DATA\r\n", s: "354 go\r\n"},
		ex{c: "body\r\n.\r\n", s: "221 2.0.0 closing\r\n"},
	)
	res, err := s.Send(context.Background(), &Envelope{From: "a@x", To: []string{"b@y"}}, strings.NewReader("body"))
	var e *Error
	if !errors.Is(err, ErrUnknownReply) || !errors.As(err, &e) || e.Code != 221 {
		t.Errorf("error %v: want an unknown reply carrying the 221", err)
	}
	if res.Data != nil || len(res.Accepted()) != 0 {
		t.Errorf("result %+v: the message counted as sent", res)
	}
	s.Quit() // broken: closes without QUIT
	sc.wait()
}

// What the errors say when the path to the server is not what the config
// asks for: AUTH offered only before STARTTLS, a mechanism not offered.
// The session is reported with the TLS state it had.
func TestSessionErrorTexts(t *testing.T) {
	srvTLS, pool := testCert(t, "mx.test")
	t.Run("AUTH only in clear", func(t *testing.T) {
		sc := startScript(t, srvTLS,
			ex{s: greet},
			ex{c: ehlo, s: ehloReply("STARTTLS", "AUTH PLAIN LOGIN")},
			ex{c: "STARTTLS\r\n", s: "220 go\r\n", tls: true},
			ex{c: ehlo, s: ehloReply("PIPELINING")},
			ex{c: quit, s: bye},
		)
		h := plainHost()
		h.TLS, h.TLSVerify, h.RootCAs = TLSStartTLS, true, pool
		h.Username, h.Password = "u", staticPassword("p")
		_, err := Dial(context.Background(), h, sc.options())
		want := "relay: AUTH: server does not offer AUTH after STARTTLS, only before it in clear (offered PLAIN LOGIN); credentials go only over TLS"
		if err == nil || err.Error() != want {
			t.Errorf("error %v, want %q", err, want)
		}
		var se *SessionError
		if !errors.As(err, &se) || se.TLS == nil {
			t.Errorf("error %#v does not carry the negotiated TLS", err)
		}
		sc.wait()
	})
	t.Run("mechanism not offered", func(t *testing.T) {
		sc := startScript(t, nil,
			ex{s: greet}, ex{c: ehlo, s: ehloReply("AUTH PLAIN LOGIN")}, ex{c: quit, s: bye})
		h := plainHost()
		h.Name, h.Username, h.Password, h.Auth = "127.0.0.1", "u", staticPassword("p"), AuthCRAMMD5
		_, err := Dial(context.Background(), h, sc.options())
		want := "relay: AUTH CRAM-MD5: server does not offer CRAM-MD5 (it offers PLAIN LOGIN)"
		if err == nil || err.Error() != want {
			t.Errorf("error %v, want %q", err, want)
		}
		var se *SessionError
		if !errors.As(err, &se) || se.TLS != nil {
			t.Errorf("error %#v: want a SessionError without TLS", err)
		}
		sc.wait()
	})
}
