package main

// End-to-end tests of issue 13 item 4: the -q runner pipelines the next
// message's MAIL, RCPT and DATA behind the final dot (RFC 2920 §3.1).

import (
	"bytes"
	"fmt"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"relaymail/internal/smtptest"
)

// TestStopRunnerWhilePipelined: SIGTERM reaches -q while the smarthost
// holds its reply to the final dot, with the next message's MAIL, RCPT
// and DATA already behind that dot. The first message is recorded as
// sent; the second, whose DATA the server then answers with 354, gets
// no body and no QUIT (nothing can end a message body but the dot): the
// connection is closed, and both it and the third stay queued. Exit 0.
func TestStopRunnerWhilePipelined(t *testing.T) {
	const n = 3
	pipelined := make(chan string, 1) // what came in the write of the final dot
	release := make(chan struct{})
	after := make(chan string, 1) // what the client sent after the 354, until it closed
	addr := smtptest.StartRaw(t, func(c net.Conn) {
		rc := smtptest.NewRawConn(c)
		fmt.Fprint(rc, "220 mx.test\r\n")
		for {
			line, err := rc.ReadLine()
			if err != nil {
				return
			}
			switch {
			case strings.HasPrefix(strings.ToUpper(line), "EHLO"):
				fmt.Fprint(rc, "250-mx.test\r\n250 PIPELINING\r\n")
				continue
			case strings.ToUpper(line) != "DATA":
				continue // MAIL and RCPT: answered with DATA's 354 below
			}
			fmt.Fprint(rc, "250 ok\r\n250 ok\r\n354 go\r\n")
			rc.ReadData()
			var next []string
			for rc.Buffered() > 0 {
				l, _ := rc.ReadLine()
				next = append(next, l)
			}
			pipelined <- strings.Join(next, "|")
			<-release
			fmt.Fprint(rc, "250 2.0.0 queued\r\n250 ok\r\n250 ok\r\n354 go\r\n")
			rc.SetReadDeadline(time.Now().Add(20 * time.Second))
			var rest bytes.Buffer
			_, err = rest.ReadFrom(rc)
			after <- fmt.Sprintf("%q (%v)", rest.String(), err)
			return
		}
	})
	h := rawHarness(t, addr, "", "")
	queueMessages(t, h, n, "a@example.com")
	var stderr bytes.Buffer
	cmd, done := startBinary(t, h, &stderr, "-q")
	select {
	case got := <-pipelined:
		if !strings.HasPrefix(got, "MAIL FROM:<") || !strings.HasSuffix(got, "|DATA") {
			t.Errorf("behind the final dot came %q, want the next MAIL, RCPT and DATA", got)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the runner never reached the final dot")
	}
	cmd.Process.Signal(syscall.SIGTERM)
	time.Sleep(time.Second) // let the signal arrive before the reply
	close(release)
	if code := waitExit(t, done, "relaymail -q"); code != 0 {
		t.Errorf("exit %d after SIGTERM, want 0; stderr %q", code, stderr.String())
	}
	select {
	case got := <-after:
		if !strings.HasPrefix(got, `"" `) {
			t.Errorf("after the 354 to the pipelined DATA the client sent %s, want nothing before it closed", got)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the client did not close after the 354")
	}
	if q := h.spoolCount(""); q != n-1 {
		t.Errorf("%d messages still queued, want %d", q, n-1)
	}
	h.expectLog(`status=sent`)
}
