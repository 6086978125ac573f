package relay

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	"relaymail/internal/smtptest"
)

// hostFor returns a Host that reaches srv with the given TLS mode,
// verifying its certificate.
func hostFor(srv *smtptest.Server, mode TLSMode) Host {
	return Host{
		Name:      srv.Host(),
		Port:      srv.Port(),
		TLS:       mode,
		TLSVerify: true,
		RootCAs:   srv.RootCAs(),
		Timeout:   5 * time.Second,
	}
}

// waitClosed fails unless every connection srv accepted is closed soon.
func waitClosed(t *testing.T, srv *smtptest.Server) {
	t.Helper()
	deadline := time.Now().Add(2 * time.Second)
	for srv.OpenConns() != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d connection(s) still open", srv.OpenConns())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

const testBody = "From: a@example.com\nTo: b@example.com\nSubject: test\n\n.leading dot\nline two\r\nno final newline"
const testWire = "From: a@example.com\r\nTo: b@example.com\r\nSubject: test\r\n\r\n.leading dot\r\nline two\r\nno final newline\r\n"

func TestIntegrationModes(t *testing.T) {
	modes := []struct {
		srv smtptest.TLSMode
		cli TLSMode
	}{
		{smtptest.TLSNone, TLSNone},
		{smtptest.TLSStartTLS, TLSStartTLS},
		{smtptest.TLSImplicit, TLSImplicit},
	}
	for _, m := range modes {
		for _, mech := range []AuthMechanism{"", AuthPlain, AuthLogin, AuthCRAMMD5} {
			t.Run(fmt.Sprintf("%v/%s", m.cli, mech), func(t *testing.T) {
				srv := smtptest.Start(t, smtptest.Options{TLS: m.srv, Users: map[string]string{"user": "s3cret-pw"}, AuthRequired: true})
				h := hostFor(srv, m.cli)
				h.Username, h.Password, h.Auth = "user", staticPassword("s3cret-pw"), mech
				var trace syncBuffer
				env := &Envelope{From: "a@example.com", To: []string{"b@example.com", "c@example.com"}}
				last, failed, err := Deliver(context.Background(), []Host{h}, Options{LocalName: "client.test", Trace: &trace}, env, strings.NewReader(testBody), int64(len(testBody)))
				if err != nil || len(failed) != 0 {
					t.Fatalf("Deliver: %v (failed %v)\n%s", err, failed, trace.String())
				}
				if (last.TLS != nil) != (m.cli != TLSNone) {
					t.Errorf("TLS state %v in mode %v", last.TLS, m.cli)
				}
				if got := last.Result.Accepted(); len(got) != 2 {
					t.Errorf("accepted %v", got)
				}
				msgs := srv.Messages()
				if len(msgs) != 1 {
					t.Fatalf("%d messages", len(msgs))
				}
				msg := msgs[0]
				if msg.From != "a@example.com" || !reflect.DeepEqual(msg.To, env.To) || string(msg.Data) != testWire || msg.AuthUser != "user" || msg.Helo != "client.test" {
					t.Errorf("message %+v", msg)
				}
				if msg.TLS != (m.cli != TLSNone) {
					t.Errorf("server saw TLS=%v", msg.TLS)
				}
				if msg.MailOptions.Size != int64(len(msg.Data)) { // RFC 1870: as transmitted, unstuffed
					t.Errorf("SIZE=%d, want %d", msg.MailOptions.Size, len(msg.Data))
				}
				leakCheck(t, "s3cret-pw", "user", trace.String(), err)
				waitClosed(t, srv)
			})
		}
	}
}

func TestIntegrationFailures(t *testing.T) {
	to := []string{"b@example.com", "c@example.com"}
	tests := []struct {
		name     string
		setup    func(srv *smtptest.Server)
		opts     smtptest.Options
		noAuth   bool
		utf8     bool  // a recipient needs SMTPUTF8
		class    error // nil: err == nil
		temp     bool
		accepted []string
		deferred []string
		refused  []string
		messages int
	}{
		{name: "greeting 554", setup: func(s *smtptest.Server) { s.SetGreetingErr(smtptest.Reply(554, "5.3.2", "not now")) }, class: ErrFatal, temp: true},
		{name: "greeting 421", setup: func(s *smtptest.Server) { s.SetGreetingErr(smtptest.Reply(421, "4.3.2", "busy")) }, class: ErrBusy, temp: true},
		{name: "AUTH 535", setup: func(s *smtptest.Server) { s.SetAuthErr(smtptest.Reply(535, "5.7.8", "bad")) }, class: ErrAuth, temp: true},
		{name: "AUTH 454", setup: func(s *smtptest.Server) { s.SetAuthErr(smtptest.Reply(454, "4.7.0", "later")) }, class: ErrBusy, temp: true},
		{name: "no AUTH but required", noAuth: true, class: ErrAuth, refused: to},
		{name: "MAIL 550", setup: func(s *smtptest.Server) { s.SetMailErr(smtptest.Reply(550, "5.7.1", "sender refused")) }, class: ErrFatal, refused: to},
		{name: "MAIL 451", setup: func(s *smtptest.Server) { s.SetMailErr(smtptest.Reply(451, "4.3.0", "later")) }, class: ErrBusy, temp: true, deferred: to},
		{name: "one RCPT 550", setup: func(s *smtptest.Server) { s.SetRcptErr("c@example.com", smtptest.Reply(550, "5.1.1", "no such user")) },
			accepted: to[:1], refused: to[1:], messages: 1},
		{name: "one RCPT 450", setup: func(s *smtptest.Server) { s.SetRcptErr("b@example.com", smtptest.Reply(450, "4.2.1", "mailbox busy")) },
			accepted: to[1:], deferred: to[:1], messages: 1},
		{name: "every RCPT refused", setup: func(s *smtptest.Server) {
			s.SetRcptErr("b@example.com", smtptest.Reply(550, "5.1.1", "no"))
			s.SetRcptErr("c@example.com", smtptest.Reply(551, "5.1.6", "moved"))
		}, refused: to},
		{name: "end of data 554", setup: func(s *smtptest.Server) { s.SetDataErr(smtptest.Reply(554, "5.6.0", "content rejected")) }, class: ErrFatal, refused: to},
		{name: "end of data 451", setup: func(s *smtptest.Server) { s.SetDataErr(smtptest.Reply(451, "4.3.0", "later")) }, class: ErrBusy, temp: true, deferred: to},
		{name: "dropped mid-DATA", setup: func(s *smtptest.Server) { s.DropMidData() }, class: ErrTransport, temp: true, deferred: to},
		{name: "too big for SIZE", opts: smtptest.Options{MaxSize: 10}, class: ErrTooBig, refused: to},
		{name: "SMTPUTF8 offered", opts: smtptest.Options{SMTPUTF8: true}, utf8: true, accepted: []string{"b@example.com", "jörg@example.com"}, messages: 1},
		{name: "SMTPUTF8 not offered", utf8: true, class: ErrUnsupported, refused: []string{"b@example.com", "jörg@example.com"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := tt.opts
			o.TLS = smtptest.TLSStartTLS
			o.Users = map[string]string{"user": "pw"}
			o.AuthRequired = true
			srv := smtptest.Start(t, o)
			if tt.setup != nil {
				tt.setup(srv)
			}
			h := hostFor(srv, TLSStartTLS)
			if !tt.noAuth {
				h.Username, h.Password = "user", staticPassword("pw")
			}
			env := &Envelope{From: "a@example.com", To: to}
			if tt.utf8 {
				env.To = []string{"b@example.com", "jörg@example.com"}
			}
			last, _, err := Deliver(context.Background(), []Host{h}, Options{}, env, strings.NewReader(testBody), int64(len(testBody)))
			if tt.class == nil && err != nil || tt.class != nil && !errors.Is(err, tt.class) {
				t.Fatalf("error %v, want %v", err, tt.class)
			}
			if Temporary(err) != tt.temp {
				t.Errorf("Temporary(%v) = %v", err, !tt.temp)
			}
			if last.Result != nil {
				got := outcome(last.Result)
				want := recipientOutcome{accepted: tt.accepted, deferred: tt.deferred, refused: tt.refused}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("recipients %+v, want %+v", got, want)
				}
			} else if tt.accepted != nil || tt.refused != nil || tt.deferred != nil {
				t.Errorf("no result, want recipients")
			}
			msgs := srv.Messages()
			if n := len(msgs); n != tt.messages {
				t.Errorf("%d messages delivered, want %d", n, tt.messages)
			}
			if tt.utf8 && len(msgs) == 1 && !msgs[0].MailOptions.UTF8 {
				t.Errorf("MAIL without SMTPUTF8: %+v", msgs[0].MailOptions)
			}
			waitClosed(t, srv)
		})
	}
}

// A server that never answers: a temporary transport timeout within
// bounded time, in each TLS mode.
func TestIntegrationHang(t *testing.T) {
	for _, m := range []struct {
		srv smtptest.TLSMode
		cli TLSMode
	}{{smtptest.TLSNone, TLSNone}, {smtptest.TLSImplicit, TLSImplicit}} {
		srv := smtptest.Start(t, smtptest.Options{TLS: m.srv})
		srv.Hang()
		h := hostFor(srv, m.cli)
		h.Timeout = 300 * time.Millisecond
		start := time.Now()
		_, err := Dial(context.Background(), h, Options{})
		var ne net.Error
		if !errors.Is(err, ErrTransport) || !Temporary(err) || !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("%v: error %v, want a temporary timeout", m.cli, err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("%v: took %v", m.cli, d)
		}
		waitClosed(t, srv)
	}
}

// Several messages over one session, including after a failed one.
func TestIntegrationSessionReuse(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{TLS: smtptest.TLSImplicit, DSN: true})
	srv.SetRcptErr("bad@example.com", smtptest.Reply(550, "5.1.1", "no"))
	s, err := Dial(context.Background(), hostFor(srv, TLSImplicit), Options{})
	if err != nil {
		t.Fatal(err)
	}
	for i, env := range []*Envelope{
		{From: "a@example.com", To: []string{"b@example.com"}, Notify: []string{"SUCCESS", "FAILURE"}, Ret: "HDRS", EnvID: "id 1"},
		{From: "", To: []string{"bad@example.com"}},
		{From: "a@example.com", To: []string{"bad@example.com", "c@example.com"}},
	} {
		if _, err := s.Send(context.Background(), env, strings.NewReader(fmt.Sprintf("message %d\n", i))); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	if err := s.Quit(); err != nil {
		t.Error(err)
	}
	msgs := srv.Messages()
	if len(msgs) != 2 || string(msgs[1].Data) != "message 2\r\n" || !reflect.DeepEqual(msgs[1].To, []string{"c@example.com"}) {
		t.Fatalf("messages %+v", msgs)
	}
	mo := msgs[0].MailOptions
	if mo.Return != "HDRS" || mo.EnvelopeID != "id 1" || len(msgs[0].RcptOptions) != 1 || len(msgs[0].RcptOptions[0].Notify) != 2 {
		t.Errorf("DSN parameters lost: %+v %+v", mo, msgs[0].RcptOptions)
	}
	waitClosed(t, srv)
}

func TestDeliverFallback(t *testing.T) {
	// A port with nothing listening: connection refused.
	deadPort := smtptest.DeadPort(t)

	hung := smtptest.Start(t, smtptest.Options{})
	hung.Hang()
	busy := smtptest.Start(t, smtptest.Options{})
	busy.SetMailErr(smtptest.Reply(452, "4.3.1", "full"))
	refusing := smtptest.Start(t, smtptest.Options{})
	refusing.SetMailErr(smtptest.Reply(550, "5.7.1", "no"))
	partial := smtptest.Start(t, smtptest.Options{})
	partial.SetRcptErr("b@example.com", smtptest.Reply(450, "4.2.1", "later"))
	good := smtptest.Start(t, smtptest.Options{})

	deadHost := Host{Name: "127.0.0.1", Port: deadPort, TLS: TLSNone, Timeout: time.Second}
	hungHost := hostFor(hung, TLSNone)
	hungHost.Timeout = 300 * time.Millisecond
	env := &Envelope{From: "a@example.com", To: []string{"b@example.com", "c@example.com"}}

	tests := []struct {
		name     string
		hosts    []Host
		failed   int
		final    *smtptest.Server
		class    error
		messages map[*smtptest.Server]int
	}{
		{"dead, hung, busy, then good", []Host{deadHost, hungHost, hostFor(busy, TLSNone), hostFor(good, TLSNone)}, 3, good, nil,
			map[*smtptest.Server]int{good: 1, busy: 0}},
		{"permanent refusal stops", []Host{hostFor(refusing, TLSNone), hostFor(good, TLSNone)}, 0, refusing, ErrFatal,
			map[*smtptest.Server]int{good: 0}},
		{"deferred recipient is no reason to move on", []Host{hostFor(partial, TLSNone), hostFor(good, TLSNone)}, 0, partial, nil,
			map[*smtptest.Server]int{good: 0, partial: 1}},
		{"all fail temporarily", []Host{deadHost, hostFor(busy, TLSNone)}, 1, busy, ErrBusy, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := map[*smtptest.Server]int{}
			for srv := range tt.messages {
				before[srv] = len(srv.Messages())
			}
			last, failed, err := Deliver(context.Background(), tt.hosts, Options{}, env, strings.NewReader(testBody), int64(len(testBody)))
			if tt.class == nil && err != nil || tt.class != nil && !errors.Is(err, tt.class) {
				t.Fatalf("error %v, want %v", err, tt.class)
			}
			if err != last.Err {
				t.Errorf("err %v != last.Err %v", err, last.Err)
			}
			if len(failed) != tt.failed {
				t.Errorf("%d failed attempts, want %d: %+v", len(failed), tt.failed, failed)
			}
			for _, a := range failed {
				if !Temporary(a.Err) {
					t.Errorf("moved on after %v", a.Err)
				}
			}
			if last.Host.Port != tt.final.Port() {
				t.Errorf("last attempt at port %d, want %d", last.Host.Port, tt.final.Port())
			}
			for srv, n := range tt.messages {
				if got := len(srv.Messages()) - before[srv]; got != n {
					t.Errorf("server %d got %d messages, want %d", srv.Port(), got, n)
				}
			}
		})
	}
	if _, _, err := Deliver(context.Background(), nil, Options{}, env, strings.NewReader(""), 0); err == nil {
		t.Error("Deliver with no hosts succeeded")
	}
	for _, srv := range []*smtptest.Server{hung, busy, refusing, partial, good} {
		waitClosed(t, srv)
	}
}

// A large message streams through and arrives intact.
func TestIntegrationLargeMessage(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{TLS: smtptest.TLSStartTLS})
	var in, want bytes.Buffer
	for i := range 60000 {
		line := fmt.Sprintf("%s line %d %s", strings.Repeat(".", i%3), i, strings.Repeat("x", i%120))
		in.WriteString(line + "\n")
		want.WriteString(line + "\r\n")
	}
	env := &Envelope{From: "a@example.com", To: []string{"b@example.com"}}
	_, _, err := Deliver(context.Background(), []Host{hostFor(srv, TLSStartTLS)}, Options{}, env, bytes.NewReader(in.Bytes()), int64(in.Len()))
	if err != nil {
		t.Fatal(err)
	}
	msgs := srv.Messages()
	if len(msgs) != 1 || !bytes.Equal(msgs[0].Data, want.Bytes()) {
		t.Fatalf("message of %d octets arrived changed", in.Len())
	}
	waitClosed(t, srv)
}

// A server that rejects the size during DATA in its own words (552 5.3.4)
// when the client did not know the size.
func TestIntegrationTooBigAtData(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{MaxSize: 20})
	env := &Envelope{From: "a@example.com", To: []string{"b@example.com"}}
	s, err := Dial(context.Background(), hostFor(srv, TLSNone), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Quit()
	_, err = s.Send(context.Background(), env, strings.NewReader(strings.Repeat("y", 100)))
	if !errors.Is(err, ErrTooBig) || !errors.Is(err, ErrFatal) {
		t.Errorf("error %v, want ErrTooBig", err)
	}
}

// TestUncarriableRecipientRefusedAlone: a recipient no RCPT TO can carry
// (an envelope queued before the intake refused such addresses) gets a
// permanent error of its own and no command; the others get the message,
// with and without PIPELINING.
func TestUncarriableRecipientRefusedAlone(t *testing.T) {
	for _, noPipelining := range []bool{false, true} {
		t.Run(fmt.Sprintf("no-pipelining=%v", noPipelining), func(t *testing.T) {
			srv := smtptest.Start(t, smtptest.Options{NoPipelining: noPipelining})
			bad := []string{`"a<b>c"@example.com`, "x\xffy@example.com", strings.Repeat("l", 300) + "@example.com"}
			to := []string{"first@example.com", bad[0], "second@example.com", bad[1], bad[2], "third@example.com"}
			env := &Envelope{From: "a@example.com", To: to}
			last, _, err := Deliver(context.Background(), []Host{hostFor(srv, TLSNone)}, Options{LocalName: "client.test"},
				env, strings.NewReader(testBody), int64(len(testBody)))
			if err != nil {
				t.Fatalf("Deliver: %v", err)
			}
			want := []string{"first@example.com", "second@example.com", "third@example.com"}
			if got := last.Result.Accepted(); !reflect.DeepEqual(got, want) {
				t.Errorf("accepted %q, want %q", got, want)
			}
			for _, r := range last.Result.Recipients {
				isBad := r.Addr == bad[0] || r.Addr == bad[1] || r.Addr == bad[2]
				if isBad && (r.Err == nil || Temporary(r.Err)) {
					t.Errorf("%.40q: err %v, want a permanent refusal", r.Addr, r.Err)
				}
			}
			msgs := srv.Messages()
			if len(msgs) != 1 || !reflect.DeepEqual(msgs[0].To, want) {
				t.Fatalf("server got %+v", msgs)
			}
		})
	}
	t.Run("none carriable", func(t *testing.T) {
		srv := smtptest.Start(t, smtptest.Options{})
		env := &Envelope{From: "a@example.com", To: []string{"<x>@example.com"}}
		last, _, err := Deliver(context.Background(), []Host{hostFor(srv, TLSNone)}, Options{LocalName: "client.test"},
			env, strings.NewReader(testBody), int64(len(testBody)))
		if err != nil || last.Result == nil || last.Result.Recipients[0].Err == nil {
			t.Fatalf("Deliver: %v, result %+v", err, last.Result)
		}
		if n := len(srv.Messages()); n != 0 {
			t.Errorf("%d messages sent", n)
		}
	})
}
