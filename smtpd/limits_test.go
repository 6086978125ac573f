package smtpd

import (
	"testing"
	"time"
)

// TestSlotTimeout: a client over MaxSessions that waited SlotTimeout for a
// free session is told 421 4.3.2 instead of waiting without an answer;
// one that gets a slot in time is served.
func TestSlotTimeout(t *testing.T) {
	addr, _ := startServer(t, &Server{Hostname: testHost, Handler: nopHandler{}, MaxSessions: 1, SlotTimeout: 200 * time.Millisecond})
	c1 := dial(t, addr)
	c1.expect("220 ")
	c2 := dial(t, addr)
	c2.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	c2.expect("421 4.3.2 ")
	c2.expectEOF()

	c3 := dial(t, addr)
	c1.send("QUIT\r\n")
	c1.expect("221 ")
	c3.expect("220 ")
	c3.send("QUIT\r\n")
	c3.expect("221 ")
}

// TestMessageTimeout: a client that keeps sending data, but too slowly to
// finish within MessageTimeout, is told 421 4.4.2 and nothing is accepted;
// DataTimeout alone (per read) would never end it.
func TestMessageTimeout(t *testing.T) {
	h := &recHandler{}
	addr, _ := startServer(t, &Server{Hostname: testHost, Handler: h, DataTimeout: time.Minute, MessageTimeout: 500 * time.Millisecond})
	c := dial(t, addr)
	c.ehlo()
	c.send("MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n")
	c.expect("250 ")
	c.expect("250 ")
	c.expect("354 ")
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(50 * time.Millisecond):
				c.conn.Write([]byte("a slow line\r\n"))
			}
		}
	}()
	c.conn.SetReadDeadline(time.Now().Add(20 * time.Second))
	c.expect("421 4.4.2 ")
	if len(h.messages()) != 0 || len(h.errs()) != 1 || !isTimeoutErr(h.errs()[0]) {
		t.Fatalf("messages %v, stream errors %v", h.messages(), h.errs())
	}
}
