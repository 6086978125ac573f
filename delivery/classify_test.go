package delivery

import (
	"errors"
	"fmt"
	"testing"

	"relaymail/config"
	"relaymail/relay"
)

func TestClassify(t *testing.T) {
	reply := func(code int, enh string) error {
		return &relay.Error{Command: "MAIL FROM", Code: code, Enhanced: enh, Lines: []string{"text"}}
	}
	transport := &relay.TransportError{Op: "connect", Err: errors.New("connection refused")}
	tests := []struct {
		name     string
		err      error
		fallback error // class with mode = "fallback"
		never    error // class with mode = "never"
	}{
		{"4xx", reply(451, "4.3.0"), ErrTemporary, ErrTemporary},
		{"5xx", reply(554, "5.7.1"), ErrRejected, ErrRejected},
		{"535 authentication", reply(535, "5.7.8"), ErrTemporary, ErrAuth},
		{"454 authentication, temporary", reply(454, "4.7.0"), ErrTemporary, ErrTemporary},
		{"reply of an unexpected class", reply(354, ""), ErrTemporary, ErrProtocol},
		{"transport", transport, ErrTemporary, ErrTemporary},
		{"password_command failed", fmt.Errorf("relay: AUTH PLAIN: getting the password: %w", config.ErrConfig), ErrTemporary, ErrTemporary},
	}
	for _, tt := range tests {
		for mode, want := range map[config.QueueMode]error{config.QueueFallback: tt.fallback, config.QueueNever: tt.never} {
			cfg := &config.Config{Queue: config.Queue{Mode: mode}}
			if got := classify(cfg, tt.err); got.Class != want {
				t.Errorf("%s, mode %s: class %v, want %v", tt.name, mode, got.Class, want)
			}
		}
	}
}

func TestSplitMessage(t *testing.T) {
	for _, tt := range []struct{ in, head, body string }{
		{"A: 1\n\nbody\n", "A: 1\n\n", "body\n"},
		{"A: 1\r\n\r\nbody\r\n", "A: 1\r\n\r\n", "body\r\n"},
		{"A: 1\n", "A: 1\n", ""},
	} {
		h, b := splitMessage([]byte(tt.in))
		if string(h) != tt.head || string(b) != tt.body {
			t.Errorf("splitMessage(%q) = %q, %q", tt.in, h, b)
		}
	}
}
