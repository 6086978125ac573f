package bench

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"testing"
	"time"
)

// ioTimeout bounds every read and write in these tests; the proxy's
// delays here are milliseconds, so anything near this is a hang.
const ioTimeout = 10 * time.Second

// startEcho runs a loopback server that writes greeting, then echoes
// every byte back until the client half-closes, then half-closes too.
func startEcho(t *testing.T, greeting []byte) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(ioTimeout))
				if _, err := c.Write(greeting); err != nil {
					return
				}
				if _, err := io.Copy(c, c); err != nil {
					return
				}
				c.(*net.TCPConn).CloseWrite()
			}()
		}
	}()
	return ln.Addr().String()
}

// payload is n pseudo-random bytes from a fixed seed, so a failure is
// reproducible.
func payload(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

func TestProxyForwardsIntactAndInOrder(t *testing.T) {
	tests := []struct {
		name     string
		delay    time.Duration
		greeting string
		size     int
		maxPiece int // client writes in random pieces of 1..maxPiece bytes
	}{
		{"no delay, small", 0, "", 10, 3},
		{"no delay, larger than a chunk", 0, "", 3*chunkSize + 17, 50000},
		{"delay, server speaks first", 2 * time.Millisecond, "220 hello\r\n", 5000, 700},
		{"delay, many small pieces", 1 * time.Millisecond, "220 x\r\n", 20000, 64},
		{"delay, more than the queue holds", 1 * time.Millisecond, "", queueDepth*chunkSize + 12345, 1 << 20},
		{"delay, nothing sent", 2 * time.Millisecond, "220 only a greeting\r\n", 0, 1},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := startEcho(t, []byte(tt.greeting))
			p, err := NewDelayProxy(target, tt.delay)
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()

			c, err := net.DialTimeout("tcp", p.Addr(), ioTimeout)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(ioTimeout))

			data := payload(tt.size, uint64(i+1))
			r := rand.New(rand.NewPCG(uint64(i), 7))
			werr := make(chan error, 1)
			go func() {
				rest := data
				for len(rest) > 0 {
					n := min(1+r.IntN(tt.maxPiece), len(rest))
					if _, err := c.Write(rest[:n]); err != nil {
						werr <- err
						return
					}
					rest = rest[n:]
				}
				werr <- c.(*net.TCPConn).CloseWrite()
			}()

			got, err := io.ReadAll(c)
			if err != nil {
				t.Fatalf("read through proxy: %v", err)
			}
			if err := <-werr; err != nil {
				t.Fatalf("write through proxy: %v", err)
			}
			want := append([]byte(tt.greeting), data...)
			if !bytes.Equal(got, want) {
				t.Fatalf("got %d bytes, want %d; first difference at %d",
					len(got), len(want), firstDiff(got, want))
			}
		})
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func TestProxyTargetDown(t *testing.T) {
	// A port that was listening and is now closed refuses connections.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	target := ln.Addr().String()
	ln.Close()

	p, err := NewDelayProxy(target, time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	c, err := net.DialTimeout("tcp", p.Addr(), ioTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(ioTimeout))
	n, err := c.Read(make([]byte, 1))
	if n != 0 || err == nil {
		t.Fatalf("read from proxy to dead target = %d, %v; want 0 and an error", n, err)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("proxy kept the client hanging: %v", err)
	}
}

func TestProxyCloseCutsOpenConnections(t *testing.T) {
	target := startEcho(t, []byte("220 hi\r\n"))
	p, err := NewDelayProxy(target, time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.DialTimeout("tcp", p.Addr(), ioTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(ioTimeout))
	greet := make([]byte, len("220 hi\r\n"))
	if _, err := io.ReadFull(c, greet); err != nil {
		t.Fatalf("greeting through proxy: %v", err)
	}

	closed := make(chan error, 1)
	go func() { closed <- p.Close() }()
	select {
	case err := <-closed:
		if err != nil {
			t.Fatalf("Close: %v", err)
		}
	case <-time.After(ioTimeout):
		t.Fatal("Close did not return with a connection open")
	}
	if _, err := io.ReadAll(c); err != nil {
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			t.Fatalf("connection still open after Close: %v", err)
		}
	}
	if _, err := net.DialTimeout("tcp", p.Addr(), time.Second); err == nil {
		t.Fatal("proxy still accepts after Close")
	}
	if err := p.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestNewDelayProxyRejectsNegativeDelay(t *testing.T) {
	p, err := NewDelayProxy("127.0.0.1:1", -time.Millisecond)
	if err == nil {
		p.Close()
		t.Fatal("negative delay accepted")
	}
}
