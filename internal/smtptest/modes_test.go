package smtptest

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	netsmtp "net/smtp"
	"net/textproto"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// fakeTB records failures instead of failing, so the package's own checks
// (leak check, Fatalf in Start and WaitMessages) can be shown to fire.
type fakeTB struct {
	testing.TB // the real test, for TempDir and anything not overridden
	mu         sync.Mutex
	errs       []string
	fatal      bool
	cleanups   []func()
}

func (f *fakeTB) Helper()             {}
func (f *fakeTB) Logf(string, ...any) {}
func (f *fakeTB) Errorf(format string, args ...any) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.errs = append(f.errs, fmt.Sprintf(format, args...))
}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.Errorf(format, args...)
	f.mu.Lock()
	f.fatal = true
	f.mu.Unlock()
	runtime.Goexit()
}
func (f *fakeTB) Cleanup(fn func()) { f.cleanups = append(f.cleanups, fn) }

// run calls fn in its own goroutine so a Fatalf's Goexit ends only fn, and
// reports whether fn returned normally.
func (f *fakeTB) run(fn func()) (returned bool) {
	done := make(chan bool)
	go func() {
		ok := false
		defer func() { done <- ok }()
		fn()
		ok = true
	}()
	return <-done
}

func (f *fakeTB) finish() {
	for i := len(f.cleanups) - 1; i >= 0; i-- {
		f.cleanups[i]()
	}
	f.cleanups = nil
}

func (f *fakeTB) errors() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return strings.Join(f.errs, "\n")
}

func TestLeakCheck(t *testing.T) {
	tests := []struct {
		name      string
		leaveOpen bool
		skip      bool
		wantErr   string
	}{
		{name: "closed", leaveOpen: false},
		{name: "left-open", leaveOpen: true, wantErr: "connection leak"},
		{name: "left-open-skipped", leaveOpen: true, skip: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ft := &fakeTB{TB: t}
			s := Start(ft, Options{SkipLeakCheck: tt.skip})
			c, err := net.DialTimeout("tcp", s.Addr(), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(5 * time.Second))
			if line, err := bufio.NewReader(c).ReadString('\n'); err != nil || !strings.HasPrefix(line, "220 ") {
				t.Fatalf("greeting %q, %v", line, err)
			}
			if !tt.leaveOpen {
				c.Close()
			}
			ft.finish()
			got := ft.errors()
			if tt.wantErr == "" && got != "" || tt.wantErr != "" && !strings.Contains(got, tt.wantErr) {
				t.Errorf("cleanup reported %q, want %q", got, tt.wantErr)
			}
			if n := s.OpenConns(); n != 0 {
				t.Errorf("OpenConns after cleanup = %d", n)
			}
		})
	}
}

func TestStartFatal(t *testing.T) {
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{name: "non-loopback", opts: Options{Listen: "0.0.0.0:0"}, want: "not loopback"},
		{name: "bad-address", opts: Options{Listen: "nonsense"}, want: "listen address"},
		{name: "filter-starttls", opts: Options{TLS: TLSStartTLS, No8BitMIME: true}, want: "TLSStartTLS"},
		{name: "bad-mode", opts: Options{TLS: TLSMode(9)}, want: "unknown TLS mode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ft := &fakeTB{TB: t}
			if ft.run(func() { Start(ft, tt.opts) }) {
				t.Fatal("Start returned, want Fatalf")
			}
			defer ft.finish()
			if got := ft.errors(); !strings.Contains(got, tt.want) {
				t.Errorf("Fatalf %q, want it to mention %q", got, tt.want)
			}
		})
	}
}

func TestWaitMessagesTimeout(t *testing.T) {
	s := Start(t, Options{})
	ft := &fakeTB{TB: t}
	start := time.Now()
	if ft.run(func() { s.WaitMessages(ft, 1, 50*time.Millisecond) }) {
		t.Fatal("WaitMessages returned without messages")
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("WaitMessages took %v for a 50ms timeout", d)
	}
	if !strings.Contains(ft.errors(), "got 0") {
		t.Errorf("Fatalf %q", ft.errors())
	}
}

// ehloCaps dials s according to mode and returns the EHLO keywords.
func ehloCaps(t *testing.T, s *Server, mode TLSMode) map[string]string {
	t.Helper()
	var conn net.Conn
	var err error
	if mode == TLSImplicit {
		conn, err = tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", s.Addr(), s.ClientTLSConfig())
	} else {
		conn, err = net.DialTimeout("tcp", s.Addr(), 5*time.Second)
	}
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	tc := textproto.NewConn(conn)
	if _, _, err := tc.ReadResponse(220); err != nil {
		t.Fatalf("greeting: %v", err)
	}
	id, err := tc.Cmd("EHLO client.example")
	if err != nil {
		t.Fatal(err)
	}
	tc.StartResponse(id)
	_, msg, err := tc.ReadResponse(250)
	tc.EndResponse(id)
	if err != nil {
		t.Fatalf("EHLO: %v", err)
	}
	caps := map[string]string{}
	for _, l := range strings.Split(msg, "\n")[1:] {
		k, v, _ := strings.Cut(l, " ")
		caps[k] = v
	}
	tc.PrintfLine("QUIT")
	tc.ReadResponse(221)
	return caps
}

func TestCapabilities(t *testing.T) {
	users := map[string]string{"u": "p"}
	tests := []struct {
		name    string
		opts    Options
		want    map[string]string // keyword -> parameters
		notWant []string
	}{
		{name: "default", opts: Options{},
			want:    map[string]string{"8BITMIME": "", "PIPELINING": "", "SIZE": "", "ENHANCEDSTATUSCODES": ""},
			notWant: []string{"AUTH", "STARTTLS", "DSN", "SMTPUTF8"}},
		{name: "no-8bit", opts: Options{No8BitMIME: true},
			want: map[string]string{"PIPELINING": ""}, notWant: []string{"8BITMIME"}},
		{name: "no-pipelining", opts: Options{NoPipelining: true},
			want: map[string]string{"8BITMIME": ""}, notWant: []string{"PIPELINING"}},
		{name: "no-both-implicit", opts: Options{TLS: TLSImplicit, No8BitMIME: true, NoPipelining: true, Users: users},
			want: map[string]string{"AUTH": "PLAIN LOGIN CRAM-MD5", "SIZE": ""}, notWant: []string{"8BITMIME", "PIPELINING", "STARTTLS"}},
		{name: "extensions", opts: Options{DSN: true, SMTPUTF8: true, MaxSize: 1000},
			want: map[string]string{"DSN": "", "SMTPUTF8": "", "SIZE": "1000"}},
		{name: "auth-mechanisms", opts: Options{Users: users, Mechanisms: []string{"CRAM-MD5", "LOGIN"}},
			want: map[string]string{"AUTH": "CRAM-MD5 LOGIN"}},
		{name: "starttls-hides-auth", opts: Options{TLS: TLSStartTLS, Users: users},
			want: map[string]string{"STARTTLS": ""}, notWant: []string{"AUTH"}},
		{name: "starttls-insecure-auth", opts: Options{TLS: TLSStartTLS, Users: users, AllowInsecureAuth: true},
			want: map[string]string{"STARTTLS": "", "AUTH": "PLAIN LOGIN CRAM-MD5"}},
		{name: "implicit", opts: Options{TLS: TLSImplicit, Users: users},
			want: map[string]string{"AUTH": "PLAIN LOGIN CRAM-MD5", "8BITMIME": ""}, notWant: []string{"STARTTLS"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Start(t, tt.opts)
			caps := ehloCaps(t, s, tt.opts.TLS)
			for k, v := range tt.want {
				if got, ok := caps[k]; !ok || got != v {
					t.Errorf("EHLO %s = %q (present %v), want %q; all %v", k, got, ok, v, caps)
				}
			}
			for _, k := range tt.notWant {
				if _, ok := caps[k]; ok {
					t.Errorf("EHLO offers %s; all %v", k, caps)
				}
			}
		})
	}
}

func TestAuthAfterStartTLS(t *testing.T) {
	s := Start(t, Options{TLS: TLSStartTLS, Users: map[string]string{"u": "p"}})
	c := dial(t, s, TLSStartTLS)
	if ok, mechs := c.Extension("AUTH"); !ok || mechs != "PLAIN LOGIN CRAM-MD5" {
		t.Fatalf("AUTH after STARTTLS: %v %q", ok, mechs)
	}
	if err := c.Auth(netsmtp.PlainAuth("", "u", "p", "127.0.0.1")); err != nil {
		t.Fatal(err)
	}
	if err := send(c, "", []string{"x@example.com"}, "x\r\n"); err != nil {
		t.Fatal(err)
	}
	if m := s.Messages()[0]; m.AuthUser != "u" || !m.TLS || m.From != "" {
		t.Errorf("message %+v", m)
	}
}

func TestWrongCertificate(t *testing.T) {
	s := Start(t, Options{TLS: TLSStartTLS, Cert: NewCert(t, "other.invalid")})
	if s.Certificate().DNSNames[0] != "other.invalid" {
		t.Fatalf("Certificate names %v", s.Certificate().DNSNames)
	}
	c, err := netsmtp.Dial(s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.StartTLS(s.ClientTLSConfig())
	var he x509.HostnameError
	if !errors.As(err, &he) {
		t.Fatalf("StartTLS with a certificate for another name: %v, want a hostname error", err)
	}
}

func TestMailAndRcptOptions(t *testing.T) {
	s := Start(t, Options{DSN: true, SMTPUTF8: true, MaxSize: 1000})
	conn, err := net.DialTimeout("tcp", s.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	tc := textproto.NewConn(conn)
	steps := []struct {
		cmd  string
		want int
	}{
		{"", 220},
		{"EHLO c.example", 250},
		{"MAIL FROM:<jörg@example.com> SIZE=20 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=q+2Bid", 250},
		{"RCPT TO:<a@example.com> NOTIFY=FAILURE,DELAY ORCPT=rfc822;a+40example.com", 250},
		{"RCPT TO:<b@example.com>", 250},
		{"DATA", 354},
		{"x\r\n..y\r\n.", 250},
		{"QUIT", 221},
	}
	for _, st := range steps {
		if st.cmd != "" {
			if err := tc.PrintfLine("%s", st.cmd); err != nil {
				t.Fatal(err)
			}
		}
		if _, msg, err := tc.ReadResponse(st.want); err != nil {
			t.Fatalf("%q: %v %s", st.cmd, err, msg)
		}
	}
	m := s.WaitMessages(t, 1, 5*time.Second)[0]
	mo := m.MailOptions
	if m.From != "jörg@example.com" || mo.Size != 20 || mo.Body != smtp.Body8BitMIME || !mo.UTF8 || mo.Return != smtp.DSNReturnHeaders || mo.EnvelopeID != "q+id" {
		t.Errorf("MAIL recorded as %q %+v", m.From, mo)
	}
	if len(m.RcptOptions) != 2 {
		t.Fatalf("RcptOptions %+v", m.RcptOptions)
	}
	ro := m.RcptOptions[0]
	if fmt.Sprint(ro.Notify) != "[FAILURE DELAY]" || ro.OriginalRecipient != "a@example.com" || ro.OriginalRecipientType != smtp.DSNAddressTypeRFC822 {
		t.Errorf("RCPT 1 recorded as %+v", ro)
	}
	if len(m.RcptOptions[1].Notify) != 0 {
		t.Errorf("RCPT 2 recorded as %+v", m.RcptOptions[1])
	}
	if string(m.Data) != "x\r\n.y\r\n" {
		t.Errorf("Data = %q", m.Data)
	}
	// The copy must not alias the server's record.
	m.To[0] = "changed"
	m.RcptOptions[0].Notify[0] = "changed"
	if again := s.Messages()[0]; again.To[0] != "a@example.com" || again.RcptOptions[0].Notify[0] != smtp.DSNNotifyFailure {
		t.Errorf("Messages returned an alias: %+v", again)
	}
}

func TestHang(t *testing.T) {
	for _, mode := range []TLSMode{TLSNone, TLSImplicit} {
		t.Run(mode.String(), func(t *testing.T) {
			s := Start(t, Options{TLS: mode})
			s.Hang()
			conn, err := net.DialTimeout("tcp", s.Addr(), 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if mode == TLSImplicit {
				tc := tls.Client(conn, s.ClientTLSConfig())
				tc.SetDeadline(time.Now().Add(200 * time.Millisecond))
				err = tc.Handshake()
			} else {
				conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
				_, err = conn.Read(make([]byte, 1))
			}
			var ne net.Error
			if !errors.As(err, &ne) || !ne.Timeout() {
				t.Fatalf("read from a hung server: %v, want a timeout", err)
			}
			if s.Sessions() != 1 || s.OpenConns() != 1 {
				t.Errorf("Sessions=%d OpenConns=%d, want 1 1", s.Sessions(), s.OpenConns())
			}
			conn.Close()
			if n := waitZero(s.OpenConns, 5*time.Second); n != 0 {
				t.Errorf("OpenConns = %d after the client closed", n)
			}
			// ResetErrors lets the next connection through.
			s.ResetErrors()
			c := dial(t, s, mode)
			if err := send(c, "a@example.com", []string{"b@example.com"}, "x\r\n"); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestGreetingErr(t *testing.T) {
	tests := []struct {
		name   string
		mode   TLSMode
		err    error
		script []string // command, expected reply prefix, ...
	}{
		{name: "421", err: Reply(421, "4.3.2", "too busy")},
		{name: "421-implicit", mode: TLSImplicit, err: Reply(421, "", "too busy")},
		{name: "554-then-503", err: Reply(554, "5.7.1", "go away"),
			script: []string{"EHLO c.example", "503 ", "MAIL FROM:<a@x>", "503 ", "QUIT", "221 "}},
		{name: "plain-error", err: errors.New("no"), script: []string{"QUIT", "221 "}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Start(t, Options{TLS: tt.mode})
			s.SetGreetingErr(tt.err)
			var conn net.Conn
			var err error
			if tt.mode == TLSImplicit {
				conn, err = tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", s.Addr(), s.ClientTLSConfig())
			} else {
				conn, err = net.DialTimeout("tcp", s.Addr(), 5*time.Second)
			}
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			conn.SetDeadline(time.Now().Add(5 * time.Second))
			tc := textproto.NewConn(conn)
			code, _, err := tc.ReadResponse(220)
			want := 554
			var se *smtp.SMTPError
			if errors.As(tt.err, &se) {
				want = se.Code
			}
			if code != want {
				t.Fatalf("greeting code %d (%v), want %d", code, err, want)
			}
			for i := 0; i+1 < len(tt.script); i += 2 {
				tc.PrintfLine("%s", tt.script[i])
				line, err := tc.ReadLine()
				if err != nil || !strings.HasPrefix(line, tt.script[i+1]) {
					t.Fatalf("%s: got %q %v, want %q", tt.script[i], line, err, tt.script[i+1])
				}
			}
			if _, err := tc.ReadLine(); err != io.EOF {
				t.Errorf("after the refusal: %v, want EOF", err)
			}
			if s.Sessions() != 1 {
				t.Errorf("Sessions = %d", s.Sessions())
			}
		})
	}
}

func TestDropMidData(t *testing.T) {
	for _, mode := range []TLSMode{TLSNone, TLSStartTLS, TLSImplicit} {
		t.Run(mode.String(), func(t *testing.T) {
			s := Start(t, Options{TLS: mode})
			s.DropMidData()
			c := dial(t, s, mode)
			err := send(c, "a@example.com", []string{"b@example.com"}, strings.Repeat("line\r\n", 10))
			if err == nil {
				t.Fatal("send succeeded through a dropped connection")
			}
			if code(err) != 0 {
				t.Errorf("got SMTP reply %v, want a connection error", err)
			}
			if n := len(s.Messages()); n != 0 {
				t.Errorf("%d messages recorded", n)
			}
			c.Close()
			if n := waitZero(s.OpenConns, 5*time.Second); n != 0 {
				t.Errorf("OpenConns = %d", n)
			}
		})
	}
}

func TestCloseMidTest(t *testing.T) {
	s := Start(t, Options{})
	conn, err := net.DialTimeout("tcp", s.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	s.Close()
	s.Close() // idempotent
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	// EOF, or a reset if the conn was still in the listen backlog; not a
	// timeout.
	if _, err := io.ReadAll(conn); err != nil && !errors.Is(err, syscall.ECONNRESET) {
		t.Errorf("reading a conn the server closed: %v", err)
	}
	if c, err := net.DialTimeout("tcp", s.Addr(), time.Second); err == nil {
		c.Close()
		t.Error("dial after Close succeeded")
	}
	if n := s.OpenConns(); n != 0 {
		t.Errorf("OpenConns = %d", n)
	}
}

func TestDataFuncSeesAndRecords(t *testing.T) {
	s := Start(t, Options{})
	var seen []byte
	s.SetDataFunc(func(r io.Reader) error {
		b := make([]byte, 5)
		n, err := io.ReadFull(r, b)
		seen = b[:n]
		return err
	})
	c := dial(t, s, TLSNone)
	if err := send(c, "a@example.com", []string{"b@example.com"}, testMsg); err != nil {
		t.Fatal(err)
	}
	if string(seen) != testMsg[:5] {
		t.Errorf("hook read %q", seen)
	}
	if m := s.Messages(); len(m) != 1 || string(m[0].Data) != testMsg {
		t.Errorf("recorded %+v", m)
	}
}

func TestReply(t *testing.T) {
	tests := []struct {
		enhanced string
		want     smtp.EnhancedCode
		panics   bool
	}{
		{"4.2.0", smtp.EnhancedCode{4, 2, 0}, false},
		{"5.7.8", smtp.EnhancedCode{5, 7, 8}, false},
		{"", smtp.EnhancedCodeNotSet, false},
		{"4.2", smtp.EnhancedCode{}, true},
		{"a.b.c", smtp.EnhancedCode{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.enhanced, func(t *testing.T) {
			defer func() {
				if r := recover(); (r != nil) != tt.panics {
					t.Errorf("panic %v, want panic %v", r, tt.panics)
				}
			}()
			err := Reply(450, tt.enhanced, "msg")
			var se *smtp.SMTPError
			if !errors.As(err, &se) || se.Code != 450 || se.EnhancedCode != tt.want || se.Message != "msg" {
				t.Errorf("Reply = %#v", err)
			}
		})
	}
}

func TestAuthsRecorded(t *testing.T) {
	s := Start(t, Options{TLS: TLSStartTLS, AllowInsecureAuth: true, Users: map[string]string{"alice": "pw"}})
	c, err := netsmtp.Dial(s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Auth(netsmtp.CRAMMD5Auth("alice", "bad")); code(err) != 535 {
		t.Fatalf("CRAM-MD5 with a bad secret: %v", err)
	}
	c.Close() // net/smtp quits after a failed AUTH
	c = dial(t, s, TLSStartTLS)
	if err := c.Auth(loginAuth{"alice", "pw"}); err != nil {
		t.Fatal(err)
	}
	if err := send(c, "a@example.com", []string{"b@example.com"}, "x\r\n"); err != nil {
		t.Fatal(err)
	}
	want := []AuthAttempt{
		{Mechanism: "CRAM-MD5", Username: "alice", TLS: false, OK: false},
		{Mechanism: "LOGIN", Username: "alice", TLS: true, OK: true},
	}
	if got := s.Auths(); fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Auths = %+v, want %+v", got, want)
	}
	if m := s.Messages()[0]; m.AuthMech != "LOGIN" || m.AuthUser != "alice" {
		t.Errorf("message AuthMech=%q AuthUser=%q", m.AuthMech, m.AuthUser)
	}
}

// exchange runs raw commands against s and returns each reply's lines.
func exchange(t *testing.T, s *Server, cmds ...string) []string {
	t.Helper()
	conn, err := net.DialTimeout("tcp", s.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	tc := textproto.NewConn(conn)
	var replies []string
	read := func() {
		var lines []string
		for {
			l, err := tc.ReadLine()
			if err != nil {
				t.Fatalf("reading reply: %v (so far %q)", err, replies)
			}
			lines = append(lines, l)
			if len(l) < 4 || l[3] != '-' {
				break
			}
		}
		replies = append(replies, strings.Join(lines, "\n"))
	}
	read() // greeting
	for _, c := range cmds {
		if _, err := io.WriteString(conn, c); err != nil {
			t.Fatal(err)
		}
		read()
	}
	return replies
}

func TestRepliesOnTheWire(t *testing.T) {
	tests := []struct {
		name   string
		opts   Options
		inject func(s *Server)
		cmds   []string
		want   []string // expected reply per command (greeting excluded)
	}{
		{
			name:   "no-enhanced-code-multiline",
			inject: func(s *Server) { s.SetRcptErr("b@x.example", Reply(550, "-", "no such user\nreally")) },
			cmds:   []string{"HELO c\r\n", "MAIL FROM:<a@x.example>\r\n", "RCPT TO:<b@x.example>\r\n"},
			want:   []string{"250 ", "250 ", "550-no such user\n550 really"},
		},
		{
			name:   "default-enhanced-code",
			inject: func(s *Server) { s.SetMailErr(Reply(451, "", "later")) },
			cmds:   []string{"HELO c\r\n", "MAIL FROM:<a@x.example>\r\n"},
			want:   []string{"250 ", "451 4.0.0 later"},
		},
		{
			name: "max-recipients",
			opts: Options{MaxRecipients: 1},
			cmds: []string{"HELO c\r\n", "MAIL FROM:<>\r\n", "RCPT TO:<a@x.example>\r\n", "RCPT TO:<b@x.example>\r\n"},
			want: []string{"250 ", "250 ", "250 ", "452 4.5.3 "},
		},
		{
			name: "bdat",
			cmds: []string{"EHLO c\r\n", "MAIL FROM:<a@x.example>\r\n", "RCPT TO:<b@x.example>\r\n",
				"BDAT 5\r\nab\r\nc", "BDAT 3 LAST\r\nd\r\n"},
			want: []string{"250-", "250 ", "250 ", "250 2.0.0 Continue", "250 2.0.0 OK"},
		},
		{
			name:   "pipelined",
			inject: func(s *Server) { s.SetRcptErr("bad@x.example", Reply(550, "5.1.1", "unknown")) },
			cmds: []string{"EHLO c\r\n",
				"MAIL FROM:<a@x.example>\r\nRCPT TO:<bad@x.example>\r\nRCPT TO:<ok@x.example>\r\nDATA\r\n",
				"", "", "", "hi\r\n.\r\n"},
			want: []string{"250-", "250 ", "550 5.1.1 unknown", "250 ", "354 ", "250 2.0.0 OK"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Start(t, tt.opts)
			if tt.inject != nil {
				tt.inject(s)
			}
			got := exchange(t, s, tt.cmds...)[1:]
			for i, w := range tt.want {
				if i >= len(got) || !strings.HasPrefix(got[i], w) {
					t.Fatalf("reply %d = %q, want prefix %q (all %q)", i, got[i], w, got)
				}
			}
		})
	}
}

func TestBDATRecorded(t *testing.T) {
	s := Start(t, Options{})
	exchange(t, s, "EHLO c\r\n", "MAIL FROM:<a@x.example>\r\n", "RCPT TO:<b@x.example>\r\n",
		"BDAT 5\r\nab\r\nc", "BDAT 3 LAST\r\nd\r\n", "QUIT\r\n")
	if m := s.WaitMessages(t, 1, 5*time.Second)[0]; string(m.Data) != "ab\r\ncd\r\n" || m.To[0] != "b@x.example" {
		t.Errorf("recorded %q to %q", m.Data, m.To)
	}
}

func TestLimits(t *testing.T) {
	long := "DATA-LINE-" + strings.Repeat("x", 1500) + "\r\n.\r\n"
	tests := []struct {
		name string
		opts Options
		want string
	}{
		{name: "default-2000-accepts-1500", opts: Options{}, want: "250 "},
		{name: "1000-refuses-1500", opts: Options{MaxLineLength: 1000}, want: "500 5.4.0 Line too long"},
		{name: "unlimited", opts: Options{MaxLineLength: -1}, want: "250 "},
		{name: "unknown-mechanism", opts: Options{Users: map[string]string{"u": "p"}, Mechanisms: []string{"DIGEST-MD5", "PLAIN"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Start(t, tt.opts)
			if tt.want == "" {
				got := exchange(t, s, "EHLO c\r\n", "AUTH DIGEST-MD5\r\n")
				if !strings.Contains(got[1], "AUTH DIGEST-MD5 PLAIN") || !strings.HasPrefix(got[2], "504 5.7.4") {
					t.Errorf("replies %q", got)
				}
				return
			}
			got := exchange(t, s, "HELO c\r\n", "MAIL FROM:<a@x.example>\r\n", "RCPT TO:<b@x.example>\r\n", "DATA\r\n", long)
			if !strings.HasPrefix(got[5], tt.want) {
				t.Errorf("reply to a 1510-byte line: %q, want prefix %q", got[5], tt.want)
			}
		})
	}
}
