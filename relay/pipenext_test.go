package relay

import (
	"context"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// TestTranscriptPipelineNext: SendPipelined writes the next transaction's
// first group in the same write as the final dot, and each message's
// result comes from its own replies whatever happened to the other.
func TestTranscriptPipelineNext(t *testing.T) {
	const (
		mailB  = "MAIL FROM:<a@x>\r\nRCPT TO:<c@y>\r\nDATA\r\n"
		dotA   = "first\r\n.\r\n"
		dotB   = "second\r\n.\r\n"
		goData = "354 go\r\n"
	)
	type send struct {
		env, next int // indexes into envs; next -1: plain Send
		body      string
		want      recipientOutcome
		data      string // the reply text to the dot; "": Result.Data nil
		errIs     error
		errTemp   bool
	}
	a := Envelope{From: "a@x", To: []string{"b@y"}}
	b := Envelope{From: "a@x", To: []string{"c@y"}}
	bigB := b
	bigB.Size = bdatMinSize
	canceled, cancel := context.WithCancel(context.Background())
	cancel()
	// Every case starts with a's envelope pipelined, b's behind its dot.
	firstA := ex{c: "MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n", s: ok + ok + goData}
	// a's outcome when its dot is answered 250.
	sentA := send{env: 0, next: 1, body: "first", want: recipientOutcome{accepted: []string{"b@y"}}, data: "queued A"}
	tests := []struct {
		name   string
		ext    []string
		envs   []Envelope      // nil: a, b
		stop   context.Context // nil: never done
		script []ex
		sends  []send
	}{
		{
			name: "next MAIL, RCPT and DATA in the same write as the dot",
			ext:  []string{"PIPELINING"},
			script: []ex{
				firstA,
				{c: dotA + mailB, one: true, s: "250 2.0.0 queued A\r\n" + ok + ok + goData},
				{c: dotB, one: true, s: "250 2.0.0 queued B\r\n"},
				{c: quit, s: bye},
			},
			sends: []send{
				sentA,
				{env: 1, next: -1, body: "second", want: recipientOutcome{accepted: []string{"c@y"}}, data: "queued B"},
			},
		},
		{
			name: "554 to the dot, then the next message's 250s",
			ext:  []string{"PIPELINING"},
			script: []ex{
				firstA,
				{c: dotA + mailB, one: true, s: "554 5.7.1 spam\r\n" + ok + ok + goData},
				{c: dotB, s: "250 2.0.0 queued B\r\n"},
				{c: quit, s: bye},
			},
			sends: []send{
				{env: 0, next: 1, body: "first", want: recipientOutcome{refused: []string{"b@y"}}, errIs: ErrFatal},
				{env: 1, next: -1, body: "second", want: recipientOutcome{accepted: []string{"c@y"}}, data: "queued B"},
			},
		},
		{
			name: "4xx to the next MAIL is the next message's",
			ext:  []string{"PIPELINING"},
			script: []ex{
				firstA,
				{c: dotA + mailB, one: true, s: "250 2.0.0 queued A\r\n451 4.3.0 later\r\n503 no MAIL\r\n503 no MAIL\r\n"},
				{c: quit, s: bye},
			},
			sends: []send{
				sentA,
				{env: 1, next: -1, body: "second", want: recipientOutcome{deferred: []string{"c@y"}}, errIs: ErrBusy, errTemp: true},
			},
		},
		{
			name: "the connection drops after the dot: neither is sent",
			ext:  []string{"PIPELINING"},
			script: []ex{
				firstA,
				{c: dotA + mailB, one: true, close: true},
			},
			sends: []send{
				{env: 0, next: 1, body: "first", want: recipientOutcome{deferred: []string{"b@y"}}, errIs: ErrTransport, errTemp: true},
				{env: 1, next: -1, body: "second", want: recipientOutcome{deferred: []string{"c@y"}}, errIs: ErrTransport, errTemp: true},
			},
		},
		{
			name: "the connection drops after the dot's 250: the first is sent, the next is not",
			ext:  []string{"PIPELINING"},
			script: []ex{
				firstA,
				{c: dotA + mailB, one: true, s: "250 2.0.0 queued A\r\n", close: true},
			},
			sends: []send{
				sentA,
				{env: 1, next: -1, body: "second", want: recipientOutcome{deferred: []string{"c@y"}}, errIs: ErrTransport, errTemp: true},
			},
		},
		{
			name: "octets after the pipelined 354 are a protocol error: no body",
			ext:  []string{"PIPELINING"},
			script: []ex{
				firstA,
				{c: dotA + mailB, one: true, s: "250 2.0.0 queued A\r\n" + ok + ok + goData + "250 2.0.0 queued B\r\n"},
			},
			sends: []send{
				sentA,
				{env: 1, next: -1, body: "second", want: recipientOutcome{refused: []string{"c@y"}}, errIs: ErrUnknownReply},
			},
		},
		{
			name: "Quit with the next DATA answered 354: the connection is closed, no body, no QUIT",
			ext:  []string{"PIPELINING"},
			script: []ex{
				firstA,
				{c: dotA + mailB, one: true, s: "250 2.0.0 queued A\r\n" + ok + ok + goData},
			},
			sends: []send{
				sentA,
			},
		},
		{
			name: "Quit with the next DATA refused: QUIT",
			ext:  []string{"PIPELINING"},
			script: []ex{
				firstA,
				{c: dotA + mailB, one: true, s: "250 2.0.0 queued A\r\n" + ok + "550 no\r\n554 no valid recipients\r\n"},
				{c: quit, s: bye},
			},
			sends: []send{
				sentA,
			},
		},
		{
			name: "stopped: nothing behind the dot, the next starts on its own",
			ext:  []string{"PIPELINING"},
			stop: canceled,
			script: []ex{
				firstA,
				{c: dotA, one: true, s: "250 2.0.0 queued A\r\n"},
				{c: quit, s: bye},
			},
			sends: []send{
				sentA,
			},
		},
		{
			name: "next goes with BDAT: nothing behind the dot",
			ext:  []string{"PIPELINING", "CHUNKING"},
			envs: []Envelope{a, bigB},
			script: []ex{
				firstA,
				{c: dotA, one: true, s: "250 2.0.0 queued A\r\n"},
				{c: quit, s: bye},
			},
			sends: []send{
				sentA,
			},
		},
		{
			name: "no PIPELINING: nothing behind the dot",
			script: []ex{
				{c: "MAIL FROM:<a@x>\r\n", s: ok},
				{c: "RCPT TO:<b@y>\r\n", s: ok},
				{c: "DATA\r\n", s: goData},
				{c: dotA, one: true, s: "250 2.0.0 queued A\r\n"},
				{c: quit, s: bye},
			},
			sends: []send{
				sentA,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.envs == nil {
				tt.envs = []Envelope{a, b}
			}
			s, sc := dialScripted(t, tt.ext, tt.script...)
			stop := tt.stop
			if stop == nil {
				stop = context.Background()
			}
			for i, sd := range tt.sends {
				var next *Envelope
				if sd.next >= 0 {
					next = &tt.envs[sd.next]
				}
				res, err := s.SendPipelined(context.Background(), &tt.envs[sd.env], strings.NewReader(sd.body), next, stop)
				if sd.errIs == nil && err != nil || sd.errIs != nil && !errors.Is(err, sd.errIs) {
					t.Errorf("send %d: err = %v, want %v", i, err, sd.errIs)
				}
				if err != nil && Temporary(err) != sd.errTemp {
					t.Errorf("send %d: Temporary(%v) = %v", i, err, !sd.errTemp)
				}
				if got := outcome(res); !reflect.DeepEqual(got, sd.want) {
					t.Errorf("send %d: outcome %+v, want %+v", i, got, sd.want)
				}
				switch {
				case sd.data == "" && res.Data != nil:
					t.Errorf("send %d: Data = %v, want none", i, res.Data)
				case sd.data != "" && (res.Data == nil || strings.Join(res.Data.Lines, " ") != sd.data):
					t.Errorf("send %d: Data = %v, want %q", i, res.Data, sd.data)
				}
			}
			s.Quit()
			sc.wait()
		})
	}
}
