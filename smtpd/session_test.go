package smtpd

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

func TestTranscripts(t *testing.T) {
	long := func(n int) string { return "NOOP " + strings.Repeat("x", n-len("NOOP \r\n")) + "\r\n" }
	tests := []struct {
		name     string
		maxSize  int64 // Server.MaxMessageSize
		maxRcpts int   // Server.MaxRecipients
		refuse   map[string]*Reply
		dataRep  *Reply
		in       string
		want     string
		wantErr  error // nil: ServeConn returns nil
		msgs     []message
	}{
		{
			name: "quit",
			in:   "QUIT\r\n",
			want: greeting + "221 2.0.0 Bye\r\n",
		},
		{
			name: "lower case and bare LF commands",
			in:   "helo client\nquit\n",
			want: greeting + "250 mx.test\r\n221 2.0.0 Bye\r\n",
		},
		{
			name: "ehlo capabilities",
			in:   "EHLO client.example\r\nQUIT\r\n",
			want: greeting + ehloReply + "221 2.0.0 Bye\r\n",
		},
		{
			name:    "ehlo without a size limit",
			maxSize: -1,
			in:      "EHLO c\r\n",
			want:    greeting + strings.Replace(ehloReply, "SIZE 52428800", "SIZE", 1),
		},
		{
			name: "clean EOF without QUIT",
			in:   "EHLO c\r\nMAIL FROM:<a@x>\r\n",
			want: greeting + ehloReply + "250 2.1.0 Sender OK\r\n",
		},
		{
			name: "full transaction with dot-unstuffing",
			in: "EHLO c\r\nMAIL FROM:<a@x.example>\r\nRCPT TO:<b@y.example>\r\nRCPT TO:<c@y.example>\r\nDATA\r\n" +
				"Subject: t\r\n\r\n..leading dot\r\n..\r\n...\r\nlast\r\n.\r\nQUIT\r\n",
			want: greeting + ehloReply + "250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n250 2.1.5 Recipient OK\r\n" +
				"354 Send message, end with <CRLF>.<CRLF>\r\n250 2.0.0 OK: message accepted\r\n221 2.0.0 Bye\r\n",
			msgs: []message{{
				env:  Envelope{Helo: "c", From: "a@x.example", To: []string{"b@y.example", "c@y.example"}},
				data: "Subject: t\r\n\r\n.leading dot\r\n.\r\n..\r\nlast\r\n",
			}},
		},
		{
			name: "two transactions, handler's queue id",
			in: "HELO c\r\nMAIL FROM:<>\r\nRCPT TO:<b@y>\r\nDATA\r\none\r\n.\r\n" +
				"MAIL FROM: <a@x> BODY=8BITMIME SMTPUTF8 SIZE=10\r\nRCPT TO:<ü@y>\r\nDATA\r\ntwo\r\n.\r\n",
			dataRep: &Reply{Code: 250, Enhanced: "2.0.0", Text: "OK: queued as Q1"},
			want: greeting + "250 mx.test\r\n250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n354 Send message, end with <CRLF>.<CRLF>\r\n250 2.0.0 OK: queued as Q1\r\n" +
				"250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n354 Send message, end with <CRLF>.<CRLF>\r\n250 2.0.0 OK: queued as Q1\r\n",
			msgs: []message{
				{env: Envelope{Helo: "c", From: "", To: []string{"b@y"}}, data: "one\r\n"},
				{env: Envelope{Helo: "c", From: "a@x", To: []string{"ü@y"}, Size: 10, Body8Bit: true, SMTPUTF8: true}, data: "two\r\n"},
			},
		},
		{
			name: "empty message",
			in:   "HELO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n.\r\n",
			want: greeting + "250 mx.test\r\n250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n354 Send message, end with <CRLF>.<CRLF>\r\n250 2.0.0 OK: message accepted\r\n",
			msgs: []message{{env: Envelope{Helo: "c", From: "a@x", To: []string{"b@y"}}, data: ""}},
		},
		{
			name: "bare LF dot is not the end of data",
			in:   "HELO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\na\n.\nb\n.\r\nc\r.\rd\r\n.\nMAIL FROM:<evil@x>\r\n.\r\nQUIT\r\n",
			want: greeting + "250 mx.test\r\n250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n354 Send message, end with <CRLF>.<CRLF>\r\n250 2.0.0 OK: message accepted\r\n221 2.0.0 Bye\r\n",
			msgs: []message{{env: Envelope{Helo: "c", From: "a@x", To: []string{"b@y"}},
				data: "a\n.\nb\n.\r\nc\r.\rd\r\n\nMAIL FROM:<evil@x>\r\n"}},
		},
		{
			name: "rset noop vrfy help",
			in:   "HELO c\r\nMAIL FROM:<a@x>\r\nRSET\r\nRCPT TO:<b@y>\r\nNOOP anything\r\nVRFY root\r\nHELP\r\nHELP MAIL\r\n",
			want: greeting + "250 mx.test\r\n250 2.1.0 Sender OK\r\n250 2.0.0 OK\r\n503 5.5.1 Send MAIL first\r\n250 2.0.0 OK\r\n" +
				"252 2.1.5 Cannot verify the user, but will try to deliver\r\n" +
				"214 2.0.0 Commands: HELO EHLO MAIL RCPT DATA RSET NOOP VRFY HELP QUIT\r\n" +
				"214 2.0.0 Commands: HELO EHLO MAIL RCPT DATA RSET NOOP VRFY HELP QUIT\r\n",
		},
		{
			name: "out of order",
			in:   "MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\nHELO c\r\nDATA\r\nMAIL FROM:<a@x>\r\nMAIL FROM:<a@x>\r\nDATA\r\nEHLO c\r\nRCPT TO:<b@y>\r\n",
			want: greeting + "503 5.5.1 Send HELO or EHLO first\r\n503 5.5.1 Send MAIL first\r\n503 5.5.1 Send MAIL first\r\n" +
				"250 mx.test\r\n503 5.5.1 Send MAIL first\r\n250 2.1.0 Sender OK\r\n503 5.5.1 Sender already given\r\n" +
				"554 5.5.1 No valid recipients\r\n" + ehloReply + "503 5.5.1 Send MAIL first\r\n",
		},
		{
			name: "syntax errors",
			in: "HELO\r\nEHLO \r\nHELO c\r\nMAIL FROM a@x\r\nMAIL FROM:\r\nMAIL FROM:<a@x\r\nMAIL FROM:<a@x>junk\r\nMAIL FROM:<a b@x>\r\n" +
				"MAIL FROM:<a@x> SIZE=abc\r\nMAIL FROM:<a@x> BODY=BINARYMIME\r\nMAIL FROM:<a@x> SIZE=1 SIZE=2\r\nMAIL FROM:<a@x> =1\r\n" +
				"MAIL FROM:<a@x>\r\nRCPT TO:<>\r\nRCPT TO:<b@>\r\nRCPT TO b@y\r\nVRFY\r\nRSET now\r\nDATA now\r\n",
			want: greeting + "501 5.5.4 Syntax: HELO hostname\r\n501 5.5.4 Syntax: EHLO hostname\r\n250 mx.test\r\n" +
				"501 5.5.4 Syntax: MAIL FROM:<address> [parameters]\r\n501 5.5.4 Syntax: MAIL FROM:<address> [parameters]\r\n" +
				"501 5.1.7 Bad sender address syntax\r\n501 5.5.4 Syntax: MAIL FROM:<address> [parameters]\r\n501 5.1.7 Bad sender address syntax\r\n" +
				"501 5.5.4 Bad SIZE parameter\r\n501 5.5.4 BODY must be 7BIT or 8BITMIME\r\n501 5.5.4 Duplicate parameter SIZE\r\n501 5.5.4 Bad parameter syntax\r\n" +
				"250 2.1.0 Sender OK\r\n501 5.1.3 Bad recipient address syntax\r\n501 5.1.3 Bad recipient address syntax\r\n501 5.5.4 Syntax: RCPT TO:<address>\r\n" +
				"501 5.5.4 Syntax: VRFY address\r\n501 5.5.4 Syntax: RSET\r\n501 5.5.4 Syntax: DATA\r\n",
		},
		{
			name: "unknown and unimplemented commands",
			in:   "FOO\r\nEXPN staff\r\nSTARTTLS\r\nAUTH PLAIN AAAA\r\n\r\n1234\r\nQUIT\r\n",
			want: greeting + "500 5.5.2 Command not recognized\r\n502 5.5.1 Command not implemented\r\n502 5.5.1 Command not implemented\r\n" +
				"502 5.5.1 Command not implemented\r\n500 5.5.2 Command not recognized\r\n500 5.5.2 Command not recognized\r\n221 2.0.0 Bye\r\n",
		},
		{
			name: "parameters",
			in: "EHLO c\r\nMAIL FROM:<a@x> AUTH=<>\r\nMAIL FROM:<a@x> SIZE=52428801\r\nMAIL FROM:<a@x> SIZE=99999999999999999999\r\n" +
				"MAIL FROM:<ü@x>\r\nMAIL FROM:<a@x> BODY=7bit\r\nRCPT TO:<b@y> NOTIFY=NEVER\r\nRCPT TO:<ü@y>\r\n",
			want: greeting + ehloReply + "555 5.5.4 Parameter AUTH not supported\r\n552 5.3.4 Message too big for this system\r\n552 5.3.4 Message too big for this system\r\n" +
				"553 5.6.7 Non-ASCII address needs the SMTPUTF8 parameter\r\n250 2.1.0 Sender OK\r\n555 5.5.4 Parameter NOTIFY not supported\r\n" +
				"553 5.6.7 Non-ASCII address needs the SMTPUTF8 parameter\r\n",
		},
		{
			name: "tolerated paths",
			in:   "HELO c\r\nMAIL FROM:a@x\r\nRCPT TO:<@relay.example,@[10.0.0.1]:b@y>\r\nRCPT TO:<root>\r\nRCPT TO:<\"john doe>\"@y>\r\nDATA\r\nx\r\n.\r\n",
			want: greeting + "250 mx.test\r\n250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n250 2.1.5 Recipient OK\r\n250 2.1.5 Recipient OK\r\n" +
				"354 Send message, end with <CRLF>.<CRLF>\r\n250 2.0.0 OK: message accepted\r\n",
			msgs: []message{{env: Envelope{Helo: "c", From: "a@x", To: []string{"b@y", "root", `"john doe>"@y`}}, data: "x\r\n"}},
		},
		{
			name: "1000-octet line accepted, 1001 refused and skipped",
			in:   "HELO c\r\n" + long(1000) + long(1001) + long(5000) + "NOOP\r\n",
			want: greeting + "250 mx.test\r\n250 2.0.0 OK\r\n500 5.5.2 Line too long\r\n500 5.5.2 Line too long\r\n250 2.0.0 OK\r\n",
		},
		{
			name: "line longer than the read buffer",
			in:   "HELO c\r\n" + long(3*readBufSize) + "QUIT\r\n",
			want: greeting + "250 mx.test\r\n500 5.5.2 Line too long\r\n221 2.0.0 Bye\r\n",
		},
		{
			name: "NUL and bare CR in commands",
			in:   "HELO c\r\nNO\x00OP\r\nNOOP\rQUIT\r\nMAIL FROM:<a\x00@x>\r\nQUIT\r\n",
			want: greeting + "250 mx.test\r\n500 5.5.2 NUL or bare CR in command\r\n500 5.5.2 NUL or bare CR in command\r\n500 5.5.2 NUL or bare CR in command\r\n221 2.0.0 Bye\r\n",
		},
		{
			name:    "SIZE over the maximum",
			maxSize: 100,
			in:      "EHLO c\r\nMAIL FROM:<a@x> SIZE=101\r\nMAIL FROM:<a@x> SIZE=100\r\n",
			want:    greeting + strings.Replace(ehloReply, "52428800", "100", 1) + "552 5.3.4 Message too big for this system\r\n250 2.1.0 Sender OK\r\n",
		},
		{
			name:    "data over the maximum",
			maxSize: 100,
			in:      "HELO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n" + strings.Repeat("0123456789\r\n", 20) + ".\r\nNOOP\r\n",
			want: greeting + "250 mx.test\r\n250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n354 Send message, end with <CRLF>.<CRLF>\r\n" +
				"552 5.3.4 Message too big for this system\r\n250 2.0.0 OK\r\n",
		},
		{
			name:    "data exactly at the maximum",
			maxSize: 24,
			in:      "HELO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n" + strings.Repeat("0123456789\r\n", 2) + ".\r\n",
			want: greeting + "250 mx.test\r\n250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n354 Send message, end with <CRLF>.<CRLF>\r\n" +
				"250 2.0.0 OK: message accepted\r\n",
			msgs: []message{{env: Envelope{Helo: "c", From: "a@x", To: []string{"b@y"}}, data: strings.Repeat("0123456789\r\n", 2)}},
		},
		{
			name:    "disconnect in the middle of DATA",
			in:      "HELO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\nSubject: cut\r\n\r\nhalf a mess",
			want:    greeting + "250 mx.test\r\n250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n354 Send message, end with <CRLF>.<CRLF>\r\n",
			wantErr: io.ErrUnexpectedEOF,
		},
		{
			name:    "disconnect after a bare-LF dot",
			in:      "HELO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\nx\n.\n",
			want:    greeting + "250 mx.test\r\n250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n354 Send message, end with <CRLF>.<CRLF>\r\n",
			wantErr: io.ErrUnexpectedEOF,
		},
		{
			name: "recipients refused by the handler",
			refuse: map[string]*Reply{
				"bad@y":  {Code: 550, Enhanced: "5.1.1", Text: "no such user"},
				"busy@y": {Code: 450, Text: "try later"},
			},
			in: "HELO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<bad@y>\r\nRCPT TO:<busy@y>\r\nDATA\r\nRCPT TO:<good@y>\r\nDATA\r\nx\r\n.\r\n",
			want: greeting + "250 mx.test\r\n250 2.1.0 Sender OK\r\n550 5.1.1 no such user\r\n450 4.0.0 try later\r\n554 5.5.1 No valid recipients\r\n" +
				"250 2.1.5 Recipient OK\r\n354 Send message, end with <CRLF>.<CRLF>\r\n250 2.0.0 OK: message accepted\r\n",
			msgs: []message{{env: Envelope{Helo: "c", From: "a@x", To: []string{"good@y"}}, data: "x\r\n"}},
		},
		{
			name:    "message refused permanently",
			dataRep: &Reply{Code: 550, Enhanced: "5.7.1", Text: "refused by smarthost\r\nline two"},
			in:      "HELO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\nx\r\n.\r\n",
			want: greeting + "250 mx.test\r\n250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n354 Send message, end with <CRLF>.<CRLF>\r\n" +
				"550-5.7.1 refused by smarthost\r\n550 5.7.1 line two\r\n",
			msgs: []message{{env: Envelope{Helo: "c", From: "a@x", To: []string{"b@y"}}, data: "x\r\n"}},
		},
		{
			name:    "message deferred",
			dataRep: &Reply{Code: 451, Enhanced: "5.3.0", Text: "could not queue"},
			in:      "HELO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\nx\r\n.\r\n",
			want: greeting + "250 mx.test\r\n250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n354 Send message, end with <CRLF>.<CRLF>\r\n" +
				"451 4.0.0 could not queue\r\n",
			msgs: []message{{env: Envelope{Helo: "c", From: "a@x", To: []string{"b@y"}}, data: "x\r\n"}},
		},
		{
			name:    "handler reply with a bad code",
			dataRep: &Reply{Code: 99},
			in:      "HELO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\nx\r\n.\r\n",
			want: greeting + "250 mx.test\r\n250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n354 Send message, end with <CRLF>.<CRLF>\r\n" +
				"451 4.3.0 Local error in processing\r\n",
			msgs: []message{{env: Envelope{Helo: "c", From: "a@x", To: []string{"b@y"}}, data: "x\r\n"}},
		},
		{
			name:     "too many recipients",
			maxRcpts: 2,
			in:       "HELO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b1@y>\r\nRCPT TO:<b2@y>\r\nRCPT TO:<b3@y>\r\nDATA\r\nx\r\n.\r\n",
			want: greeting + "250 mx.test\r\n250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n250 2.1.5 Recipient OK\r\n452 4.5.3 Too many recipients\r\n" +
				"354 Send message, end with <CRLF>.<CRLF>\r\n250 2.0.0 OK: message accepted\r\n",
			msgs: []message{{env: Envelope{Helo: "c", From: "a@x", To: []string{"b1@y", "b2@y"}}, data: "x\r\n"}},
		},
		{
			name: "HTTP request",
			in:   "POST / HTTP/1.1\r\nHost: localhost:25\r\n\r\nHELO x\r\nMAIL FROM:<a@x>\r\n",
			want: greeting + "421 4.7.0 This is not an HTTP server\r\n",
		},
		{
			name: "too many errors",
			in:   strings.Repeat("BOGUS\r\n", 25),
			want: greeting + strings.Repeat("500 5.5.2 Command not recognized\r\n", 20) + "421 4.7.0 Too many errors, closing connection\r\n",
		},
		{
			name:    "partial command at EOF",
			in:      "HELO c\r\nNOO",
			want:    greeting + "250 mx.test\r\n",
			wantErr: io.ErrUnexpectedEOF,
		},
		{
			name: "HELO resets the transaction",
			in:   "HELO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nEHLO d\r\nDATA\r\n",
			want: greeting + "250 mx.test\r\n250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n" + ehloReply + "503 5.5.1 Send MAIL first\r\n",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := &recHandler{refuse: tc.refuse, dataReply: tc.dataRep}
			srv := &Server{Hostname: testHost, Handler: h, MaxMessageSize: tc.maxSize, MaxRecipients: tc.maxRcpts}
			got, err := runSession(t, srv, tc.in)
			if got != tc.want {
				t.Errorf("transcript:\n got %q\nwant %q", got, tc.want)
			}
			if tc.wantErr == nil && err != nil || tc.wantErr != nil && !errors.Is(err, tc.wantErr) {
				t.Errorf("ServeConn error = %v, want %v", err, tc.wantErr)
			}
			msgs := h.messages()
			if len(msgs) != len(tc.msgs) {
				t.Fatalf("handler got %d messages, want %d: %+v", len(msgs), len(tc.msgs), msgs)
			}
			for i, m := range msgs {
				w := tc.msgs[i]
				if m.data != w.data {
					t.Errorf("message %d data = %q, want %q", i, m.data, w.data)
				}
				if m.env.Helo != w.env.Helo || m.env.From != w.env.From || strings.Join(m.env.To, ",") != strings.Join(w.env.To, ",") ||
					m.env.Size != w.env.Size || m.env.Body8Bit != w.env.Body8Bit || m.env.SMTPUTF8 != w.env.SMTPUTF8 || m.env.RemoteAddr != "" {
					t.Errorf("message %d envelope = %+v, want %+v", i, m.env, w.env)
				}
			}
		})
	}
}

// The Handler's stream must fail, not end, when the message is over the
// limit or the client goes away; and what the Handler returns then is not
// what the client hears.
func TestDataStreamErrors(t *testing.T) {
	tests := []struct {
		name    string
		max     int64
		in      string
		wantErr error
	}{
		{"too big", 10, "HELO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n0123456789abc\r\n.\r\n", ErrMessageTooBig},
		{"cut off", 0, "HELO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n0123456789abc\r\n", io.ErrUnexpectedEOF},
		{"cut off after CRLF dot", 0, "HELO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\nabc\r\n.", io.ErrUnexpectedEOF},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := &recHandler{dataReply: &Reply{Code: 250, Text: "must not be sent"}}
			srv := &Server{Hostname: testHost, Handler: h, MaxMessageSize: tc.max}
			out, _ := runSession(t, srv, tc.in)
			errs := h.errs()
			if len(errs) != 1 || !errors.Is(errs[0], tc.wantErr) {
				t.Errorf("stream errors = %v, want %v", errs, tc.wantErr)
			}
			if len(h.messages()) != 0 {
				t.Errorf("a message was accepted")
			}
			if strings.Contains(out, "must not be sent") || strings.Contains(out, "read failed") {
				t.Errorf("the handler's reply was sent: %q", out)
			}
		})
	}
}

// badHandler misbehaves in Data in the ways a Handler can.
type badHandler struct{ mode string }

func (badHandler) Rcpt(context.Context, *Envelope, string) *Reply { return nil }
func (b badHandler) Data(ctx context.Context, env *Envelope, r io.Reader) *Reply {
	switch b.mode {
	case "no read":
		return nil
	case "partial read":
		io.ReadFull(r, make([]byte, 3))
		return &Reply{Code: 250, Text: "queued"}
	case "refuse unread":
		return &Reply{Code: 550, Enhanced: "5.7.1", Text: "no thanks"}
	case "panic":
		panic("boom")
	}
	return nil
}

func TestHandlerMisuse(t *testing.T) {
	const in = "HELO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\nline one\r\nline two\r\n.\r\nNOOP\r\n"
	const head = greeting + "250 mx.test\r\n250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n354 Send message, end with <CRLF>.<CRLF>\r\n"
	tests := []struct{ mode, reply string }{
		{"no read", "451 4.3.0 Local error in processing\r\n"},
		{"partial read", "451 4.3.0 Local error in processing\r\n"},
		{"refuse unread", "550 5.7.1 no thanks\r\n"},
		{"panic", "451 4.3.0 Local error in processing\r\n"},
	}
	for _, tc := range tests {
		t.Run(tc.mode, func(t *testing.T) {
			srv := &Server{Hostname: testHost, Handler: badHandler{tc.mode}}
			got, err := runSession(t, srv, in)
			// The rest of the data is drained, so NOOP is read as a command.
			if want := head + tc.reply + "250 2.0.0 OK\r\n"; got != want || err != nil {
				t.Errorf("got %q, %v\nwant %q", got, err, want)
			}
		})
	}
}

// recordingWriter keeps each Write separately, to see what one flush sent.
type recordingWriter struct {
	w      io.Writer
	writes chan string
}

func (r *recordingWriter) Write(p []byte) (int, error) {
	r.writes <- string(p)
	return r.w.Write(p)
}

// RFC 2920: replies to a pipelined group come back in one write.
func TestPipelinedRepliesInOneFlush(t *testing.T) {
	client, server := net.Pipe()
	defer client.Close()
	rw := &recordingWriter{w: server, writes: make(chan string, 100)}
	h := &recHandler{}
	srv := &Server{Hostname: testHost, Handler: h}
	done := make(chan error, 1)
	go func() { done <- srv.ServeConn(context.Background(), server, rw, "pipe") }()
	go io.Copy(io.Discard, client)
	client.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := client.Write([]byte("EHLO c\r\n")); err != nil {
		t.Fatal(err)
	}
	expectWrite := func(want string) {
		t.Helper()
		select {
		case got := <-rw.writes:
			if got != want {
				t.Fatalf("write = %q, want %q", got, want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("no write; want %q", want)
		}
	}
	expectWrite(greeting)
	expectWrite(ehloReply)
	if _, err := client.Write([]byte("MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nRCPT TO:<c@y>\r\nDATA\r\n")); err != nil {
		t.Fatal(err)
	}
	expectWrite("250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n250 2.1.5 Recipient OK\r\n354 Send message, end with <CRLF>.<CRLF>\r\n")
	if _, err := client.Write([]byte("hello\r\n.\r\nQUIT\r\n")); err != nil {
		t.Fatal(err)
	}
	expectWrite("250 2.0.0 OK: message accepted\r\n221 2.0.0 Bye\r\n")
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if m := h.messages(); len(m) != 1 || m[0].data != "hello\r\n" || m[0].env.RemoteAddr != "pipe" {
		t.Fatalf("messages = %+v", m)
	}
}

func FuzzSession(f *testing.F) {
	f.Add([]byte("EHLO c\r\nMAIL FROM:<a@x> SIZE=10\r\nRCPT TO:<b@y>\r\nDATA\r\n..x\r\n.\r\nQUIT\r\n"))
	f.Add([]byte("HELO c\nMAIL FROM:a@x\nRCPT TO:<b@y>\nDATA\na\n.\n.\r\n"))
	f.Add([]byte("HELO c\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n\r.\r\n.\r\nRSET\r\n"))
	f.Add([]byte("NO\x00OP\r\nPOST / HTTP/1.1\r\n"))
	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) > 1<<16 {
			return
		}
		srv := &Server{Hostname: testHost, Handler: nopHandler{}, MaxMessageSize: 200, MaxLineLength: 64, MaxRecipients: 3}
		out, _ := runSession(t, srv, string(in))
		if !strings.HasPrefix(out, greeting) {
			t.Fatalf("no greeting: %q", out)
		}
		// Every line we write is a well-formed reply.
		for _, line := range strings.SplitAfter(out, "\r\n") {
			if line == "" {
				continue
			}
			if len(line) < 6 || !strings.HasSuffix(line, "\r\n") || line[0] < '2' || line[0] > '5' ||
				line[3] != ' ' && line[3] != '-' || strings.ContainsAny(line[:len(line)-2], "\r\n\x00") {
				t.Fatalf("bad reply line %q in %q", line, out)
			}
		}
	})
}
