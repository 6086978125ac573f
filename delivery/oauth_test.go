package delivery

import (
	"fmt"
	"strings"
	"testing"

	"relaymail/config"
	"relaymail/oauth"
	"relaymail/relay"
)

// TestOAuth2Classify: a token that cannot be had is temporary in every
// mode; Microsoft's replies that need the administrator carry a hint.
func TestOAuth2Classify(t *testing.T) {
	tokenErr := fmt.Errorf("relay: AUTH XOAUTH2: getting the access token: %w", oauth.ErrToken)
	for _, mode := range []config.QueueMode{config.QueueFallback, config.QueueNever} {
		cfg := &config.Config{Queue: config.Queue{Mode: mode}}
		if f := classify(cfg, tokenErr); f.Class != ErrTemporary {
			t.Errorf("mode %s: token error is %v, want temporary", mode, f.Class)
		}
	}
	cfg := &config.Config{Queue: config.Queue{Mode: config.QueueNever}}
	for _, tt := range []struct {
		code     int
		enhanced string
		hint     string
	}{
		{550, "5.7.30", "configure [smarthost.oauth2]"},
		{535, "5.7.139", "Set-CASMailbox -SmtpClientAuthenticationDisabled $false"},
		{535, "5.7.8", ""},
	} {
		err := &relay.Error{Command: "AUTH", Arg: "PLAIN", Code: tt.code, Enhanced: tt.enhanced, Lines: []string{"Authentication unsuccessful"}}
		f := classify(cfg, err)
		if tt.hint == "" && strings.Contains(f.Text, "hint:") || tt.hint != "" && !strings.Contains(f.Text, "hint: ") || !strings.Contains(f.Text, tt.hint) {
			t.Errorf("%d %s: %q", tt.code, tt.enhanced, f.Text)
		}
	}
}
