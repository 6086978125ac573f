package smtpd

import (
	"bytes"
	"context"
	"errors"
	"io"
	"strings"
	"sync"
	"testing"
	"time"
)

// message is what the recording Handler got for one accepted message.
type message struct {
	env  Envelope
	data string
}

// recHandler is a Handler that records what it is given. rcpt refuses the
// listed recipients; dataReply is returned for complete messages.
type recHandler struct {
	mu        sync.Mutex
	refuse    map[string]*Reply
	dataReply *Reply
	msgs      []message
	readErrs  []error // errors the stream returned to Data
	started   chan struct{}
	hold      chan struct{} // when set, Data waits for it after reading
}

func (h *recHandler) Rcpt(ctx context.Context, env *Envelope, addr string) *Reply {
	return h.refuse[addr]
}

func (h *recHandler) Data(ctx context.Context, env *Envelope, r io.Reader) *Reply {
	if h.started != nil {
		select {
		case h.started <- struct{}{}:
		default:
		}
	}
	b, err := io.ReadAll(r)
	if err != nil {
		h.mu.Lock()
		h.readErrs = append(h.readErrs, err)
		h.mu.Unlock()
		return &Reply{Code: 451, Text: "read failed"}
	}
	if h.hold != nil {
		<-h.hold
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	e := *env
	e.To = append([]string(nil), env.To...)
	h.msgs = append(h.msgs, message{e, string(b)})
	return h.dataReply
}

func (h *recHandler) messages() []message {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]message(nil), h.msgs...)
}

func (h *recHandler) errs() []error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]error(nil), h.readErrs...)
}

// nopHandler accepts everything and discards the message.
type nopHandler struct{}

func (nopHandler) Rcpt(context.Context, *Envelope, string) *Reply { return nil }
func (nopHandler) Data(_ context.Context, _ *Envelope, r io.Reader) *Reply {
	if _, err := io.Copy(io.Discard, r); err != nil {
		return &Reply{Code: 451}
	}
	return nil
}

const testHost = "mx.test"

// greeting is what every transcript starts with.
const greeting = "220 mx.test ESMTP relaymail\r\n"

// ehloReply is the EHLO answer with the default size limit.
const ehloReply = "250-mx.test\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-SIZE 52428800\r\n250-ENHANCEDSTATUSCODES\r\n250 SMTPUTF8\r\n"

// runSession feeds input to ServeConn as a whole and returns what the
// server wrote and ServeConn's error, bounded by a timeout.
func runSession(t testing.TB, srv *Server, input string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	done := make(chan error, 1)
	go func() { done <- srv.ServeConn(context.Background(), strings.NewReader(input), &out, "") }()
	select {
	case err := <-done:
		return out.String(), err
	case <-time.After(10 * time.Second):
		t.Fatalf("session did not end")
		return "", nil
	}
}

// isTimeoutErr reports whether err is the session's timeout error.
func isTimeoutErr(err error) bool { return errors.Is(err, errTimeout) }
