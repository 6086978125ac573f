package sendmail

import (
	"errors"
	"strings"
)

// HeaderRecipients implements -t: it returns the addresses of every To:,
// Cc: and Bcc: field in header order, or, when the header holds a
// Resent- block, those of the Resent-To:, Resent-Cc: and Resent-Bcc:
// fields of the first such block only (the first contiguous run of
// Resent-* fields from the top, which is the most recent resending,
// RFC 5322 §3.6.6), as Postfix and sendmail 8 do.
//
// Every occurrence of a field counts (Perl's Mail::Mailer writes two To:
// lines) and folded values are unfolded. Bare names are returned bare, so
// that the caller can apply aliases before it qualifies them; duplicates
// are kept for the caller to remove after that.
//
// A field that cannot be parsed is an error wrapping ErrData that names
// the field; the addresses of the other fields are still returned, and
// every bad field is reported (errors.Join).
func HeaderRecipients(h *Header) ([]string, error) {
	fields := h.Fields
	names := []string{"To", "Cc", "Bcc"}
	if start, end, ok := firstResentBlock(h); ok {
		fields = h.Fields[start:end]
		names = []string{"Resent-To", "Resent-Cc", "Resent-Bcc"}
	}
	var out []string
	var errs []error
	for _, f := range fields {
		if !nameIn(f.Name, names) {
			continue
		}
		v := f.Value()
		addrs, err := addressList(v, "")
		if err != nil {
			errs = append(errs, dataErrorf("header field %s: bad address list %q: %v", f.Name, shorten(v), err))
			continue
		}
		out = append(out, addrs...)
	}
	return out, errors.Join(errs...)
}

// firstResentBlock returns the span of the first contiguous run of
// Resent-* fields.
func firstResentBlock(h *Header) (start, end int, ok bool) {
	start = -1
	for i, f := range h.Fields {
		resent := isResent(f.Name)
		switch {
		case resent && start < 0:
			start = i
		case !resent && start >= 0:
			return start, i, true
		}
	}
	if start < 0 {
		return 0, 0, false
	}
	return start, len(h.Fields), true
}

func isResent(name string) bool {
	const p = "resent-"
	return len(name) > len(p) && strings.EqualFold(name[:len(p)], p)
}

func nameIn(name string, names []string) bool {
	for _, n := range names {
		if strings.EqualFold(name, n) {
			return true
		}
	}
	return false
}
