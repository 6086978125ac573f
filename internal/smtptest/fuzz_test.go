package smtptest

import (
	"bytes"
	"net"
	"strings"
	"testing"
)

// FuzzSASLServers drives each server-side mechanism with arbitrary client
// responses (split on "\n"; a leading "-" entry means no initial response).
// No input may panic, an exchange must end after at most a few steps, and a
// success must name the one configured user with the right secret.
func FuzzSASLServers(f *testing.F) {
	f.Add(uint8(0), "alice\nsecret")
	f.Add(uint8(0), "-\nalice\nsecret")
	f.Add(uint8(1), "-\nalice 0123456789abcdef0123456789abcdef")
	f.Add(uint8(2), "user=alice\x01auth=Bearer secret\x01\x01")
	f.Add(uint8(3), "n,a=alice,\x01host=x\x01port=25\x01auth=Bearer secret\x01\x01")
	f.Add(uint8(3), "n,,\x01auth=Bearer x\x01\x01\n\x01")
	f.Fuzz(func(t *testing.T, mech uint8, input string) {
		var gotUser, gotSecret string
		check := func(u, p string) error {
			if u == "alice" && p == "secret" {
				gotUser, gotSecret = u, p
				return nil
			}
			return errTestRefused
		}
		var srv interface {
			Next([]byte) ([]byte, bool, error)
		}
		switch mech % 4 {
		case 0:
			srv = newLoginServer(check)
		case 1:
			srv = newCRAMMD5Server("smtptest.local",
				func(u string) (string, bool) { return "secret", u == "alice" },
				func(u string) error { gotUser, gotSecret = u, "secret"; return nil })
		case 2:
			srv = newXOAUTH2Server(check)
		case 3:
			srv = newOAuthBearerServer(check)
		}
		responses := strings.Split(input, "\n")
		for i, r := range responses {
			var resp []byte
			if !(i == 0 && r == "-") {
				resp = []byte(r)
			}
			_, done, err := srv.Next(resp)
			if done || err != nil {
				if err == nil && (gotUser != "alice" || gotSecret != "secret") {
					t.Fatalf("mechanism %d succeeded without the right credentials: %q", mech%4, input)
				}
				if _, d2, err2 := srv.Next([]byte("again")); !d2 || err2 == nil {
					t.Fatalf("mechanism %d accepted a response after the end", mech%4)
				}
				return
			}
			if i >= 3 {
				t.Fatalf("mechanism %d still going after %d responses", mech%4, i+1)
			}
		}
	})
}

var errTestRefused = Reply(535, "5.7.8", "refused")

// recConn records what filterConn passes through.
type recConn struct {
	net.Conn
	buf bytes.Buffer
}

func (c *recConn) Write(p []byte) (int, error) { return c.buf.Write(p) }

// FuzzFilterConn checks the EHLO filter: the dropped capability lines are
// gone, every other byte is passed through in order, and Write reports the
// full length.
func FuzzFilterConn(f *testing.F) {
	f.Add("250-Hello x\r\n", true, true)
	f.Add("250-8BITMIME\r\n", true, false)
	f.Add("250-PIPELINING\r\n250-8BITMIME\r\n250 SIZE\r\n", true, true)
	f.Add("250-pipelining \r\n250-8BITMIME", false, true)
	f.Add("354 go ahead\r\n", true, true)
	f.Fuzz(func(t *testing.T, in string, drop8, dropPipe bool) {
		rc := &recConn{}
		fc := &filterConn{Conn: rc, drop8bit: drop8, dropPipe: dropPipe}
		n, err := fc.Write([]byte(in))
		if err != nil || n != len(in) {
			t.Fatalf("Write = %d, %v; want %d", n, err, len(in))
		}
		var want strings.Builder
		rest := in
		for rest != "" {
			line := rest
			if i := strings.Index(rest, "\r\n"); i >= 0 {
				line = rest[:i+2]
			}
			rest = rest[len(line):]
			kw := strings.ToUpper(strings.TrimSpace(strings.TrimPrefix(line, "250-")))
			dropped := strings.HasPrefix(in, "250-") && strings.HasPrefix(line, "250-") && len(line) > 4 &&
				(drop8 && kw == "8BITMIME" || dropPipe && kw == "PIPELINING")
			if !dropped {
				want.WriteString(line)
			}
		}
		if got := rc.buf.String(); got != want.String() {
			t.Fatalf("filter(%q) = %q, want %q", in, got, want.String())
		}
	})
}
