package relay

import (
	"context"
	"errors"
	"strings"
	"testing"

	"relaymail/internal/smtptest"
)

// fakeTokens hands out tokens in order: Token gives the first, each
// Fresh the next, and records what it was asked.
type fakeTokens struct {
	tokens []string
	calls  []string
}

func (f *fakeTokens) Token(context.Context) (string, error) {
	f.calls = append(f.calls, "token")
	return f.tokens[0], nil
}

func (f *fakeTokens) Fresh(_ context.Context, stale string) (string, error) {
	f.calls = append(f.calls, "fresh("+stale+")")
	for i, t := range f.tokens {
		if t == stale && i+1 < len(f.tokens) {
			return f.tokens[i+1], nil
		}
	}
	return "", errors.New("no fresher token")
}

// TestTokenSourceFreshOnce: a token the server refuses (334 error
// challenge, then 535) gets exactly one more AUTH with a fresh token in
// the same session; a second refusal is the session's error.
func TestTokenSourceFreshOnce(t *testing.T) {
	for _, mech := range []AuthMechanism{AuthXOAuth2, AuthOAuthBearer} {
		for _, tc := range []struct {
			name   string
			tokens []string
			ok     bool
			calls  string
		}{
			{"valid", []string{"good"}, true, "token"},
			{"stale then fresh", []string{"stale", "good"}, true, "token fresh(stale)"},
			{"stale twice", []string{"stale", "stale2", "good"}, false, "token fresh(stale)"},
		} {
			t.Run(string(mech)+" "+tc.name, func(t *testing.T) {
				srv := smtptest.Start(t, smtptest.Options{TLS: smtptest.TLSStartTLS, AuthRequired: true,
					Users: map[string]string{"robot": "good"}, Mechanisms: []string{"XOAUTH2", "OAUTHBEARER"}})
				src := &fakeTokens{tokens: tc.tokens}
				h := hostFor(srv, TLSStartTLS)
				h.Username, h.Auth, h.Token = "robot", mech, src
				s, err := Dial(context.Background(), h, Options{})
				if tc.ok != (err == nil) {
					t.Fatalf("Dial: %v", err)
				}
				if err == nil {
					s.Quit()
				} else if !errors.Is(err, ErrAuth) {
					t.Errorf("error %v is not ErrAuth", err)
				}
				if got := strings.Join(src.calls, " "); got != tc.calls {
					t.Errorf("calls %q, want %q", got, tc.calls)
				}
				waitClosed(t, srv)
			})
		}
	}
}
