package smtptest

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	netsmtp "net/smtp"
	"net/textproto"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const testMsg = "Subject: hi\r\n\r\nline one\r\n.leading dot\r\n"

// dial connects with net/smtp according to the server's TLS mode.
func dial(t *testing.T, s *Server, mode TLSMode) *netsmtp.Client {
	t.Helper()
	var c *netsmtp.Client
	var err error
	switch mode {
	case TLSImplicit:
		var conn net.Conn
		conn, err = tls.DialWithDialer(&net.Dialer{Timeout: 5 * time.Second}, "tcp", s.Addr(), s.ClientTLSConfig())
		if err == nil {
			c, err = netsmtp.NewClient(conn, s.Host())
		}
	default:
		c, err = netsmtp.Dial(s.Addr())
	}
	if err != nil {
		t.Fatalf("dial %s: %v", s.Addr(), err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Hello("client.example"); err != nil {
		t.Fatalf("EHLO: %v", err)
	}
	if mode == TLSStartTLS {
		if err := c.StartTLS(s.ClientTLSConfig()); err != nil {
			t.Fatalf("STARTTLS: %v", err)
		}
	}
	return c
}

// send runs one transaction and QUIT, returning the first error.
func send(c *netsmtp.Client, from string, to []string, body string) error {
	if err := c.Mail(from); err != nil {
		return err
	}
	for _, r := range to {
		if err := c.Rcpt(r); err != nil {
			return err
		}
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := io.WriteString(w, body); err != nil {
		return err
	}
	if err := w.Close(); err != nil {
		return err
	}
	return c.Quit()
}

func code(err error) int {
	var te *textproto.Error
	if errors.As(err, &te) {
		return te.Code
	}
	return 0
}

func TestDelivery(t *testing.T) {
	users := map[string]string{"alice": "s3cret"}
	tests := []struct {
		name     string
		opts     Options
		auth     netsmtp.Auth
		wantUser string
		wantTLS  bool
	}{
		{name: "plain", opts: Options{}},
		{name: "plain-ipv6", opts: Options{Listen: "[::1]:0"}},
		{name: "starttls", opts: Options{TLS: TLSStartTLS}, wantTLS: true},
		{name: "implicit", opts: Options{TLS: TLSImplicit}, wantTLS: true},
		{name: "auth-plain-cleartext", opts: Options{Users: users, AuthRequired: true},
			auth: netsmtp.PlainAuth("", "alice", "s3cret", "127.0.0.1"), wantUser: "alice"},
		{name: "auth-plain-starttls", opts: Options{TLS: TLSStartTLS, Users: users, AuthRequired: true},
			auth: netsmtp.PlainAuth("", "alice", "s3cret", "127.0.0.1"), wantUser: "alice", wantTLS: true},
		{name: "auth-cram-implicit", opts: Options{TLS: TLSImplicit, Users: users, Mechanisms: []string{"CRAM-MD5"}},
			auth: netsmtp.CRAMMD5Auth("alice", "s3cret"), wantUser: "alice", wantTLS: true},
		{name: "auth-login", opts: Options{Users: users},
			auth: loginAuth{"alice", "s3cret"}, wantUser: "alice"},
		{name: "auth-xoauth2", opts: Options{Users: users, Mechanisms: []string{"XOAUTH2"}},
			auth: bearerAuth{mech: "XOAUTH2", user: "alice", token: "s3cret"}, wantUser: "alice"},
		{name: "auth-oauthbearer", opts: Options{Users: users, Mechanisms: []string{"OAUTHBEARER"}},
			auth: bearerAuth{mech: "OAUTHBEARER", user: "alice", token: "s3cret"}, wantUser: "alice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Start(t, tt.opts)
			if tt.opts.Listen == "[::1]:0" && !strings.HasPrefix(s.Addr(), "[::1]:") {
				t.Fatalf("Addr = %q, want [::1]:port", s.Addr())
			}
			c := dial(t, s, tt.opts.TLS)
			if tt.auth != nil {
				if err := c.Auth(tt.auth); err != nil {
					t.Fatalf("AUTH: %v", err)
				}
			}
			if err := send(c, "from@example.com", []string{"a@example.com", "b@example.com"}, testMsg); err != nil {
				t.Fatalf("send: %v", err)
			}
			msgs := s.WaitMessages(t, 1, 5*time.Second)
			if len(msgs) != 1 {
				t.Fatalf("got %d messages, want 1", len(msgs))
			}
			m := msgs[0]
			if m.From != "from@example.com" || strings.Join(m.To, ",") != "a@example.com,b@example.com" {
				t.Errorf("envelope = %q -> %q", m.From, m.To)
			}
			if string(m.Data) != testMsg {
				t.Errorf("Data = %q, want %q", m.Data, testMsg)
			}
			if m.TLS != tt.wantTLS || m.AuthUser != tt.wantUser {
				t.Errorf("TLS=%v AuthUser=%q, want %v %q", m.TLS, m.AuthUser, tt.wantTLS, tt.wantUser)
			}
			if m.Helo != "client.example" {
				t.Errorf("Helo = %q", m.Helo)
			}
			if len(m.RcptOptions) != 2 {
				t.Errorf("RcptOptions has %d entries, want 2", len(m.RcptOptions))
			}
			if s.Sessions() != 1 {
				t.Errorf("Sessions = %d, want 1", s.Sessions())
			}
		})
	}
}

func TestInjectedErrors(t *testing.T) {
	users := map[string]string{"alice": "s3cret"}
	tests := []struct {
		name   string
		opts   Options
		inject func(s *Server)
		auth   netsmtp.Auth
		want   int
	}{
		{name: "rcpt", inject: func(s *Server) { s.SetRcptErr("B@example.com", Reply(550, "5.1.1", "no such user")) }, want: 550},
		{name: "mail", inject: func(s *Server) { s.SetMailErr(Reply(451, "4.3.0", "try later")) }, want: 451},
		{name: "data", inject: func(s *Server) { s.SetDataErr(Reply(554, "5.6.0", "content rejected")) }, want: 554},
		{name: "data-hook", inject: func(s *Server) {
			s.SetDataFunc(func(r io.Reader) error { return Reply(452, "4.3.1", "full") })
		}, want: 452},
		{name: "auth-injected", opts: Options{Users: users}, inject: func(s *Server) { s.SetAuthErr(Reply(454, "4.7.0", "auth backend down")) },
			auth: netsmtp.PlainAuth("", "alice", "s3cret", "127.0.0.1"), want: 454},
		{name: "auth-wrong-password", opts: Options{Users: users}, inject: func(*Server) {},
			auth: netsmtp.PlainAuth("", "alice", "wrong", "127.0.0.1"), want: 535},
		{name: "auth-wrong-cram", opts: Options{Users: users}, inject: func(*Server) {},
			auth: netsmtp.CRAMMD5Auth("alice", "wrong"), want: 535},
		{name: "auth-wrong-login", opts: Options{Users: users}, inject: func(*Server) {},
			auth: loginAuth{"alice", "wrong"}, want: 535},
		{name: "auth-wrong-xoauth2", opts: Options{Users: users, Mechanisms: []string{"XOAUTH2"}}, inject: func(*Server) {},
			auth: bearerAuth{mech: "XOAUTH2", user: "alice", token: "wrong"}, want: 535},
		{name: "auth-wrong-oauthbearer", opts: Options{Users: users, Mechanisms: []string{"OAUTHBEARER"}}, inject: func(*Server) {},
			auth: bearerAuth{mech: "OAUTHBEARER", user: "alice", token: "wrong"}, want: 535},
		{name: "auth-required", opts: Options{Users: users, AuthRequired: true}, inject: func(*Server) {}, want: 530},
		{name: "size", opts: Options{MaxSize: 10}, inject: func(*Server) {}, want: 552},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Start(t, tt.opts)
			tt.inject(s)
			c := dial(t, s, TLSNone)
			var err error
			if tt.auth != nil {
				err = c.Auth(tt.auth)
			}
			if err == nil {
				err = send(c, "from@example.com", []string{"a@example.com", "b@example.com"}, testMsg)
			}
			if got := code(err); got != tt.want {
				t.Fatalf("error %v: code %d, want %d", err, got, tt.want)
			}
			if n := len(s.Messages()); n != 0 {
				t.Errorf("%d messages recorded after a failure", n)
			}
			c.Quit()
		})
	}
}

// loginAuth is a client for the LOGIN mechanism, which net/smtp lacks.
type loginAuth struct{ user, pass string }

func (a loginAuth) Start(*netsmtp.ServerInfo) (string, []byte, error) { return "LOGIN", nil, nil }
func (a loginAuth) Next(challenge []byte, more bool) ([]byte, error) {
	if !more {
		return nil, nil
	}
	switch string(challenge) {
	case "Username:":
		return []byte(a.user), nil
	case "Password:":
		return []byte(a.pass), nil
	}
	return nil, errors.New("unexpected LOGIN challenge " + string(challenge))
}

// bearerAuth is a client for XOAUTH2 and OAUTHBEARER; it answers the error
// challenge with the dummy response both require.
type bearerAuth struct{ mech, user, token string }

func (a bearerAuth) Start(*netsmtp.ServerInfo) (string, []byte, error) {
	if a.mech == "XOAUTH2" {
		return a.mech, []byte("user=" + a.user + "\x01auth=Bearer " + a.token + "\x01\x01"), nil
	}
	return a.mech, []byte("n,a=" + a.user + ",\x01host=localhost\x01port=25\x01auth=Bearer " + a.token + "\x01\x01"), nil
}
func (a bearerAuth) Next(challenge []byte, more bool) ([]byte, error) {
	if more {
		return []byte{0x01}, nil
	}
	return nil, nil
}

// TestDeadPort: connections are refused, and no listener can take the
// port while the test runs.
func TestDeadPort(t *testing.T) {
	port := DeadPort(t)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	if c, err := net.DialTimeout("tcp", addr, 5*time.Second); !errors.Is(err, syscall.ECONNREFUSED) {
		if c != nil {
			c.Close()
		}
		t.Errorf("dial %s: %v, want connection refused", addr, err)
	}
	if l, err := net.Listen("tcp", addr); err == nil {
		l.Close()
		t.Errorf("a listener took the dead port %d", port)
	}
}
