package relay

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"relaymail/internal/smtptest"
)

// chunkServer is a minimal server over net.Pipe that takes BDAT and DATA,
// for what a script of exact bytes cannot say well: chunk boundaries are
// the writer's business, the order of commands and replies is the test's.
type chunkServer struct {
	ext []string
	// hold is how many chunks to read before answering the first: with
	// PIPELINING the client must send that many without waiting.
	hold int
	// refuse, when set, answers the first chunk with it (and later ones
	// with 503, as go-smtp does once the transaction is reset).
	refuse string

	cmds   []string // command lines received, BDAT with its size
	data   bytes.Buffer
	chunks int
	quiet  bool // after the first chunk, nothing came before its reply (lockstep)
}

func (cs *chunkServer) serve(conn net.Conn) error {
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(conn)
	// Replies go out from their own goroutine: over the unbuffered pipe a
	// reply written while the client still writes its pipelined commands
	// would block both sides.
	replies := make(chan string, 1024)
	written := make(chan struct{})
	defer func() { close(replies); <-written }()
	go func() {
		defer close(written)
		for s := range replies {
			_, _ = io.WriteString(conn, s)
		}
	}()
	reply := func(s string) error {
		replies <- s
		return nil
	}
	if err := reply(greet); err != nil {
		return err
	}
	held := 0
	refused := false
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return fmt.Errorf("reading a command: %v", err)
		}
		line = strings.TrimSuffix(line, "\r\n")
		cs.cmds = append(cs.cmds, line)
		verb, arg, _ := strings.Cut(line, " ")
		switch verb {
		case "EHLO":
			err = reply(ehloReply(cs.ext...))
		case "MAIL", "RCPT", "RSET":
			refused = false
			err = reply(ok)
		case "DATA":
			if err = reply("354 go on\r\n"); err != nil {
				return err
			}
			for {
				l, err := r.ReadString('\n')
				if err != nil {
					return err
				}
				if l == ".\r\n" {
					break
				}
				cs.data.WriteString(strings.TrimPrefix(l, "."))
			}
			err = reply(ok)
		case "BDAT":
			f := strings.Fields(arg)
			n, perr := strconv.Atoi(f[0])
			if perr != nil {
				return fmt.Errorf("BDAT %q", arg)
			}
			if _, err := io.CopyN(&cs.data, r, int64(n)); err != nil {
				return err
			}
			cs.chunks++
			if cs.chunks == 1 && cs.hold == 0 {
				// Lockstep: the client must wait for this reply.
				_ = conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
				_, perr := r.Peek(1)
				cs.quiet = errors.Is(perr, os.ErrDeadlineExceeded)
				_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
			}
			held++
			if held < cs.hold && len(f) == 1 {
				continue
			}
			for ; held > 0; held-- {
				switch {
				case refused:
					err = reply("503 5.5.1 no transaction\r\n")
				case cs.refuse != "":
					refused = true
					err = reply(cs.refuse)
					cs.refuse = "" // once
				case len(f) == 2 && held == 1:
					err = reply("250 2.0.0 message ok\r\n")
				default:
					err = reply("250 2.0.0 chunk ok\r\n")
				}
				if err != nil {
					return err
				}
			}
		case "QUIT":
			return reply(bye)
		default:
			err = reply("502 5.5.1 what\r\n")
		}
		if err != nil {
			return err
		}
	}
}

// dialChunks dials cs over net.Pipe; wait returns the server's error once
// the client has quit.
func dialChunks(t *testing.T, cs *chunkServer) (s *Session, trace *syncBuffer, wait func() error) {
	t.Helper()
	cli, srv := net.Pipe()
	t.Cleanup(func() { cli.Close(); srv.Close() })
	done := make(chan error, 1)
	go func() { done <- cs.serve(srv) }()
	trace = &syncBuffer{}
	s, err := Dial(context.Background(), plainHost(), Options{LocalName: "client.test", Trace: trace,
		dial: func(context.Context, string, string) (net.Conn, error) { return cli, nil }})
	if err != nil {
		t.Fatal(err)
	}
	return s, trace, func() error {
		select {
		case err := <-done:
			return err
		case <-time.After(15 * time.Second):
			return errors.New("server did not finish")
		}
	}
}

// bigMessage is about size octets of LF lines with the cases that matter
// on the wire: lines that start with a dot, a lone CR, a line of 2000.
func bigMessage(size int) string {
	var b strings.Builder
	b.WriteString("Subject: big\n\n.dot\r.after lone CR\n" + strings.Repeat("L", 2000) + "\n")
	for i := 0; b.Len() < size; i++ {
		fmt.Fprintf(&b, "%sline %d %s\n", strings.Repeat(".", i%2), i, strings.Repeat("x", i%90))
	}
	return b.String()
}

// unstuffed is what the server must get for in: the DATA encoding without
// stuffing and terminator.
func unstuffed(t *testing.T, in string) string {
	var w bytes.Buffer
	if err := WriteData(&w, strings.NewReader(in)); err != nil {
		t.Fatal(err)
	}
	return unstuff(t, w.String())
}

func TestBDAT(t *testing.T) {
	big := bigMessage(3 << 20)
	small := "Subject: small\n\n.dot\n"
	tests := []struct {
		name      string
		ext       []string
		hold      int
		msg       string
		wantBDAT  bool
		lockstep  bool
		wantQuitN int // position of QUIT among the commands, from the end: 1 is last
	}{
		{name: "chunking+pipelining: chunks pipelined", ext: []string{"PIPELINING", "CHUNKING", "SIZE"}, hold: bdatWindow, msg: big, wantBDAT: true},
		{name: "chunking alone: lockstep", ext: []string{"CHUNKING"}, msg: big, wantBDAT: true, lockstep: true},
		{name: "no chunking: DATA however large", ext: []string{"PIPELINING", "SIZE"}, msg: big},
		{name: "small message: DATA", ext: []string{"PIPELINING", "CHUNKING"}, msg: small},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cs := &chunkServer{ext: tt.ext, hold: tt.hold}
			s, trace, wait := dialChunks(t, cs)
			size, err := WireSize(strings.NewReader(tt.msg))
			if err != nil {
				t.Fatal(err)
			}
			env := &Envelope{From: "a@example.com", To: []string{"b@example.com"}, Size: size}
			res, err := s.SendAndQuit(context.Background(), env, strings.NewReader(tt.msg))
			if err != nil || res.Data == nil {
				t.Fatalf("SendAndQuit: %v (server: %v)\n%s", err, wait(), clip(trace.String()))
			}
			if err := wait(); err != nil {
				t.Fatalf("server: %v\n%s", err, clip(trace.String()))
			}
			if got, want := cs.data.String(), unstuffed(t, tt.msg); got != want {
				t.Errorf("server got %d octets %q, want %d %q", len(got), clip(got), len(want), clip(want))
			}
			var bdats []string
			for _, c := range cs.cmds {
				if strings.HasPrefix(c, "BDAT") {
					bdats = append(bdats, c)
				}
				if c == "DATA" && tt.wantBDAT {
					t.Errorf("DATA sent although BDAT was due")
				}
			}
			if !tt.wantBDAT {
				if len(bdats) != 0 {
					t.Fatalf("BDAT sent: %q", bdats)
				}
				return
			}
			if len(bdats) < 2 || !strings.HasSuffix(bdats[len(bdats)-1], " LAST") {
				t.Fatalf("chunks %q, want several ending in LAST", bdats)
			}
			for _, c := range bdats[:len(bdats)-1] {
				if strings.HasSuffix(c, "LAST") {
					t.Errorf("LAST before the end: %q", bdats)
				}
			}
			if int64(cs.data.Len()) != size {
				t.Errorf("chunks add up to %d octets, SIZE= said %d", cs.data.Len(), size)
			}
			if tt.lockstep && !cs.quiet {
				t.Errorf("without PIPELINING the client sent on before the reply to its first chunk")
			}
			if i := strings.Index(trace.String(), "--> BDAT"); i < 0 || !strings.Contains(trace.String()[i:], "--> QUIT") {
				t.Errorf("trace lacks BDAT or QUIT after it:\n%s", clip(trace.String()))
			}
		})
	}
}

// A refused chunk stops the message: no chunk after the ones already on
// their way, the replies to those read, the refusal returned, and the next
// transaction on the session starts with RSET.
func TestBDATRefused(t *testing.T) {
	cs := &chunkServer{ext: []string{"PIPELINING", "CHUNKING"}, refuse: "552 5.3.4 too much\r\n"}
	s, trace, wait := dialChunks(t, cs)
	msg := bigMessage(4 << 20)
	size, _ := WireSize(strings.NewReader(msg))
	env := &Envelope{From: "a@example.com", To: []string{"b@example.com"}, Size: size}
	res, err := s.Send(context.Background(), env, strings.NewReader(msg))
	var e *Error
	if !errors.As(err, &e) || e.Code != 552 || !errors.Is(err, ErrFatal) {
		t.Fatalf("Send: %v, want the 552", err)
	}
	if res.Data != nil || res.Recipients[0].Err == nil {
		t.Errorf("result %+v", res)
	}
	if cs.chunks > bdatWindow {
		t.Errorf("%d chunks sent, want at most %d (the window) after a refusal", cs.chunks, bdatWindow)
	}
	next := &Envelope{From: "a@example.com", To: []string{"b@example.com"}}
	if _, err := s.Send(context.Background(), next, strings.NewReader("Subject: next\n\nhi\n")); err != nil {
		t.Fatalf("next Send: %v\n%s", err, clip(trace.String()))
	}
	_ = s.Quit()
	if err := wait(); err != nil {
		t.Fatal(err)
	}
	var after []string
	for i, c := range cs.cmds {
		if strings.HasPrefix(c, "BDAT") && strings.HasSuffix(c, "LAST") {
			t.Errorf("BDAT LAST sent after the refusal")
		}
		if c == "RSET" {
			after = cs.cmds[i:]
		}
	}
	if len(after) < 2 || !strings.HasPrefix(after[1], "MAIL FROM:") {
		t.Errorf("commands %q, want RSET then MAIL", cs.cmds)
	}
}

// Against go-smtp, which offers CHUNKING: a large message goes as BDAT and
// arrives as DATA would have carried it; a small one goes with DATA.
func TestIntegrationBDAT(t *testing.T) {
	srv := smtptest.Start(t, smtptest.Options{TLS: smtptest.TLSStartTLS})
	for _, msg := range []string{bigMessage(2 << 20), testBody} {
		var trace syncBuffer
		env := &Envelope{From: "a@example.com", To: []string{"b@example.com"}}
		_, _, err := Deliver(context.Background(), []Host{hostFor(srv, TLSStartTLS)}, Options{Trace: &trace}, env, strings.NewReader(msg), int64(len(msg)))
		if err != nil {
			t.Fatalf("Deliver: %v\n%s", err, clip(trace.String()))
		}
		big := len(msg) > bdatMinSize
		if got := strings.Contains(trace.String(), "--> BDAT "); got != big {
			t.Errorf("message of %d octets: BDAT used %v, want %v", len(msg), got, big)
		}
		if got := strings.Contains(trace.String(), "--> DATA"); got == big {
			t.Errorf("message of %d octets: DATA used %v, want %v", len(msg), got, !big)
		}
	}
	msgs := srv.WaitMessages(t, 2, 5*time.Second)
	for i, msg := range []string{bigMessage(2 << 20), testBody} {
		if got, want := string(msgs[i].Data), unstuffed(t, msg); got != want {
			t.Errorf("message %d: got %d octets, want %d", i, len(got), len(want))
		}
	}
	waitClosed(t, srv)
}
