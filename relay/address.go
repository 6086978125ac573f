package relay

import (
	"errors"
	"fmt"
	"unicode/utf8"
)

// MaxPath is the longest reverse- or forward-path RFC 5321 §4.5.3.1.3
// allows, angle brackets included.
const MaxPath = 256

// ErrAddress is wrapped by CheckAddress's errors: an address that no
// MAIL FROM or RCPT TO command can carry.
var ErrAddress = errors.New("address the wire cannot carry")

// CheckAddress reports whether addr can go into MAIL FROM:<addr> or
// RCPT TO:<addr>: valid UTF-8 (SMTPUTF8 carries UTF-8, nothing else), no
// control octet (a CR or LF would end the command and start another), no
// angle bracket (it would end the path early, even inside a quoted local
// part), and a path of at most MaxPath octets. The intake refuses such a
// recipient alone with this rule and Send refuses the envelope with it,
// so both agree on what the wire can carry. The error says why without
// repeating the address (it may be 10 kB, or not text at all).
func CheckAddress(addr string) error {
	switch {
	case !utf8.ValidString(addr):
		return fmt.Errorf("%w: not valid UTF-8", ErrAddress)
	case len(addr)+2 > MaxPath:
		return fmt.Errorf("%w: a path of %d octets, over the %d of RFC 5321 §4.5.3.1.3", ErrAddress, len(addr)+2, MaxPath)
	}
	for _, r := range addr {
		switch {
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			return fmt.Errorf("%w: a control character", ErrAddress)
		case r == '<' || r == '>':
			return fmt.Errorf("%w: an angle bracket", ErrAddress)
		}
	}
	return nil
}
