package smtptest

import (
	"crypto/tls"
	"io"
	"net"
	netsmtp "net/smtp"
	"strings"
	"testing"
	"time"
)

func TestStartRawScript(t *testing.T) {
	cert := NewCert(t)
	tests := []struct {
		name     string
		steps    []Step
		client   func(addr string) error
		wantCode int
		wantErr  string
	}{
		{
			name:  "421-greeting",
			steps: []Step{Send("421 4.3.2 shutting down\r\n")},
			client: func(addr string) error {
				c, err := netsmtp.Dial(addr)
				if err == nil {
					c.Close()
				}
				return err
			},
			wantCode: 421,
		},
		{
			name:  "garbage-reply",
			steps: []Step{Send("220 ok\r\n"), Expect("EHLO "), Send("hello there\r\n"), Expect("HELO "), Send("garbage\r\n")},
			client: func(addr string) error {
				c, err := netsmtp.Dial(addr)
				if err != nil {
					return err
				}
				defer c.Close()
				return c.Hello("c.example")
			},
			wantErr: `short response: "garbage"`,
		},
		{
			name: "starttls-then-transaction",
			steps: []Step{
				Send("220 raw ESMTP\r\n"), Expect("EHLO c.example"), Send("250-raw\r\n250 STARTTLS\r\n"),
				Expect("STARTTLS"), Send("220 go ahead\r\n"), UpgradeTLS(cert.ServerConfig()),
				Expect("EHLO c.example"), Send("250 raw\r\n"),
				Expect("MAIL FROM:<a@example.com>"), Send("250 ok\r\n"),
				Expect("RCPT TO:<b@example.com>"), Send("250 ok\r\n"),
				Expect("DATA"), Send("354 go\r\n"), ExpectData(), Send("250 queued\r\n"),
				Expect("QUIT"), Send("221 bye\r\n"), ExpectClose(5 * time.Second),
			},
			client: func(addr string) error {
				c, err := netsmtp.Dial(addr)
				if err != nil {
					return err
				}
				defer c.Close()
				if err := c.Hello("c.example"); err != nil {
					return err
				}
				if err := c.StartTLS(&tls.Config{RootCAs: cert.Pool(), ServerName: "127.0.0.1"}); err != nil {
					return err
				}
				return send(c, "a@example.com", []string{"b@example.com"}, "hi\r\n")
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := StartRaw(t, Script(t, tt.steps...))
			err := tt.client(addr)
			switch {
			case tt.wantCode != 0:
				if code(err) != tt.wantCode {
					t.Errorf("client error %v, want code %d", err, tt.wantCode)
				}
			case tt.wantErr != "":
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Errorf("client error %v, want %q", err, tt.wantErr)
				}
			default:
				if err != nil {
					t.Errorf("client: %v", err)
				}
			}
		})
	}
}

func TestScriptReportsMismatch(t *testing.T) {
	ft := &fakeTB{TB: t}
	addr := StartRaw(ft, Script(ft, Send("220 hi\r\n"), Expect("EHLO")))
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(c, "HELO wrong\r\n")
	io.ReadAll(c) // the handler closes after the failed step
	c.Close()
	ft.finish()
	if got := ft.errors(); !strings.Contains(got, `step 2: got "HELO wrong"`) {
		t.Errorf("script errors %q", got)
	}
}

func TestRawConnBuffered(t *testing.T) {
	got := make(chan int, 1)
	addr := StartRaw(t, func(nc net.Conn) {
		c := NewRawConn(nc)
		c.ReadLine()
		time.Sleep(50 * time.Millisecond)
		got <- c.Buffered()
	})
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "STARTTLS\r\nEHLO injected\r\n")
	select {
	case n := <-got:
		if n != len("EHLO injected\r\n") {
			t.Errorf("Buffered = %d", n)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("handler did not report")
	}
}
