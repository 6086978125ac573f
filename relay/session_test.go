package relay

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestTranscriptSend(t *testing.T) {
	sc := startScript(t, nil,
		ex{s: "220-mx.test ESMTP\r\n220 second line\r\n"},
		ex{c: ehlo, s: ehloReply("8BITMIME", "SIZE 1000", "ENHANCEDSTATUSCODES")},
		ex{c: "MAIL FROM:<a@x.test> SIZE=27 BODY=8BITMIME\r\n", s: "250 2.1.0 ok\r\n"},
		ex{c: "RCPT TO:<b@y.test>\r\n", s: "250 2.1.5 ok\r\n"},
		ex{c: "RCPT TO:<c@y.test>\r\n", s: "550-5.1.1 no such user\r\n550 5.1.1 really\r\n"},
		ex{c: "DATA\r\n", s: "354 go ahead\r\n"},
		ex{c: "Subject: hi\r\n\r\n..dot\r\nGr\xfc\r\n.\r\n", s: "250 2.0.0 queued as X\r\n"},
		ex{c: quit, s: bye},
	)
	s, err := Dial(context.Background(), plainHost(), sc.options())
	if err != nil {
		t.Fatal(err)
	}
	if got, want := s.Greeting(), "mx.test ESMTP\nsecond line"; got != want {
		t.Errorf("Greeting = %q, want %q", got, want)
	}
	if _, ok := s.TLSState(); ok {
		t.Error("TLSState reports TLS on a plaintext session")
	}
	if got := s.Extensions(); got["SIZE"] != "1000" || len(got) != 3 {
		t.Errorf("Extensions = %v", got)
	}
	msg := "Subject: hi\n\n.dot\nGr\xfc"
	res, err := s.Send(context.Background(), &Envelope{From: "a@x.test", To: []string{"b@y.test", "c@y.test"}, Size: 27, EightBit: true}, strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	if got := res.Accepted(); !reflect.DeepEqual(got, []string{"b@y.test"}) {
		t.Errorf("Accepted = %v", got)
	}
	ref := res.Refused()
	if len(ref) != 1 || ref[0].Addr != "c@y.test" || len(res.Deferred()) != 0 {
		t.Fatalf("Refused = %v, Deferred = %v", ref, res.Deferred())
	}
	var e *Error
	if !errors.As(ref[0].Err, &e) || e.Code != 550 || e.Enhanced != "5.1.1" || !errors.Is(e, ErrFatal) || e.Temporary() {
		t.Errorf("refusal = %#v", ref[0].Err)
	}
	if got, want := ref[0].Err.Error(), "relay: RCPT TO:<c@y.test>: 550 5.1.1 no such user; really"; got != want {
		t.Errorf("error text %q, want %q", got, want)
	}
	if res.Data == nil || res.Data.Code != 250 || res.Data.Lines[0] != "queued as X" {
		t.Errorf("Data = %+v", res.Data)
	}
	if err := s.Quit(); err != nil {
		t.Errorf("Quit: %v", err)
	}
	sc.wait()
	tr := sc.trace.String()
	for _, want := range []string{"<-- 220-mx.test ESMTP\n", "--> EHLO client.test\n", "--> RCPT TO:<c@y.test>\n", "<-- 550 5.1.1 really\n", "--> <message body, 27 octets>\n", "--> .\n", "--> QUIT\n"} {
		if !strings.Contains(tr, want) {
			t.Errorf("trace lacks %q:\n%s", want, tr)
		}
	}
	if strings.Contains(tr, "Subject") {
		t.Errorf("trace shows the message body:\n%s", tr)
	}
}

func TestTranscriptHELOFallback(t *testing.T) {
	for _, code := range []string{"500 5.5.1 what\r\n", "502 5.5.2 no EHLO\r\n"} {
		sc := startScript(t, nil,
			ex{s: greet},
			ex{c: ehlo, s: code},
			ex{c: "HELO client.test\r\n", s: "250 mx.test\r\n"},
			ex{c: "MAIL FROM:<>\r\n", s: ok},
			ex{c: "RCPT TO:<b@y.test>\r\n", s: ok},
			ex{c: "DATA\r\n", s: "354 go\r\n"},
			ex{c: "x\r\n.\r\n", s: ok},
			ex{c: quit, s: bye},
		)
		s, err := Dial(context.Background(), plainHost(), sc.options())
		if err != nil {
			t.Fatal(err)
		}
		if len(s.Extensions()) != 0 {
			t.Errorf("extensions after HELO: %v", s.Extensions())
		}
		// No SIZE, no BODY: nothing was offered.
		if _, err := s.Send(context.Background(), &Envelope{To: []string{"b@y.test"}, Size: 2, EightBit: true}, strings.NewReader("x")); err != nil {
			t.Fatal(err)
		}
		s.Quit()
		sc.wait()
	}
}

// Failures during Dial: the class of the error, that it is temporary
// (none is a verdict on a message), and whether QUIT was still sent (it
// is not after a protocol error).
func TestTranscriptDialErrors(t *testing.T) {
	srvTLS, pool := testCert(t, "mx.test")
	otherTLS, _ := testCert(t, "other.test")
	tests := []struct {
		name   string
		host   func(h *Host)
		cfg    *tls.Config
		script []ex
		class  error
		tcp    bool
		check  func(t *testing.T, err error)
	}{
		{name: "greeting 554", script: []ex{{s: "554 5.3.2 go away\r\n"}, {c: quit, s: bye}}, class: ErrFatal,
			check: func(t *testing.T, err error) {
				if got, want := err.Error(), "relay: greeting: 554 5.3.2 go away"; got != want {
					t.Errorf("error %q, want %q", got, want)
				}
			}},
		{name: "greeting 421", script: []ex{{s: "421 4.3.2 busy\r\n"}}, class: ErrBusy},
		{name: "greeting garbage", script: []ex{{s: "hello there\r\n"}}, class: ErrUnknownReply},
		{name: "greeting too long", script: []ex{{s: "220 " + strings.Repeat("x", 3000) + "\r\n"}}, class: ErrUnknownReply},
		{name: "greeting 250-only continuation then EOF", script: []ex{{s: "220-mx\r\n", close: true}}, class: ErrTransport,
			check: func(t *testing.T, err error) {
				if !errors.Is(err, io.ErrUnexpectedEOF) {
					t.Errorf("cause of %v is not io.ErrUnexpectedEOF", err)
				}
			}},
		{name: "EHLO 554", script: []ex{{s: greet}, {c: ehlo, s: "554 5.7.1 no\r\n"}, {c: quit, s: bye}}, class: ErrFatal},
		{name: "EHLO 501", script: []ex{{s: greet}, {c: ehlo, s: "501 5.5.4 bad name\r\n"}, {c: quit, s: bye}}, class: ErrSyntax},
		{name: "EHLO 354", script: []ex{{s: greet}, {c: ehlo, s: "354 what\r\n"}}, class: ErrUnknownReply},
		{name: "STARTTLS not offered", host: func(h *Host) { h.TLS = TLSStartTLS },
			script: []ex{{s: greet}, {c: ehlo, s: ehloReply("PIPELINING")}, {c: quit, s: bye}}, class: ErrUnsupported},
		{name: "STARTTLS after HELO", host: func(h *Host) { h.TLS = TLSStartTLS },
			script: []ex{{s: greet}, {c: ehlo, s: "502 no\r\n"}, {c: "HELO client.test\r\n", s: ok}, {c: quit, s: bye}}, class: ErrUnsupported},
		{name: "STARTTLS 454", host: func(h *Host) { h.TLS = TLSStartTLS },
			script: []ex{{s: greet}, {c: ehlo, s: ehloReply("STARTTLS")}, {c: "STARTTLS\r\n", s: "454 4.7.0 TLS not available\r\n"}, {c: quit, s: bye}},
			class:  ErrBusy},
		{name: "STARTTLS injection", host: func(h *Host) { h.TLS = TLSStartTLS },
			script: []ex{{s: greet}, {c: ehlo, s: ehloReply("STARTTLS")}, {c: "STARTTLS\r\n", s: "220 2.0.0 go ahead\r\n250-injected\r\n250 AUTH PLAIN\r\n"}},
			class:  ErrUnknownReply},
		{name: "TLS wrong name", host: func(h *Host) { h.TLS = TLSStartTLS; h.TLSVerify = true; h.RootCAs = pool }, cfg: otherTLS,
			script: []ex{{s: greet}, {c: ehlo, s: ehloReply("STARTTLS")}, {c: "STARTTLS\r\n", s: "220 go\r\n", tls: true, fail: true}},
			class:  ErrTransport, tcp: true},
		{name: "TLS unknown authority", host: func(h *Host) { h.TLS = TLSImplicit; h.TLSVerify = true }, cfg: srvTLS,
			script: []ex{{tls: true, fail: true}}, class: ErrTransport, tcp: true,
			check: func(t *testing.T, err error) {
				var ua x509.UnknownAuthorityError
				if !errors.As(err, &ua) {
					t.Errorf("cause of %v is not x509.UnknownAuthorityError", err)
				}
			}},
		{name: "AUTH not offered", host: func(h *Host) { h.Name = "127.0.0.1"; h.Username = "u"; h.Password = staticPassword("p") },
			script: []ex{{s: greet}, {c: ehlo, s: ehloReply("PIPELINING")}, {c: quit, s: bye}}, class: ErrUnsupported},
		{name: "AUTH mechanism not offered", host: func(h *Host) {
			h.Name = "127.0.0.1"
			h.Username = "u"
			h.Password = staticPassword("p")
			h.Auth = AuthXOAuth2
		},
			script: []ex{{s: greet}, {c: ehlo, s: ehloReply("AUTH PLAIN LOGIN")}, {c: quit, s: bye}}, class: ErrUnsupported},
		{name: "AUTH in cleartext to a remote host", host: func(h *Host) {
			h.Username = "u"
			h.Password = func(context.Context) (string, error) { panic("password fetched") }
		},
			script: []ex{{s: greet}, {c: ehlo, s: ehloReply("AUTH PLAIN")}, {c: quit, s: bye}}, class: ErrUnsupported},
		{name: "AUTH 535", host: func(h *Host) { h.Name = "localhost"; h.Username = "u"; h.Password = staticPassword("p") },
			script: []ex{{s: greet}, {c: ehlo, s: ehloReply("AUTH PLAIN")}, {c: "AUTH PLAIN " + b64("\x00u\x00p") + "\r\n", s: "535 5.7.8 bad credentials\r\n"}, {c: quit, s: bye}},
			class:  ErrAuth},
		{name: "AUTH 454", host: func(h *Host) { h.Name = "::1"; h.Username = "u"; h.Password = staticPassword("p") },
			script: []ex{{s: greet}, {c: ehlo, s: ehloReply("AUTH PLAIN")}, {c: "AUTH PLAIN " + b64("\x00u\x00p") + "\r\n", s: "454 4.7.0 try later\r\n"}, {c: quit, s: bye}},
			class:  ErrBusy},
		{name: "AUTH 538", host: func(h *Host) { h.Name = "127.0.0.2"; h.Username = "u"; h.Password = staticPassword("p") },
			script: []ex{{s: greet}, {c: ehlo, s: ehloReply("AUTH PLAIN")}, {c: "AUTH PLAIN " + b64("\x00u\x00p") + "\r\n", s: "538 5.7.11 encryption required\r\n"}, {c: quit, s: bye}},
			class:  ErrAuth},
		{name: "AUTH bad challenge", host: func(h *Host) {
			h.Name = "127.0.0.1"
			h.Username = "u"
			h.Password = staticPassword("p")
			h.Auth = AuthLogin
		},
			script: []ex{{s: greet}, {c: ehlo, s: ehloReply("AUTH LOGIN")}, {c: "AUTH LOGIN\r\n", s: "334 !!!\r\n"}, {c: "*\r\n", s: "501 5.5.2 cancelled\r\n"}, {c: quit, s: bye}},
			class:  ErrUnknownReply},
		{name: "password error", host: func(h *Host) {
			h.Name = "127.0.0.1"
			h.Username = "u"
			h.Password = func(context.Context) (string, error) { return "", errors.New("password_command failed") }
		},
			script: []ex{{s: greet}, {c: ehlo, s: ehloReply("AUTH PLAIN")}, {c: quit, s: bye}},
			check: func(t *testing.T, err error) {
				if !strings.Contains(err.Error(), "password_command failed") {
					t.Errorf("error %v lost its cause", err)
				}
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			start := startScript
			if tt.tcp {
				start = startScriptTCP
			}
			sc := start(t, tt.cfg, tt.script...)
			h := plainHost()
			if tt.host != nil {
				tt.host(&h)
			}
			s, err := Dial(context.Background(), h, sc.options())
			if err == nil {
				s.Close()
				t.Fatal("Dial succeeded")
			}
			if tt.class != nil && !errors.Is(err, tt.class) {
				t.Errorf("error %v is not %v", err, tt.class)
			}
			// None of these is a verdict on a message (SPEC §6).
			if !Temporary(err) || !errors.Is(err, ErrSession) {
				t.Errorf("Temporary(%v) = %v, ErrSession %v, want both", err, Temporary(err), errors.Is(err, ErrSession))
			}
			if !strings.HasPrefix(err.Error(), "relay: ") {
				t.Errorf("error %q lacks the package prefix", err)
			}
			if tt.check != nil {
				tt.check(t, err)
			}
			sc.wait()
		})
	}
}

func TestTranscriptStartTLS(t *testing.T) {
	srvTLS, pool := testCert(t, "mx.test")
	sc := startScript(t, srvTLS,
		ex{s: greet},
		ex{c: ehlo, s: ehloReply("STARTTLS", "PIPELINING")},
		ex{c: "STARTTLS\r\n", s: "220 2.0.0 ready\r\n", tls: true},
		ex{c: ehlo, s: ehloReply("PIPELINING", "AUTH PLAIN LOGIN")},
		ex{c: "AUTH PLAIN " + b64("\x00user\x00secret") + "\r\n", s: "235 2.7.0 ok\r\n"},
		ex{c: quit, s: bye},
	)
	h := plainHost()
	h.TLS, h.TLSVerify, h.RootCAs = TLSStartTLS, true, pool
	h.Username, h.Password = "user", staticPassword("secret")
	s, err := Dial(context.Background(), h, sc.options())
	if err != nil {
		t.Fatal(err)
	}
	st, ok := s.TLSState()
	if !ok || st.Version < tls.VersionTLS12 || len(st.PeerCertificates) == 0 || st.PeerCertificates[0].Subject.CommonName != "mx.test" {
		t.Errorf("TLSState = %v, %+v", ok, st)
	}
	ext := s.Extensions()
	if _, ok := ext["STARTTLS"]; ok || ext["AUTH"] != "PLAIN LOGIN" {
		t.Errorf("extensions after STARTTLS: %v", ext)
	}
	if err := s.Quit(); err != nil {
		t.Error(err)
	}
	sc.wait()
	if tr := sc.trace.String(); !strings.Contains(tr, "--> AUTH PLAIN <redacted>\n") || strings.Contains(tr, "secret") || strings.Contains(tr, b64("\x00user\x00secret")) {
		t.Errorf("trace:\n%s", tr)
	}
}

func TestTranscriptImplicitTLS(t *testing.T) {
	srvTLS, pool := testCert(t, "smtp.example")
	for _, verify := range []bool{true, false} {
		sc := startScript(t, srvTLS,
			ex{tls: true},
			ex{s: greet},
			ex{c: ehlo, s: ehloReply("AUTH PLAIN")},
			ex{c: quit, s: bye},
		)
		h := plainHost()
		h.TLS, h.TLSVerify = TLSImplicit, verify
		h.Name, h.TLSServerName = "10.0.0.1", "smtp.example"
		if verify {
			h.RootCAs = pool
		}
		s, err := Dial(context.Background(), h, sc.options())
		if err != nil {
			t.Fatalf("verify=%v: %v", verify, err)
		}
		if _, ok := s.TLSState(); !ok {
			t.Error("no TLS state")
		}
		s.Quit()
		sc.wait()
	}
}

// authCase is one AUTH exchange; the secret must never show in the trace
// or in an error, raw or base64-encoded.
type authCase struct {
	name     string
	mech     AuthMechanism
	offer    string
	exchange []ex
	class    error // nil: success
}

func TestTranscriptAuth(t *testing.T) {
	const user, pass = "tim", "tanstaaftanstaaf"
	cramChallenge := "<1896.697170952@postoffice.reston.mci.net>"
	plainIR := "AUTH PLAIN " + b64("\x00"+user+"\x00"+pass) + "\r\n"
	xoIR := "AUTH XOAUTH2 " + b64("user="+user+"\x01auth=Bearer "+pass+"\x01\x01") + "\r\n"
	obIR := "AUTH OAUTHBEARER " + b64("n,a="+user+",\x01host=127.0.0.1\x01port=587\x01auth=Bearer "+pass+"\x01\x01") + "\r\n"
	jsonErr := b64(`{"status":"invalid_token"}`)
	tests := []authCase{
		{name: "plain", mech: AuthPlain, offer: "PLAIN LOGIN", exchange: []ex{{c: plainIR, s: "235 2.7.0 ok\r\n"}}},
		{name: "plain refused", mech: AuthPlain, offer: "PLAIN", exchange: []ex{{c: plainIR, s: "535 5.7.8 no\r\n"}}, class: ErrAuth},
		{name: "login", mech: AuthLogin, offer: "PLAIN LOGIN", exchange: []ex{
			{c: "AUTH LOGIN\r\n", s: "334 VXNlcm5hbWU6\r\n"},
			{c: b64(user) + "\r\n", s: "334 UGFzc3dvcmQ6\r\n"},
			{c: b64(pass) + "\r\n", s: "235 2.7.0 ok\r\n"}}},
		{name: "login refused", mech: AuthLogin, offer: "LOGIN", exchange: []ex{
			{c: "AUTH LOGIN\r\n", s: "334 VXNlcm5hbWU6\r\n"},
			{c: b64(user) + "\r\n", s: "334 UGFzc3dvcmQ6\r\n"},
			{c: b64(pass) + "\r\n", s: "535 5.7.8 no\r\n"}}, class: ErrAuth},
		{name: "login third challenge", mech: AuthLogin, offer: "LOGIN", exchange: []ex{
			{c: "AUTH LOGIN\r\n", s: "334 VXNlcm5hbWU6\r\n"},
			{c: b64(user) + "\r\n", s: "334 UGFzc3dvcmQ6\r\n"},
			{c: b64(pass) + "\r\n", s: "334 " + b64("more?") + "\r\n"},
			{c: "*\r\n", s: "501 5.7.0 cancelled\r\n"}}, class: ErrUnknownReply},
		{name: "cram-md5 RFC 2195 example", mech: AuthCRAMMD5, offer: "CRAM-MD5", exchange: []ex{
			{c: "AUTH CRAM-MD5\r\n", s: "334 " + b64(cramChallenge) + "\r\n"},
			{c: "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw\r\n", s: "235 2.7.0 ok\r\n"}}},
		{name: "auto in cleartext prefers cram-md5", mech: "", offer: "LOGIN PLAIN CRAM-MD5", exchange: []ex{
			{c: "AUTH CRAM-MD5\r\n", s: "334 " + b64(cramChallenge) + "\r\n"},
			{c: "dGltIGI5MTNhNjAyYzdlZGE3YTQ5NWI0ZTZlNzMzNGQzODkw\r\n", s: "235 2.7.0 ok\r\n"}}},
		{name: "auto falls back to plain", mech: AuthAuto, offer: "XOAUTH2 PLAIN", exchange: []ex{{c: plainIR, s: "235 ok\r\n"}}},
		{name: "xoauth2", mech: AuthXOAuth2, offer: "XOAUTH2", exchange: []ex{{c: xoIR, s: "235 2.7.0 ok\r\n"}}},
		{name: "xoauth2 refused", mech: AuthXOAuth2, offer: "XOAUTH2", exchange: []ex{
			{c: xoIR, s: "334 " + jsonErr + "\r\n"},
			{c: "\r\n", s: "535 5.7.8 invalid token\r\n"}}, class: ErrAuth},
		{name: "oauthbearer", mech: AuthOAuthBearer, offer: "OAUTHBEARER", exchange: []ex{{c: obIR, s: "235 2.7.0 ok\r\n"}}},
		{name: "oauthbearer refused", mech: AuthOAuthBearer, offer: "OAUTHBEARER", exchange: []ex{
			{c: obIR, s: "334 " + jsonErr + "\r\n"},
			{c: "AQ==\r\n", s: "535 5.7.8 invalid token\r\n"}}, class: ErrAuth},
		{name: "temporary", mech: AuthPlain, offer: "PLAIN", exchange: []ex{{c: plainIR, s: "454 4.7.0 later\r\n"}}, class: ErrBusy},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			script := []ex{{s: greet}, {c: ehlo, s: ehloReply("AUTH " + tt.offer)}}
			script = append(script, tt.exchange...)
			script = append(script, ex{c: quit, s: bye})
			sc := startScript(t, nil, script...)
			h := plainHost()
			h.Name, h.Port = "127.0.0.1", 587
			h.Username, h.Password, h.Auth = user, staticPassword(pass), tt.mech
			s, err := Dial(context.Background(), h, sc.options())
			if tt.class == nil {
				if err != nil {
					t.Fatal(err)
				}
				s.Quit()
			} else if !errors.Is(err, tt.class) {
				t.Errorf("error %v, want %v", err, tt.class)
			}
			sc.wait()
			tr := sc.trace.String()
			leakCheck(t, pass, user, tr, err)
			if !strings.Contains(tr, "--> AUTH ") {
				t.Errorf("no AUTH in trace:\n%s", tr)
			}
			for _, l := range strings.Split(tr, "\n") {
				if strings.HasPrefix(l, "--> ") && !strings.HasPrefix(l, "--> AUTH") && !strings.HasPrefix(l, "--> EHLO") && l != "--> QUIT" && l != "--> "+redacted && l != "--> *" {
					t.Errorf("unexpected client line in trace: %q", l)
				}
			}
		})
	}
}

// leakCheck fails when secret, or a base64 form that contains it, is in
// the trace or the error text.
func leakCheck(t *testing.T, secret, user, trace string, err error) {
	t.Helper()
	texts := []string{trace}
	for e := err; e != nil; e = errors.Unwrap(e) {
		texts = append(texts, e.Error())
	}
	forms := []string{secret, b64(secret), b64("\x00" + user + "\x00" + secret), b64(user + "\x00" + secret)}
	for _, txt := range texts {
		for _, f := range forms {
			if strings.Contains(txt, f) {
				t.Errorf("credential form %q leaked into %q", f, txt)
			}
		}
	}
}

func TestChooseMechanism(t *testing.T) {
	tests := []struct {
		want      AuthMechanism
		offer     string
		encrypted bool
		got       string
		class     error
	}{
		{"", "LOGIN PLAIN CRAM-MD5", true, "PLAIN", nil},
		{"auto", "LOGIN CRAM-MD5", true, "LOGIN", nil},
		{"auto", "CRAM-MD5", true, "CRAM-MD5", nil},
		{"auto", "LOGIN PLAIN CRAM-MD5", false, "CRAM-MD5", nil},
		{"auto", "plain", false, "PLAIN", nil},
		{"auto", "XOAUTH2 OAUTHBEARER", true, "", ErrUnsupported},
		{"auto", "", true, "", ErrUnsupported},
		{"none", "PLAIN", true, "", nil},
		{"CRAM-MD5", "PLAIN CRAM-MD5", true, "CRAM-MD5", nil},
		{"xoauth2", "PLAIN", true, "", ErrUnsupported},
		{"oauthbearer", "OAUTHBEARER", true, "OAUTHBEARER", nil},
		{"kerberos", "GSSAPI", true, "", ErrUnsupported},
	}
	for _, tt := range tests {
		got, err := chooseMechanism(tt.want, tt.offer, tt.encrypted)
		if got != tt.got || (tt.class == nil) != (err == nil) || tt.class != nil && !errors.Is(err, tt.class) {
			t.Errorf("chooseMechanism(%q, %q, %v) = %q, %v; want %q, %v", tt.want, tt.offer, tt.encrypted, got, err, tt.got, tt.class)
		}
	}
}

func TestIsLoopback(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost": true, "LOCALHOST.": true, "127.0.0.1": true, "127.1.2.3": true, "::1": true, "[::1]": true,
		"::1%lo": true, "localhost.example.com": false, "10.0.0.1": false, "::": false, "mx.test": false, "": false,
		"0:0:0:0:0:0:0:1": true, "128.0.0.1": false,
	} {
		if got := isLoopback(host); got != want {
			t.Errorf("isLoopback(%q) = %v, want %v", host, got, want)
		}
	}
}

// Deadlines: a silent server gives a timeout error within bounded time, a
// context deadline caps Host.Timeout, and cancellation aborts a blocked
// read.
func TestTranscriptTimeouts(t *testing.T) {
	t.Run("host timeout", func(t *testing.T) {
		sc := startScript(t, nil, ex{drain: true})
		h := plainHost()
		h.Timeout = 200 * time.Millisecond
		start := time.Now()
		_, err := Dial(context.Background(), h, sc.options())
		var ne net.Error
		if !errors.Is(err, ErrTransport) || !Temporary(err) || !errors.As(err, &ne) || !ne.Timeout() {
			t.Errorf("error %v: want a temporary transport timeout", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("took %v", d)
		}
		sc.wait()
	})
	t.Run("context deadline caps the timeout", func(t *testing.T) {
		sc := startScript(t, nil, ex{drain: true})
		h := plainHost()
		h.Timeout = time.Minute
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		_, err := Dial(ctx, h, sc.options())
		if !errors.Is(err, context.DeadlineExceeded) || !errors.Is(err, ErrTransport) {
			t.Errorf("error %v: want the context's deadline", err)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("took %v", d)
		}
		sc.wait()
	})
	t.Run("cancel during end of data", func(t *testing.T) {
		sc := startScript(t, nil,
			ex{s: greet}, ex{c: ehlo, s: ehloReply("PIPELINING")},
			ex{c: "MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n", s: ok + ok + "354 go\r\n"},
			ex{c: "body\r\n.\r\n"},
			ex{drain: true},
		)
		h := plainHost()
		h.Timeout, h.DataTimeout = time.Minute, time.Hour
		s, err := Dial(context.Background(), h, sc.options())
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithCancel(context.Background())
		time.AfterFunc(200*time.Millisecond, cancel)
		start := time.Now()
		res, err := s.Send(ctx, &Envelope{From: "a@x", To: []string{"b@y"}}, strings.NewReader("body"))
		if !errors.Is(err, context.Canceled) || !Temporary(err) {
			t.Errorf("error %v: want canceled, temporary", err)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("took %v", d)
		}
		if res == nil || len(res.Deferred()) != 1 {
			t.Errorf("result %+v: the recipient should be deferred", res)
		}
		if _, err := s.Send(context.Background(), &Envelope{To: []string{"b@y"}}, strings.NewReader("x")); err == nil {
			t.Error("broken session sent again")
		}
		s.Quit()
		sc.wait()
	})
}
