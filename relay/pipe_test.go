package relay

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// ex is one step of a scripted server on the other end of a net.Pipe.
type ex struct {
	c     string        // exact bytes the client must send next ("" = none)
	one   bool          // ... and in a single write (pipelining)
	s     string        // then the server sends these bytes
	tls   bool          // then the server runs a TLS handshake
	fail  bool          // with tls: the handshake must fail, and the script ends
	drain bool          // read whatever the client sends until it closes, and end
	close bool          // after sending s, close the connection and end
	sleep time.Duration // pause before sending s
}

// testCert makes a self-signed ECDSA certificate for names, valid an hour
// either side of now, and returns a server config and a pool trusting it.
func testCert(t testing.TB, names ...string) (*tls.Config, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(time.Now().UnixNano()),
		Subject:               pkix.Name{CommonName: names[0]},
		DNSNames:              names,
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	cfg := &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}}}
	return cfg, pool
}

// scripted is a client/server pair over net.Pipe.
type scripted struct {
	t     *testing.T
	cli   net.Conn
	done  chan error
	trace *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startScript(t *testing.T, cfg *tls.Config, script ...ex) *scripted {
	t.Helper()
	cli, srv := net.Pipe()
	sc := &scripted{t: t, cli: cli, done: make(chan error, 1), trace: &syncBuffer{}}
	go func() { sc.done <- serveScript(srv, cfg, script) }()
	t.Cleanup(func() { cli.Close(); srv.Close() })
	return sc
}

// startScriptTCP is startScript over a loopback TCP connection, for TLS
// failures: over the unbuffered net.Pipe a client alert and the server's
// handshake flight would block each other.
func startScriptTCP(t *testing.T, cfg *tls.Config, script ...ex) *scripted {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	cli, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	sc := &scripted{t: t, cli: cli, done: make(chan error, 1), trace: &syncBuffer{}}
	go func() { sc.done <- serveScript(srv, cfg, script) }()
	t.Cleanup(func() { cli.Close(); srv.Close() })
	return sc
}

// options returns client Options that dial the pipe.
func (sc *scripted) options() Options {
	return Options{
		LocalName: "client.test",
		Trace:     sc.trace,
		dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			return sc.cli, nil
		},
	}
}

// wait fails the test unless the server side ran its whole script and saw
// the client close without sending anything more.
func (sc *scripted) wait() {
	sc.t.Helper()
	select {
	case err := <-sc.done:
		if err != nil {
			sc.t.Errorf("server: %v\ntrace:\n%s", err, sc.trace)
		}
	case <-time.After(10 * time.Second):
		sc.t.Fatalf("server script did not finish\ntrace:\n%s", sc.trace)
	}
}

func serveScript(conn net.Conn, cfg *tls.Config, script []ex) error {
	defer conn.Close()
	c := conn
	for i, e := range script {
		_ = c.SetDeadline(time.Now().Add(5 * time.Second))
		if e.drain {
			_, _ = io.Copy(io.Discard, c)
			return nil
		}
		if e.c != "" {
			buf := make([]byte, len(e.c))
			var n int
			var err error
			if e.one {
				n, err = c.Read(buf)
			} else {
				n, err = io.ReadFull(c, buf)
			}
			if err != nil || n != len(e.c) || string(buf) != e.c {
				return fmt.Errorf("step %d: client sent %q (err %v), want %q", i, buf[:n], err, e.c)
			}
		}
		if e.sleep > 0 {
			time.Sleep(e.sleep)
		}
		if e.s != "" {
			if _, err := io.WriteString(c, e.s); err != nil {
				return fmt.Errorf("step %d: write: %v", i, err)
			}
		}
		if e.close {
			return nil
		}
		if e.tls {
			tc := tls.Server(c, cfg)
			err := tc.Handshake()
			if e.fail {
				if err == nil {
					return fmt.Errorf("step %d: TLS handshake succeeded, want failure", i)
				}
				return nil
			}
			if err != nil {
				return fmt.Errorf("step %d: TLS handshake: %v", i, err)
			}
			c = tc
		}
	}
	// Nothing more may come, and the client must close.
	_ = c.SetDeadline(time.Now().Add(5 * time.Second))
	rest, err := io.ReadAll(c)
	if len(rest) > 0 {
		return fmt.Errorf("client sent %q after the script", rest)
	}
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.ErrClosedPipe) {
		return fmt.Errorf("waiting for the client to close: %v", err)
	}
	return nil
}

// Short names for building scripts.
const (
	greet = "220 mx.test ESMTP\r\n"
	ehlo  = "EHLO client.test\r\n"
	quit  = "QUIT\r\n"
	bye   = "221 2.0.0 bye\r\n"
	ok    = "250 2.0.0 ok\r\n"
)

// ehloReply builds a 250 EHLO reply advertising ext.
func ehloReply(ext ...string) string {
	lines := append([]string{"mx.test"}, ext...)
	var b strings.Builder
	for i, l := range lines {
		sep := "-"
		if i == len(lines)-1 {
			sep = " "
		}
		b.WriteString("250" + sep + l + "\r\n")
	}
	return b.String()
}

// plainHost is a host for TLSNone transcripts.
func plainHost() Host {
	return Host{Name: "mx.test", Port: 25, TLS: TLSNone, Timeout: 3 * time.Second}
}

func staticPassword(p string) func(context.Context) (string, error) {
	return func(context.Context) (string, error) { return p, nil }
}
