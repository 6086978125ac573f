package smtpd

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/smtp"
	"strings"
	"sync"
	"testing"
	"time"
)

// startServer runs srv.Serve on 127.0.0.1:0 and returns its address and a
// channel with Serve's result. The server is shut down at the end of the
// test.
func startServer(t *testing.T, srv *Server) (string, <-chan error) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(context.Background(), l) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
	})
	return l.Addr().String(), done
}

// rawClient is a line-level client for exact replies.
type rawClient struct {
	t    *testing.T
	conn net.Conn
	br   *bufio.Reader
}

func dial(t *testing.T, addr string) *rawClient {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	t.Cleanup(func() { conn.Close() })
	return &rawClient{t, conn, bufio.NewReader(conn)}
}

func (c *rawClient) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Fatalf("send %q: %v", s, err)
	}
}

// expect reads one reply line and checks its prefix.
func (c *rawClient) expect(prefix string) string {
	c.t.Helper()
	line, err := c.br.ReadString('\n')
	if err != nil || !strings.HasPrefix(line, prefix) {
		c.t.Fatalf("read %q, %v; want %q...", line, err, prefix)
	}
	return line
}

// expectEOF checks that the server closed the connection.
func (c *rawClient) expectEOF() {
	c.t.Helper()
	if line, err := c.br.ReadString('\n'); err == nil {
		c.t.Fatalf("read %q, want EOF", line)
	}
}

// ehlo reads the greeting and does EHLO.
func (c *rawClient) ehlo() {
	c.t.Helper()
	c.expect("220 ")
	c.send("EHLO client\r\n")
	for {
		if l := c.expect("250"); l[3] == ' ' {
			return
		}
	}
}

func TestServeNetSMTP(t *testing.T) {
	h := &recHandler{refuse: map[string]*Reply{"nobody@y.example": {Code: 550, Enhanced: "5.1.1", Text: "no such user"}}}
	addr, _ := startServer(t, &Server{Hostname: testHost, Handler: h})
	msg := "Subject: hi\r\n\r\n.dot line\r\nbody\r\n"
	err := smtp.SendMail(addr, nil, "a@x.example", []string{"b@y.example", "c@y.example"}, []byte(msg))
	if err != nil {
		t.Fatal(err)
	}
	err = smtp.SendMail(addr, nil, "a@x.example", []string{"nobody@y.example"}, []byte(msg))
	if err == nil || !strings.Contains(err.Error(), "550") || !strings.Contains(err.Error(), "5.1.1 no such user") {
		t.Fatalf("refused recipient: err = %v", err)
	}
	m := h.messages()
	if len(m) != 1 || m[0].data != msg || strings.Join(m[0].env.To, " ") != "b@y.example c@y.example" ||
		!strings.HasPrefix(m[0].env.RemoteAddr, "127.0.0.1:") || m[0].env.Helo != "localhost" || !m[0].env.Body8Bit {
		t.Fatalf("messages = %+v", m)
	}
}

// countingHandler records each message's body once.
type countingHandler struct {
	mu   sync.Mutex
	seen map[string]int
}

func (h *countingHandler) Rcpt(context.Context, *Envelope, string) *Reply { return nil }
func (h *countingHandler) Data(_ context.Context, env *Envelope, r io.Reader) *Reply {
	b, err := io.ReadAll(r)
	if err != nil {
		return &Reply{Code: 451}
	}
	h.mu.Lock()
	h.seen[string(b)]++
	h.mu.Unlock()
	return nil
}

func TestParallelSessions(t *testing.T) {
	const n = 200
	h := &countingHandler{seen: map[string]int{}}
	addr, _ := startServer(t, &Server{Hostname: testHost, Handler: h, MaxSessions: n})
	var wg sync.WaitGroup
	errs := make(chan error, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			body := fmt.Sprintf("Subject: %d\r\n\r\nmessage %d\r\n", i, i)
			errs <- smtp.SendMail(addr, nil, "a@x", []string{"b@y", "c@y"}, []byte(body))
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.seen) != n {
		t.Errorf("%d distinct messages, want %d", len(h.seen), n)
	}
	for body, c := range h.seen {
		if c != 1 {
			t.Errorf("%q delivered %d times", body, c)
		}
	}
}

// TestMaxSessions: at the limit the server stops accepting; a client
// over it waits in the listen queue and is greeted once a slot is free
// (most clients do not retry after a 421 greeting).
func TestMaxSessions(t *testing.T) {
	addr, _ := startServer(t, &Server{Hostname: testHost, Handler: nopHandler{}, MaxSessions: 2})
	c1, c2 := dial(t, addr), dial(t, addr)
	c1.expect("220 ")
	c2.expect("220 ")
	c3 := dial(t, addr)
	c3.conn.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
	if line, err := c3.br.ReadString('\n'); err == nil {
		t.Fatalf("third client greeted while two sessions run: %q", line)
	}
	c3.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	c1.send("QUIT\r\n")
	c1.expect("221 ")
	c1.expectEOF()
	c3.expect("220 ")
	c3.send("QUIT\r\n")
	c3.expect("221 ")
}

func TestIdleTimeout(t *testing.T) {
	addr, _ := startServer(t, &Server{Hostname: testHost, Handler: nopHandler{}, CommandTimeout: 100 * time.Millisecond})
	c := dial(t, addr)
	c.ehlo()
	start := time.Now()
	c.expect("421 4.4.2 ")
	c.expectEOF()
	if d := time.Since(start); d < 80*time.Millisecond || d > 5*time.Second {
		t.Errorf("dropped after %v", d)
	}
}

func TestDataTimeout(t *testing.T) {
	h := &recHandler{}
	addr, _ := startServer(t, &Server{Hostname: testHost, Handler: h, DataTimeout: 100 * time.Millisecond})
	c := dial(t, addr)
	c.ehlo()
	c.send("MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n")
	c.expect("250 ")
	c.expect("250 ")
	c.expect("354 ")
	c.send("Subject: slow\r\n\r\npart") // and then nothing
	c.expect("421 4.4.2 ")
	c.expectEOF()
	if len(h.messages()) != 0 || len(h.errs()) != 1 || !isTimeoutErr(h.errs()[0]) {
		t.Fatalf("messages %v, stream errors %v", h.messages(), h.errs())
	}
}

// slowHandler answers only when its context ends.
type slowHandler struct{ nopHandler }

func (slowHandler) Data(ctx context.Context, _ *Envelope, r io.Reader) *Reply {
	if _, err := io.Copy(io.Discard, r); err != nil {
		return &Reply{Code: 451}
	}
	<-ctx.Done()
	return &Reply{Code: 451, Enhanced: "4.4.7", Text: "took too long"}
}

func TestHandlerTimeout(t *testing.T) {
	addr, _ := startServer(t, &Server{Hostname: testHost, Handler: slowHandler{}, HandlerTimeout: 100 * time.Millisecond})
	c := dial(t, addr)
	c.ehlo()
	c.send("MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n")
	c.expect("250 ")
	c.expect("250 ")
	c.expect("354 ")
	c.send("x\r\n.\r\n")
	c.expect("451 4.4.7 took too long")
	c.send("QUIT\r\n")
	c.expect("221 ")
}

// serveAddr starts Serve on its own, for tests that stop it themselves.
func serveAddr(t *testing.T, ctx context.Context, srv *Server) (string, <-chan error) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, l) }()
	return l.Addr().String(), done
}

func waitErr(t *testing.T, ch <-chan error) error {
	t.Helper()
	select {
	case err := <-ch:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("timed out")
		return nil
	}
}

func TestShutdownIdleSession(t *testing.T) {
	srv := &Server{Hostname: testHost, Handler: nopHandler{}}
	addr, served := serveAddr(t, context.Background(), srv)
	c := dial(t, addr)
	c.ehlo()
	c.send("MAIL FROM:<a@x>\r\n")
	c.expect("250 ")
	if err := srv.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	c.expect("421 4.3.2 ")
	c.expectEOF()
	if err := waitErr(t, served); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve = %v", err)
	}
	if _, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		t.Error("still accepting after Shutdown")
	}
	// Serve after Shutdown refuses at once.
	l, _ := net.Listen("tcp", "127.0.0.1:0")
	if err := srv.Serve(context.Background(), l); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve after Shutdown = %v", err)
	}
}

func TestShutdownMidData(t *testing.T) {
	h := &recHandler{started: make(chan struct{}, 1)}
	srv := &Server{Hostname: testHost, Handler: h}
	addr, served := serveAddr(t, context.Background(), srv)
	c := dial(t, addr)
	c.ehlo()
	c.send("MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n")
	c.expect("250 ")
	c.expect("250 ")
	c.expect("354 ")
	c.send("Subject: in flight\r\n\r\nfirst half\r\n")
	<-h.started
	shut := make(chan error, 1)
	go func() { shut <- srv.Shutdown(context.Background()) }()
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a message in flight", err)
	case <-time.After(200 * time.Millisecond):
	}
	c.send("second half\r\n.\r\n")
	c.expect("250 2.0.0 ")
	c.expect("421 4.3.2 ")
	c.expectEOF()
	if err := waitErr(t, shut); err != nil {
		t.Fatal(err)
	}
	if err := waitErr(t, served); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve = %v", err)
	}
	if m := h.messages(); len(m) != 1 || m[0].data != "Subject: in flight\r\n\r\nfirst half\r\nsecond half\r\n" {
		t.Fatalf("messages = %+v", m)
	}
}

func TestShutdownDeadline(t *testing.T) {
	h := &recHandler{started: make(chan struct{}, 1)}
	srv := &Server{Hostname: testHost, Handler: h}
	addr, served := serveAddr(t, context.Background(), srv)
	c := dial(t, addr)
	c.ehlo()
	c.send("MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n")
	c.expect("250 ")
	c.expect("250 ")
	c.expect("354 ")
	c.send("never finished\r\n")
	<-h.started
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if err := srv.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown = %v", err)
	}
	if err := waitErr(t, served); !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve = %v", err)
	}
	if len(h.messages()) != 0 || len(h.errs()) != 1 {
		t.Fatalf("messages %v, stream errors %v", h.messages(), h.errs())
	}
}

func TestServeContextCancel(t *testing.T) {
	srv := &Server{Hostname: testHost, Handler: nopHandler{}}
	ctx, cancel := context.WithCancel(context.Background())
	addr, served := serveAddr(t, ctx, srv)
	c := dial(t, addr)
	c.ehlo()
	cancel()
	if err := waitErr(t, served); !errors.Is(err, context.Canceled) {
		t.Fatalf("Serve = %v", err)
	}
	// The session was closed; the 421 may or may not have made it out
	// before the connection was closed.
	for {
		line, err := c.br.ReadString('\n')
		if err != nil {
			break
		}
		if !strings.HasPrefix(line, "421 4.3.2 ") {
			t.Fatalf("read %q", line)
		}
	}
}

// ServeConn on a reader without deadlines (stdin for -bs): timeouts and
// Shutdown still work.
func TestServeConnPipe(t *testing.T) {
	t.Run("idle timeout", func(t *testing.T) {
		pr, pw := io.Pipe()
		defer pw.Close()
		var out strings.Builder
		srv := &Server{Hostname: testHost, Handler: nopHandler{}, CommandTimeout: 100 * time.Millisecond}
		done := make(chan error, 1)
		go func() { done <- srv.ServeConn(context.Background(), pr, &out, "") }()
		if err := waitErr(t, done); !isTimeoutErr(err) {
			t.Fatalf("ServeConn = %v", err)
		}
		if want := greeting + "421 4.4.2 Timeout waiting for the client, closing connection\r\n"; out.String() != want {
			t.Fatalf("got %q", out.String())
		}
	})
	t.Run("shutdown", func(t *testing.T) {
		pr, pw := io.Pipe()
		defer pw.Close()
		outR, outW := io.Pipe()
		srv := &Server{Hostname: testHost, Handler: nopHandler{}}
		done := make(chan error, 1)
		go func() { done <- srv.ServeConn(context.Background(), pr, outW, "") }()
		br := bufio.NewReader(outR)
		if l, _ := br.ReadString('\n'); l != greeting {
			t.Fatalf("greeting %q", l)
		}
		go srv.Shutdown(context.Background())
		if l, _ := br.ReadString('\n'); !strings.HasPrefix(l, "421 4.3.2 ") {
			t.Fatalf("got %q", l)
		}
		if err := waitErr(t, done); err != nil {
			t.Fatalf("ServeConn = %v", err)
		}
	})
	t.Run("context", func(t *testing.T) {
		pr, pw := io.Pipe()
		defer pw.Close()
		var out strings.Builder
		ctx, cancel := context.WithCancel(context.Background())
		srv := &Server{Hostname: testHost, Handler: nopHandler{}}
		done := make(chan error, 1)
		go func() { done <- srv.ServeConn(ctx, pr, &out, "") }()
		time.Sleep(20 * time.Millisecond)
		cancel()
		if err := waitErr(t, done); !errors.Is(err, errStopped) {
			t.Fatalf("ServeConn = %v", err)
		}
		if !strings.HasSuffix(out.String(), "421 4.3.2 Service shutting down, closing connection\r\n") {
			t.Fatalf("got %q", out.String())
		}
	})
}

func TestServeConnNoHandler(t *testing.T) {
	var srv Server
	if err := srv.ServeConn(context.Background(), strings.NewReader(""), io.Discard, ""); err == nil {
		t.Fatal("no error without a Handler")
	}
}

func TestCheckListenAddr(t *testing.T) {
	tests := []struct {
		addr   string
		remote bool
		ok     bool
	}{
		{"127.0.0.1:25", false, true},
		{"127.0.0.53:2525", false, true},
		{"[::1]:25", false, true},
		{"localhost:25", false, true},
		{"LOCALHOST.:25", false, true},
		{"[fe80::1%lo]:25", false, false},
		{"0.0.0.0:25", false, false},
		{":25", false, false},
		{"[::]:25", false, false},
		{"192.0.2.1:25", false, false},
		{"mail.example:25", false, false},
		{"0.0.0.0:25", true, true},
		{":25", true, true},
		{"127.0.0.1", false, false},
		{"127.0.0.1:", true, false},
	}
	for _, tc := range tests {
		err := CheckListenAddr(tc.addr, tc.remote)
		if (err == nil) != tc.ok {
			t.Errorf("CheckListenAddr(%q, %v) = %v", tc.addr, tc.remote, err)
		}
		if err != nil && (!strings.HasPrefix(err.Error(), "smtpd: ") || !strings.Contains(err.Error(), tc.addr)) {
			t.Errorf("error %q does not name the address", err)
		}
	}
}

// sleepyRcpt takes a while for each recipient.
type sleepyRcpt struct{ nopHandler }

func (sleepyRcpt) Rcpt(context.Context, *Envelope, string) *Reply {
	time.Sleep(3 * time.Millisecond)
	return nil
}

// A long pipelined group whose replies overflow the write buffer, more
// than CommandTimeout after the last flush: every write gets a fresh
// deadline, so the session survives.
func TestLongPipelinedGroup(t *testing.T) {
	const n = 300
	addr, _ := startServer(t, &Server{Hostname: testHost, Handler: sleepyRcpt{}, CommandTimeout: 200 * time.Millisecond})
	c := dial(t, addr)
	c.ehlo()
	var b strings.Builder
	b.WriteString("MAIL FROM:<a@x>\r\n")
	for i := range n {
		fmt.Fprintf(&b, "RCPT TO:<r%d@y>\r\n", i)
	}
	b.WriteString("RSET\r\nQUIT\r\n")
	c.send(b.String())
	c.expect("250 2.1.0")
	for range n {
		c.expect("250 2.1.5")
	}
	c.expect("250 2.0.0")
	c.expect("221 ")
}
