package relay

import (
	"context"
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
)

// dialScripted dials a scripted server that greets and answers EHLO with
// ext; script is what follows.
func dialScripted(t *testing.T, ext []string, script ...ex) (*Session, *scripted) {
	t.Helper()
	return dialScriptedHost(t, plainHost(), ext, script...)
}

// dialScriptedHost is dialScripted with h for plainHost.
func dialScriptedHost(t *testing.T, h Host, ext []string, script ...ex) (*Session, *scripted) {
	t.Helper()
	full := append([]ex{{s: greet}, {c: ehlo, s: ehloReply(ext...)}}, script...)
	sc := startScript(t, nil, full...)
	s, err := Dial(context.Background(), h, sc.options())
	if err != nil {
		t.Fatal(err)
	}
	return s, sc
}

type recipientOutcome struct {
	accepted []string
	deferred []string
	refused  []string
}

func outcome(r *Result) recipientOutcome {
	var o recipientOutcome
	o.accepted = r.Accepted()
	for _, d := range r.Deferred() {
		o.deferred = append(o.deferred, d.Addr)
	}
	for _, d := range r.Refused() {
		o.refused = append(o.refused, d.Addr)
	}
	return o
}

func TestTranscriptPipelining(t *testing.T) {
	type send struct {
		env     Envelope
		body    string
		want    recipientOutcome
		data    bool  // Result.Data set
		errIs   error // nil: no error
		errTemp bool
	}
	to4 := []string{"b1@y", "b2@y", "b3@y", "b4@y"}
	tests := []struct {
		name   string
		ext    []string
		script []ex
		sends  []send
		quit   bool // QUIT is expected at the end (session not broken)
	}{
		{
			name: "mixed replies in one write",
			ext:  []string{"PIPELINING", "ENHANCEDSTATUSCODES"},
			script: []ex{
				{c: "MAIL FROM:<a@x>\r\nRCPT TO:<b1@y>\r\nRCPT TO:<b2@y>\r\nRCPT TO:<b3@y>\r\nRCPT TO:<b4@y>\r\nDATA\r\n", one: true,
					s: "250 2.1.0 ok\r\n250 2.1.5 ok\r\n550 5.1.1 no such user\r\n451 4.2.0 later\r\n251 2.1.5 forwarded\r\n354 go\r\n"},
				{c: "hi\r\n.\r\n", s: "250 2.0.0 queued\r\n"},
			},
			sends: []send{{env: Envelope{From: "a@x", To: to4}, body: "hi\n",
				want: recipientOutcome{accepted: []string{"b1@y", "b4@y"}, deferred: []string{"b3@y"}, refused: []string{"b2@y"}}, data: true}},
			quit: true,
		},
		{
			name: "all refused, DATA 554: no body",
			ext:  []string{"PIPELINING"},
			script: []ex{
				{c: "MAIL FROM:<a@x>\r\nRCPT TO:<b1@y>\r\nRCPT TO:<b2@y>\r\nDATA\r\n", s: ok + "550 no\r\n450 later\r\n554 5.5.1 no valid recipients\r\n"},
			},
			sends: []send{{env: Envelope{From: "a@x", To: to4[:2]}, body: "hi\n",
				want: recipientOutcome{deferred: []string{"b2@y"}, refused: []string{"b1@y"}}}},
			quit: true,
		},
		{
			name: "all refused, DATA 354 anyway: empty message, then RSET before the next",
			ext:  []string{"PIPELINING"},
			script: []ex{
				{c: "MAIL FROM:<a@x>\r\nRCPT TO:<b1@y>\r\nDATA\r\n", s: ok + "550 no\r\n354 go\r\n"},
				{c: ".\r\n", s: "554 no recipients\r\n"},
				{c: "RSET\r\n", s: ok},
				{c: "MAIL FROM:<a@x>\r\nRCPT TO:<b2@y>\r\nDATA\r\n", s: ok + ok + "354 go\r\n"},
				{c: "second\r\n.\r\n", s: ok},
			},
			sends: []send{
				{env: Envelope{From: "a@x", To: to4[:1]}, body: "first", want: recipientOutcome{refused: []string{"b1@y"}}},
				{env: Envelope{From: "a@x", To: to4[1:2]}, body: "second", want: recipientOutcome{accepted: []string{"b2@y"}}, data: true},
			},
			quit: true,
		},
		{
			name: "MAIL refused: all recipients carry it",
			ext:  []string{"PIPELINING"},
			script: []ex{
				{c: "MAIL FROM:<a@x>\r\nRCPT TO:<b1@y>\r\nRCPT TO:<b2@y>\r\nDATA\r\n", s: "530 5.7.0 authentication required\r\n503 5.5.1 no MAIL\r\n503 5.5.1 no MAIL\r\n503 5.5.1 no MAIL\r\n"},
			},
			sends: []send{{env: Envelope{From: "a@x", To: to4[:2]}, body: "x", want: recipientOutcome{refused: []string{"b1@y", "b2@y"}}, errIs: ErrAuth}},
			quit:  true,
		},
		{
			name: "MAIL 452 is temporary",
			ext:  nil,
			script: []ex{
				{c: "MAIL FROM:<a@x>\r\n", s: "452 4.3.1 insufficient storage\r\n"},
			},
			sends: []send{{env: Envelope{From: "a@x", To: to4[:2]}, body: "x", want: recipientOutcome{deferred: []string{"b1@y", "b2@y"}}, errIs: ErrBusy, errTemp: true}},
			quit:  true,
		},
		{
			name: "no pipelining: one command per round trip, no DATA without a recipient, RSET next time",
			ext:  []string{"8BITMIME"},
			script: []ex{
				{c: "MAIL FROM:<a@x>\r\n", s: ok},
				{c: "RCPT TO:<b1@y>\r\n", s: "550 no\r\n"},
				{c: "RCPT TO:<b2@y>\r\n", s: "551 no\r\n"},
				{c: "RSET\r\n", s: ok},
				{c: "MAIL FROM:<a@x>\r\n", s: ok},
				{c: "RCPT TO:<b3@y>\r\n", s: ok},
				{c: "DATA\r\n", s: "354 go\r\n"},
				{c: "x\r\n.\r\n", s: ok},
				{c: "MAIL FROM:<a@x>\r\n", s: ok},
				{c: "RCPT TO:<b4@y>\r\n", s: ok},
				{c: "DATA\r\n", s: "354 go\r\n"},
				{c: "y\r\n.\r\n", s: "554 5.6.0 rejected content\r\n"},
				{c: "MAIL FROM:<a@x>\r\n", s: ok},
				{c: "RCPT TO:<b1@y>\r\n", s: ok},
				{c: "DATA\r\n", s: "451 4.3.0 later\r\n"},
			},
			sends: []send{
				{env: Envelope{From: "a@x", To: to4[:2]}, body: "x", want: recipientOutcome{refused: []string{"b1@y", "b2@y"}}},
				{env: Envelope{From: "a@x", To: to4[2:3]}, body: "x", want: recipientOutcome{accepted: []string{"b3@y"}}, data: true},
				{env: Envelope{From: "a@x", To: to4[3:]}, body: "y", want: recipientOutcome{refused: []string{"b4@y"}}, errIs: ErrFatal},
				{env: Envelope{From: "a@x", To: to4[:1]}, body: "z", want: recipientOutcome{deferred: []string{"b1@y"}}, errIs: ErrBusy, errTemp: true},
			},
			quit: true,
		},
		{
			name: "421 at RCPT: session over, no QUIT",
			ext:  nil,
			script: []ex{
				{c: "MAIL FROM:<a@x>\r\n", s: ok},
				{c: "RCPT TO:<b1@y>\r\n", s: "421 4.3.2 shutting down\r\n"},
			},
			sends: []send{
				{env: Envelope{From: "a@x", To: to4[:2]}, body: "x", want: recipientOutcome{deferred: []string{"b1@y", "b2@y"}}, errIs: ErrBusy, errTemp: true},
				{env: Envelope{From: "a@x", To: to4[:1]}, body: "x", want: recipientOutcome{deferred: []string{"b1@y"}}, errIs: ErrBusy, errTemp: true},
			},
		},
		{
			name: "354 to MAIL: out of sync, refuses reuse",
			ext:  nil,
			script: []ex{
				{c: "MAIL FROM:<a@x>\r\n", s: "354 what\r\n"},
			},
			sends: []send{
				{env: Envelope{From: "a@x", To: to4[:1]}, body: "x", want: recipientOutcome{refused: []string{"b1@y"}}, errIs: ErrUnknownReply},
				{env: Envelope{From: "a@x", To: to4[:1]}, body: "x", want: recipientOutcome{refused: []string{"b1@y"}}, errIs: ErrUnknownReply},
			},
		},
		{
			name: "250 to DATA: out of sync",
			ext:  []string{"PIPELINING"},
			script: []ex{
				{c: "MAIL FROM:<a@x>\r\nRCPT TO:<b1@y>\r\nDATA\r\n", s: ok + ok + ok},
			},
			sends: []send{{env: Envelope{From: "a@x", To: to4[:1]}, body: "x", want: recipientOutcome{refused: []string{"b1@y"}}, errIs: ErrUnknownReply}},
		},
		{
			name: "garbage RCPT reply",
			ext:  nil,
			script: []ex{
				{c: "MAIL FROM:<a@x>\r\n", s: ok},
				{c: "RCPT TO:<b1@y>\r\n", s: "OK\r\n"},
			},
			sends: []send{{env: Envelope{From: "a@x", To: to4[:1]}, body: "x", want: recipientOutcome{refused: []string{"b1@y"}}, errIs: ErrUnknownReply}},
		},
		{
			name: "connection lost after the final dot",
			ext:  nil,
			script: []ex{
				{c: "MAIL FROM:<a@x>\r\n", s: ok},
				{c: "RCPT TO:<b1@y>\r\n", s: ok},
				{c: "DATA\r\n", s: "354 go\r\n"},
				{c: "x\r\n.\r\n", close: true},
			},
			sends: []send{{env: Envelope{From: "a@x", To: to4[:1]}, body: "x", want: recipientOutcome{deferred: []string{"b1@y"}}, errIs: ErrTransport, errTemp: true}},
		},
		{
			name: "extension parameters",
			ext:  []string{"SIZE 1000", "8BITMIME", "SMTPUTF8", "DSN", "PIPELINING"},
			script: []ex{
				{c: "MAIL FROM:<jörg@x> SIZE=5 BODY=8BITMIME SMTPUTF8 RET=HDRS ENVID=id+2B1+3D2+20x\r\nRCPT TO:<b1@y> NOTIFY=SUCCESS,FAILURE\r\nRCPT TO:<b2@y> NOTIFY=SUCCESS,FAILURE\r\nDATA\r\n", s: ok + ok + ok + "354 go\r\n"},
				{c: "x\r\n.\r\n", s: ok},
			},
			sends: []send{{env: Envelope{From: "jörg@x", To: to4[:2], Size: 5, EightBit: true, Notify: []string{"success", "FAILURE"}, Ret: "hdrs", EnvID: "id+1=2 x"}, body: "x",
				want: recipientOutcome{accepted: to4[:2]}, data: true}},
			quit: true,
		},
		{
			name: "DSN and 8BITMIME not offered: no parameters",
			ext:  []string{"SIZE"},
			script: []ex{
				{c: "MAIL FROM:<a@x> SIZE=5\r\n", s: ok},
				{c: "RCPT TO:<b1@y>\r\n", s: ok},
				{c: "DATA\r\n", s: "354 go\r\n"},
				{c: "x\r\n.\r\n", s: ok},
			},
			sends: []send{{env: Envelope{From: "a@x", To: to4[:1], Size: 5, EightBit: true, Notify: []string{"NEVER"}, Ret: "FULL", EnvID: "e"}, body: "x",
				want: recipientOutcome{accepted: to4[:1]}, data: true}},
			quit: true,
		},
		{
			name:   "too big for the advertised SIZE: nothing sent",
			ext:    []string{"SIZE 100", "PIPELINING"},
			script: nil,
			sends: []send{{env: Envelope{From: "a@x", To: to4[:1], Size: 101}, body: "x",
				want: recipientOutcome{refused: to4[:1]}, errIs: ErrTooBig}},
			quit: true,
		},
		{
			name:   "SMTPUTF8 needed but not offered: nothing sent",
			ext:    []string{"PIPELINING", "8BITMIME"},
			script: nil,
			sends: []send{{env: Envelope{From: "a@x", To: []string{"b@y", "ü@y"}}, body: "x",
				want: recipientOutcome{refused: []string{"b@y", "ü@y"}}, errIs: ErrUnsupported}},
			quit: true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			script := tt.script
			if tt.quit {
				script = append(script[:len(script):len(script)], ex{c: quit, s: bye})
			}
			s, sc := dialScripted(t, tt.ext, script...)
			for i, snd := range tt.sends {
				res, err := s.Send(context.Background(), &snd.env, strings.NewReader(snd.body))
				if snd.errIs == nil && err != nil || snd.errIs != nil && !errors.Is(err, snd.errIs) {
					t.Fatalf("send %d: error %v, want %v\ntrace:\n%s", i, err, snd.errIs, sc.trace)
				}
				if got := Temporary(err); got != snd.errTemp {
					t.Errorf("send %d: Temporary(%v) = %v", i, err, got)
				}
				if got := outcome(res); !reflect.DeepEqual(got, snd.want) {
					t.Errorf("send %d: recipients %+v, want %+v", i, got, snd.want)
				}
				if got := res.Data != nil; got != snd.data {
					t.Errorf("send %d: Data = %v", i, res.Data)
				}
			}
			s.Quit()
			sc.wait()
		})
	}
}

func TestTooBigIsFatal(t *testing.T) {
	e := clientError("MAIL FROM", "a@x", ErrTooBig, "too big")
	if !errors.Is(e, ErrTooBig) || !errors.Is(e, ErrFatal) || errors.Is(e, ErrBusy) || Temporary(e) {
		t.Errorf("too-big error classes wrong: %v", e)
	}
	srv := &Error{Command: "end of data", Code: 552, Enhanced: "5.3.4", Lines: []string{"message too big"}}
	if !errors.Is(srv, ErrTooBig) || !errors.Is(srv, ErrFatal) {
		t.Errorf("552 5.3.4 is not ErrTooBig and ErrFatal")
	}
}

func TestErrorClasses(t *testing.T) {
	tests := []struct {
		code  int
		class error
		temp  bool
	}{
		{421, ErrBusy, true}, {450, ErrBusy, true}, {451, ErrBusy, true}, {454, ErrBusy, true},
		{500, ErrSyntax, false}, {501, ErrSyntax, false},
		{502, ErrUnsupported, false}, {504, ErrUnsupported, false},
		{530, ErrAuth, false}, {534, ErrAuth, false}, {535, ErrAuth, false}, {538, ErrAuth, false},
		{503, ErrFatal, false}, {550, ErrFatal, false}, {552, ErrFatal, false}, {554, ErrFatal, false},
		{250, ErrUnknownReply, false}, {354, ErrUnknownReply, false},
	}
	all := []error{ErrAuth, ErrBusy, ErrSyntax, ErrFatal, ErrUnknownReply, ErrUnsupported, ErrTooBig, ErrTransport}
	for _, tt := range tests {
		e := fmt.Errorf("wrapped: %w", &Error{Command: "RCPT TO", Arg: "a@b", Code: tt.code})
		for _, c := range all {
			if got := errors.Is(e, c); got != (c == tt.class) {
				t.Errorf("%d: errors.Is(%v) = %v", tt.code, c, got)
			}
		}
		if got := Temporary(e); got != tt.temp {
			t.Errorf("%d: Temporary = %v", tt.code, got)
		}
	}
	te := fmt.Errorf("x: %w", &TransportError{Op: "connect a:1", Err: io.ErrUnexpectedEOF})
	if !errors.Is(te, ErrTransport) || !Temporary(te) || !errors.Is(te, io.ErrUnexpectedEOF) || errors.Is(te, ErrBusy) {
		t.Errorf("transport error classes wrong: %v", te)
	}
	if Temporary(nil) || Temporary(errors.New("x")) {
		t.Error("Temporary of a plain error")
	}
	if got, want := (&Error{Command: "MAIL FROM", Code: 451}).Error(), "relay: MAIL FROM:<>: 451"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if got, want := (&Error{Command: "AUTH", Arg: "PLAIN", Code: 535, Enhanced: "5.7.8", Lines: []string{"a", "b"}}).Error(), "relay: AUTH PLAIN: 535 5.7.8 a; b"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

// The body on the wire: line endings, dots, long lines, lone CR, final
// newline, through a real session.
func TestTranscriptBody(t *testing.T) {
	long := strings.Repeat("L", 1200)
	in := "A: b\r\nC: d\n\n.\n..x\r\nlone\rcr\n" + long + "\nend"
	wire := "A: b\r\nC: d\r\n\r\n..\r\n...x\r\nlone\r\ncr\r\n" + long[:998] + "\r\n" + long[998:] + "\r\nend\r\n.\r\n"
	s, sc := dialScripted(t, []string{"PIPELINING"},
		ex{c: "MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n", s: ok + ok + "354 go\r\n"},
		ex{c: wire, s: ok},
		ex{c: quit, s: bye},
	)
	if _, err := s.Send(context.Background(), &Envelope{From: "a@x", To: []string{"b@y"}}, iotestOneByte(strings.NewReader(in))); err != nil {
		t.Fatal(err)
	}
	s.Quit()
	sc.wait()
}

func iotestOneByte(r io.Reader) io.Reader { return &oneByte{r} }

type oneByte struct{ r io.Reader }

func (o *oneByte) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	return o.r.Read(p[:1])
}

// More than 100 recipients go out in bounded groups, each in one write.
func TestTranscriptPipelineBatches(t *testing.T) {
	var to []string
	var g1, g2, r1, r2 strings.Builder
	g1.WriteString("MAIL FROM:<a@x>\r\n")
	r1.WriteString(ok)
	for i := range 150 {
		a := fmt.Sprintf("r%03d@y", i)
		to = append(to, a)
		if i < pipelineBatch {
			g1.WriteString("RCPT TO:<" + a + ">\r\n")
			r1.WriteString(ok)
		} else {
			g2.WriteString("RCPT TO:<" + a + ">\r\n")
			r2.WriteString(ok)
		}
	}
	g2.WriteString("DATA\r\n")
	r2.WriteString("354 go\r\n")
	s, sc := dialScripted(t, []string{"PIPELINING"},
		ex{c: g1.String(), one: true, s: r1.String()},
		ex{c: g2.String(), one: true, s: r2.String()},
		ex{c: "x\r\n.\r\n", s: ok},
		ex{c: quit, s: bye},
	)
	res, err := s.Send(context.Background(), &Envelope{From: "a@x", To: to}, strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Accepted()) != 150 {
		t.Errorf("%d accepted", len(res.Accepted()))
	}
	s.Quit()
	sc.wait()
}

// A reader that fails mid-body: the message must not be terminated (the
// server would deliver a truncated message), the connection is dropped.
func TestTranscriptReaderFails(t *testing.T) {
	s, sc := dialScripted(t, []string{"PIPELINING"},
		ex{c: "MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n", s: ok + ok + "354 go\r\n"},
		ex{drain: true},
	)
	boom := errors.New("disk on fire")
	res, err := s.Send(context.Background(), &Envelope{From: "a@x", To: []string{"b@y"}}, io.MultiReader(strings.NewReader("part\n"), &errReader{boom}))
	if !errors.Is(err, boom) || res.Data != nil {
		t.Errorf("error %v, Data %v", err, res.Data)
	}
	if err := s.Quit(); err != nil {
		t.Errorf("Quit after abort: %v", err)
	}
	sc.wait()
}

type errReader struct{ err error }

func (e *errReader) Read([]byte) (int, error) { return 0, e.err }

func TestEnvelopeValidation(t *testing.T) {
	s, sc := dialScripted(t, []string{"DSN"}, ex{c: quit, s: bye})
	for _, env := range []Envelope{
		{From: "a@x\r\nRSET", To: []string{"b@y"}},
		{From: "a@x", To: []string{""}},
		{From: "a@x"},
		{From: "a@x", To: []string{"b@y"}, Ret: "ALL"},
		{From: "a@x", To: []string{"b@y"}, Notify: []string{"NEVER", "DELAY"}},
		{From: "a@x", To: []string{"b@y"}, Notify: []string{"SOMETIMES"}},
	} {
		if _, err := s.Send(context.Background(), &env, strings.NewReader("x")); err == nil {
			t.Errorf("Send(%+v) accepted", env)
		}
	}
	// A recipient the wire cannot carry is refused alone, with no command.
	res, err := s.Send(context.Background(), &Envelope{From: "a@x", To: []string{"b@y>"}}, strings.NewReader("x"))
	if err != nil || res.Recipients[0].Err == nil || Temporary(res.Recipients[0].Err) {
		t.Errorf("Send to <b@y>>: err %v, recipient %v; want the recipient refused for good", err, res.Recipients[0].Err)
	}
	s.Quit()
	sc.wait()
}

func TestXtext(t *testing.T) {
	for in, want := range map[string]string{"abc": "abc", "a+b=c": "a+2Bb+3Dc", "a b\x01é": "a+20b+01+C3+A9", "": ""} {
		if got := xtext(in); got != want {
			t.Errorf("xtext(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestTranscriptSendAndQuit: with PIPELINING, QUIT goes out in the same
// write as the final dot; without it, QUIT waits for the dot's reply.
func TestTranscriptSendAndQuit(t *testing.T) {
	tests := []struct {
		name    string
		ext     []string
		script  []ex
		wantErr bool
	}{
		{"pipelined", []string{"PIPELINING"}, []ex{
			{c: "MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n", s: ok + ok + "354 go\r\n"},
			{c: "hi\r\n.\r\nQUIT\r\n", one: true, s: "250 2.0.0 queued\r\n" + bye},
		}, false},
		{"pipelined, refused at the dot: QUIT still answered", []string{"PIPELINING"}, []ex{
			{c: "MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n", s: ok + ok + "354 go\r\n"},
			{c: "hi\r\n.\r\nQUIT\r\n", one: true, s: "554 5.7.1 spam\r\n" + bye},
		}, true},
		{"no pipelining", nil, []ex{
			{c: "MAIL FROM:<a@x>\r\n", s: ok},
			{c: "RCPT TO:<b@y>\r\n", s: ok},
			{c: "DATA\r\n", s: "354 go\r\n"},
			{c: "hi\r\n.\r\n", s: ok},
			{c: quit, s: bye},
		}, false},
		{"every recipient refused: QUIT alone", []string{"PIPELINING"}, []ex{
			{c: "MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n", s: ok + "550 no\r\n554 no valid recipients\r\n"},
			{c: quit, s: bye},
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, sc := dialScripted(t, tt.ext, tt.script...)
			_, err := s.SendAndQuit(context.Background(), &Envelope{From: "a@x", To: []string{"b@y"}}, strings.NewReader("hi\n"))
			if (err != nil) != tt.wantErr {
				t.Errorf("err = %v, want error: %v", err, tt.wantErr)
			}
			sc.wait()
			if !strings.Contains(sc.trace.String(), "--> QUIT") {
				t.Errorf("trace lacks QUIT:\n%s", sc.trace)
			}
		})
	}
}
