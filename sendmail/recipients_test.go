package sendmail

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

func readHeader(t *testing.T, in []byte) *Header {
	t.Helper()
	h, _, err := ReadMessage(bytes.NewReader(in), IntakeOptions{IgnoreDots: true}, &bytes.Buffer{})
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func wantLines(t *testing.T, name string) []string {
	t.Helper()
	return strings.Split(strings.TrimSuffix(string(readFixture(t, name)), "\n"), "\n")
}

func TestHeaderRecipientsFixtures(t *testing.T) {
	tests := []struct {
		file string
		want []string
	}{
		// Deliberately nasty: repeated To/Cc/Bcc in any case, folding,
		// groups, quoted names with ',' and ';', nested comments, encoded
		// words holding ',', bare names, obsolete spacing, mixed endings.
		{"nasty.eml", wantLines(t, "nasty.want")},
		// The first Resent- block only.
		{"resent.eml", wantLines(t, "resent.want")},
		// Captures of -t callers.
		{"php-002.eml", []string{"a@example.com", "b@example.com", "c@example.com", "hidden@example.com"}},
		{"php-003.eml", []string{"root", "b1@example.com", "b2@example.com"}},
		{"perl-mail-mailer-001.eml", []string{"a@example.com", "root", "c@example.com", "hidden@example.com"}}, // two To: lines
		{"git-send-email-001.eml", []string{"list@example.com", "cc@example.com", "dev@example.com"}},          // folded Cc
		{"ruby-mail-001.eml", []string{"a@example.com", "b@example.com", "c@example.com"}},                     // folded To
		{"mailutils-001.eml", []string{"user@example.com"}},                                                    // To: <addr>
		{"bsd-mailx-002.eml", []string{"to1@example.com", "to2@example.com", "cc@example.com", "bcc@example.com"}},
		{"cron-debian-002.eml", []string{"ops@example.com", "second@example.com"}},
		{"cron-debian-001.eml", []string{"root"}},
		{"sudo-001.eml", []string{"admin@example.com"}},
		{"nodemailer-006.eml", []string{"ops@example.com", "hidden@example.com"}},
		{"perl-mime-lite-001.eml", []string{"a@example.com", "c@example.com", "hidden@example.com"}},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			h := readHeader(t, readFixture(t, tt.file))
			got, err := HeaderRecipients(h)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}

func TestHeaderRecipients(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []string
		err  string
	}{
		{name: "none", in: "Subject: x\n\n"},
		{name: "empty To", in: "To:\nCc: \n\n"},
		{name: "undisclosed", in: "To: undisclosed-recipients:;\n\n"},
		{name: "Resent block without To means none", in: "Resent-From: a@x\nTo: b@x\n\n"},
		{name: "Resent- at the bottom still counts",
			in: "To: b@x\nResent-To: r@x\n\n", want: []string{"r@x"}},
		{name: "Resent-Bcc alone", in: "Resent-Bcc: rb@x\nBcc: b@x\n\n", want: []string{"rb@x"}},
		{name: "a name that only starts like Resent", in: "Resent: x\nTo: b@x\n\n", want: []string{"b@x"}},
		{name: "other fields ignored", in: "From: f@x\nReply-To: r@x\nSender: s@x\nX-To: x@x\nTo: t@x\n\n", want: []string{"t@x"}},
		{name: "bad field named, good ones kept", in: "To: a@x\nCc: <broken\nBcc: b@x\n\n", want: []string{"a@x", "b@x"},
			err: `header field Cc: bad address list "<broken": unbalanced <>`},
		{name: "two bad fields", in: "To: a b\ncc: (x\n\n",
			err: "header field To: bad address list \"a b\": two words without '@' or '<>' (a display name needs <address>)\n" +
				`header field cc: bad address list "(x": unterminated comment`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := readHeader(t, []byte(tt.in))
			got, err := HeaderRecipients(h)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %q; want %q", got, tt.want)
			}
			switch {
			case tt.err == "" && err != nil:
				t.Errorf("error %v", err)
			case tt.err != "" && (err == nil || err.Error() != tt.err || !errors.Is(err, ErrData)):
				t.Errorf("error %v; want %q wrapping ErrData", err, tt.err)
			}
		})
	}
}
