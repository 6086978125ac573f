package relay

import (
	"context"
	"errors"
	"strings"
	"testing"

	"relaymail/internal/smtptest"
)

// TestDialerDeadHosts: with a DeadHosts kept across calls (the queue
// runner's pass), a host whose session failed is not dialled again and
// gives its earlier error; a host that failed a transaction is dialled
// again; without one, every call dials every host it reaches.
func TestDialerDeadHosts(t *testing.T) {
	refusing := smtptest.Start(t, smtptest.Options{})
	refusing.SetGreetingErr(smtptest.Reply(421, "4.3.2", "not now"))
	busy := smtptest.Start(t, smtptest.Options{})
	busy.SetMailErr(smtptest.Reply(452, "4.3.1", "full"))
	good := smtptest.Start(t, smtptest.Options{})
	env := &Envelope{From: "a@example.com", To: []string{"b@example.com"}}

	tests := []struct {
		name  string
		first *smtptest.Server // fails, then good answers
		send  bool             // transact sends the message (Deliver), else keeps the session (the runner)
		track bool
		dials int // of first, over two calls
	}{
		{"session failure, tracked: dialled once", refusing, false, true, 1},
		{"session failure, not tracked: dialled each time", refusing, false, false, 2},
		{"transaction failure, tracked: dialled each time", busy, true, true, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var kept []*Session
			defer func() {
				for _, s := range kept {
					s.Quit()
				}
			}()
			transact := func(s *Session) (*Result, error) {
				if tt.send {
					return s.SendAndQuit(context.Background(), env, strings.NewReader(testBody))
				}
				kept = append(kept, s)
				return nil, nil
			}
			before := tt.first.Sessions()
			d := Dialer{Hosts: []Host{hostFor(tt.first, TLSNone), hostFor(good, TLSNone)}}
			if tt.track {
				d.Dead = &DeadHosts{}
			}
			var errs []error
			for range 2 {
				last, failed, err := d.Try(context.Background(), transact)
				if err != nil || last.Host.Port != good.Port() {
					t.Fatalf("Try: %v at port %d, want success at %d", err, last.Host.Port, good.Port())
				}
				if len(failed) != 1 || !TryNextHost(failed[0].Err) {
					t.Fatalf("failed attempts %+v, want one to move on from", failed)
				}
				errs = append(errs, failed[0].Err)
			}
			if got := tt.first.Sessions() - before; got != tt.dials {
				t.Errorf("first host dialled %d times, want %d", got, tt.dials)
			}
			if tt.track && tt.dials == 1 && errs[1] != errs[0] {
				t.Errorf("skipped host gave %v, want its earlier error %v", errs[1], errs[0])
			}
			if tt.first == refusing && !errors.Is(errs[1], ErrSession) {
				t.Errorf("error %v is not a session failure", errs[1])
			}
		})
	}
	for _, srv := range []*smtptest.Server{refusing, busy, good} {
		waitClosed(t, srv)
	}
}
