package smtpgate

import (
	"strings"
	"testing"

	"relaymail/relay"
)

// TestReplySmarthost: the smarthost's refusal is relayed with its code,
// enhanced code and text, the address put first only when the text does
// not name it.
func TestReplySmarthost(t *testing.T) {
	tests := []struct {
		name string
		err  error
		addr string
		want string
	}{
		{"550 not naming the address", &relay.Error{Code: 550, Enhanced: "5.1.1", Lines: []string{"no such user"}}, "b@x",
			"550 5.1.1 <b@x>: no such user"},
		{"550 naming it (Postfix)", &relay.Error{Code: 550, Enhanced: "5.1.1", Lines: []string{"<B@x>: Recipient address rejected"}}, "b@x",
			"550 5.1.1 <B@x>: Recipient address rejected"},
		{"452, two lines", &relay.Error{Code: 452, Enhanced: "4.2.2", Lines: []string{"mailbox", "full"}}, "b@x",
			"452 4.2.2 <b@x>: mailbox full"},
		{"MAIL's refusal, no address", &relay.Error{Code: 553, Enhanced: "5.7.1", Lines: []string{"sender not allowed"}}, "",
			"553 5.7.1 sender not allowed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := replySmarthost(tt.err, tt.addr)
			if got := strings.TrimPrefix(r.Error(), "smtpd: "); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

// TestReplyRelayed: the smarthost's 250 to the final dot is relayed with
// its code, enhanced code and text, the lines joined and a note after.
func TestReplyRelayed(t *testing.T) {
	tests := []struct {
		name string
		r    *relay.Reply
		note string
		want string
	}{
		{"Postfix", &relay.Reply{Code: 250, Enhanced: "2.0.0", Lines: []string{"Ok: queued as 4Xy"}}, "", "250 2.0.0 Ok: queued as 4Xy"},
		{"two lines", &relay.Reply{Code: 250, Enhanced: "2.6.0", Lines: []string{"ok", "id 7"}}, "", "250 2.6.0 ok id 7"},
		{"a note", &relay.Reply{Code: 250, Lines: []string{"ok"}}, "some recipients refused, the sender is told",
			"250 ok; some recipients refused, the sender is told"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := strings.TrimPrefix(replyRelayed(tt.r, tt.note).Error(), "smtpd: "); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
