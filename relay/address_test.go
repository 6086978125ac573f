package relay

import (
	"errors"
	"strings"
	"testing"
)

func TestCheckAddress(t *testing.T) {
	local := strings.Repeat("a", MaxPath-2-len("@example.com"))
	tests := []struct {
		addr string
		want string // "" = carried
	}{
		{"a@example.com", ""},
		{"", ""}, // the null sender
		{"jörg@example.com", ""},
		{`"a b"@example.com`, ""},
		{"-list@example.com", ""},
		{local + "@example.com", ""},
		{local + "a@example.com", "a path of 257 octets"},
		{strings.Repeat("x", 10000) + "@example.com", "a path of 10014 octets"},
		{"j\xf6rg@example.com", "not valid UTF-8"},
		{`"a<b>c"@example.com`, "an angle bracket"},
		{"a>@example.com", "an angle bracket"},
		{"a\r\nRCPT TO:<b@example.com", "a control character"},
		{"a\x00@example.com", "a control character"},
		{"a\x7f@example.com", "a control character"},
		{"a\u0085@example.com", "a control character"},
	}
	for _, tt := range tests {
		err := CheckAddress(tt.addr)
		if tt.want == "" {
			if err != nil {
				t.Errorf("CheckAddress(%.40q) = %v, want nil", tt.addr, err)
			}
			continue
		}
		if !errors.Is(err, ErrAddress) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("CheckAddress(%.40q) = %v, want %q", tt.addr, err, tt.want)
		}
	}
}
