package sendmail

import (
	"bytes"
	"mime"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

var testNow = time.Date(2026, 11, 29, 17, 41, 49, 0, time.FixedZone("CET", 3600))

func baseOptions() RewriteOptions {
	return RewriteOptions{
		Domain:    "example.com",
		Hostname:  "vm.example.com",
		Sender:    "root@example.com",
		Now:       testNow,
		MessageID: "fixed",
	}
}

func headerString(t *testing.T, h *Header) string {
	t.Helper()
	var b bytes.Buffer
	if _, err := h.WriteTo(&b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestRewrite(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		opt     func(*RewriteOptions)
		want    string
		changes []string
	}{
		{
			name: "cron: bare names qualified, Date and Message-ID added",
			in:   "From: root (Cron Daemon)\nTo: root\nSubject: Cron <root@vm> true\n\n",
			want: "From: root@example.com (Cron Daemon)\nTo: root@example.com\nSubject: Cron <root@vm> true\n" +
				"Date: Sun, 29 Nov 2026 17:41:49 +0100\nMessage-ID: <fixed@vm.example.com>\n\n",
			changes: []string{"qualified bare names in From:", "qualified bare names in To:", "added Date:",
				"added Message-ID: <fixed@vm.example.com>"},
		},
		{
			name:    "cronie From and folded To, CRLF kept",
			in:      "From: \"(Cron Daemon)\" <root>\r\nTo: ops@example.com,\r\n\troot\r\nDate: x\r\nMessage-Id: <m@x>\r\n\r\n",
			want:    "From: \"(Cron Daemon)\" <root@example.com>\r\nTo: ops@example.com,\r\n\troot@example.com\r\nDate: x\r\nMessage-Id: <m@x>\r\n\r\n",
			changes: []string{"qualified bare names in From:", "qualified bare names in To:"},
		},
		{
			name: "Bcc and Resent-Bcc dropped; Cc, Reply-To, Resent-* qualified; others untouched",
			in: "Resent-From: admin\nResent-To: a, b@x\nResent-Cc: c\nResent-Bcc: secret\nResent-Sender: rs\n" +
				"From: f@x\nTo: t@x\nCc: cc\nBcc: hidden, other@x\nBCC: more\nReply-To: rt\nSender: s\nX-To: xt\n" +
				"Subject: root\nDate: d\nMessage-ID: <m@x>\n\n",
			want: "Resent-From: admin@example.com\nResent-To: a@example.com, b@x\nResent-Cc: c@example.com\nResent-Sender: rs\n" +
				"From: f@x\nTo: t@x\nCc: cc@example.com\nReply-To: rt@example.com\nSender: s\nX-To: xt\n" +
				"Subject: root\nDate: d\nMessage-ID: <m@x>\n\n",
			changes: []string{"removed Bcc: (2)", "removed Resent-Bcc: (1)", "qualified bare names in Resent-From:",
				"qualified bare names in Resent-To:", "qualified bare names in Resent-Cc:", "qualified bare names in Cc:",
				"qualified bare names in Reply-To:"},
		},
		{
			name: "nothing to do",
			in:   "From: a@x\nTo: b@x\nDate: d\nMessage-ID: <m@x>\n\n",
			want: "From: a@x\nTo: b@x\nDate: d\nMessage-ID: <m@x>\n\n",
		},
		{
			name: "no Domain: bare names stay",
			in:   "From: root\nDate: d\nMessage-ID: <m@x>\n\n",
			opt:  func(o *RewriteOptions) { o.Domain = "" },
			want: "From: root\nDate: d\nMessage-ID: <m@x>\n\n",
		},
		{
			name:    "From added from Sender and FullName",
			in:      "To: a@x\nDate: d\nMessage-ID: <m@x>\n\n",
			opt:     func(o *RewriteOptions) { o.FullName = "CronDaemon" },
			want:    "To: a@x\nDate: d\nMessage-ID: <m@x>\nFrom: CronDaemon <root@example.com>\n\n",
			changes: []string{"added From: CronDaemon <root@example.com>"},
		},
		{
			name:    "From added without a name",
			in:      "Date: d\nMessage-ID: <m@x>\n\n",
			want:    "Date: d\nMessage-ID: <m@x>\nFrom: root@example.com\n\n",
			changes: []string{"added From: root@example.com"},
		},
		{
			name:    "null sender: MAILER-DAEMON",
			in:      "Date: d\nMessage-ID: <m@x>\n\n",
			opt:     func(o *RewriteOptions) { o.Sender = "" },
			want:    "Date: d\nMessage-ID: <m@x>\nFrom: MAILER-DAEMON@example.com\n\n",
			changes: []string{"added From: MAILER-DAEMON@example.com"},
		},
		{
			name:    "no separator and no final newline",
			in:      "Date: d\nMessage-ID: <m@x>\nFrom: a@x",
			want:    "Date: d\nMessage-ID: <m@x>\nFrom: a@x\n\n",
			changes: nil,
		},
		{
			name: "field ended at EOF, then fields added",
			in:   "To: root",
			want: "To: root@example.com\nDate: Sun, 29 Nov 2026 17:41:49 +0100\nMessage-ID: <fixed@vm.example.com>\nFrom: root@example.com\n\n",
			changes: []string{"qualified bare names in To:", "added Date:", "added Message-ID: <fixed@vm.example.com>",
				"added From: root@example.com"},
		},
		{
			name:    "no Hostname: Domain on the right of Message-ID",
			in:      "From: a@x\nDate: d\n\n",
			opt:     func(o *RewriteOptions) { o.Hostname = "" },
			want:    "From: a@x\nDate: d\nMessage-ID: <fixed@example.com>\n\n",
			changes: []string{"added Message-ID: <fixed@example.com>"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := readHeader(t, []byte(tt.in))
			o := baseOptions()
			if tt.opt != nil {
				tt.opt(&o)
			}
			changes := Rewrite(h, o)
			if got := headerString(t, h); got != tt.want {
				t.Errorf("header\n%q\nwant\n%q", got, tt.want)
			}
			if !reflect.DeepEqual(changes, tt.changes) {
				t.Errorf("changes %q; want %q", changes, tt.changes)
			}
		})
	}
}

func TestRewriteFrom(t *testing.T) {
	tests := []struct {
		from, sender, want string
	}{
		{"root (Cron Daemon)", "cron@example.org", "cron@example.org (Cron Daemon)"},
		{`"Web App" <app@example.com>`, "relay@example.org", `"Web App" <relay@example.org>`},
		{"Web App <app@example.com>\r\n", "relay@example.org", "Web App <relay@example.org>\r\n"},
		{"a@x, b@x", "s@y", "s@y, b@x"},             // only the first of several
		{"grp: a@x, b@x;", "s@y", "grp: s@y, b@x;"}, // the first group member
		{"<>", "s@y", "<s@y>"},                      // empty angle filled
		{"Web App", "s@y", "Full Name <s@y>"},       // no address: replaced whole
		{"undisclosed:;", "s@y", "Full Name <s@y>"}, // no member
		{"", "s@y", "Full Name <s@y>"},              // empty
		{"\"broken <a@x>\r\n", "s@y", "Full Name <s@y>\r\n"},
		{"Name <s@y>", "s@y", "Name <s@y>"},                    // already right: unchanged
		{"Name <a@x>", "", "Name <MAILER-DAEMON@example.com>"}, // null sender
	}
	for _, tt := range tests {
		h := &Header{Fields: []*Field{
			{Name: "From", Raw: []byte("From: " + tt.from)},
			{Name: "Date", Raw: []byte("Date: d\n")},
			{Name: "Message-ID", Raw: []byte("Message-ID: <m@x>\n")},
		}}
		o := baseOptions()
		o.Sender = tt.sender
		o.FullName = "Full Name"
		o.RewriteFrom = true
		changes := Rewrite(h, o)
		got := strings.TrimPrefix(string(h.Fields[0].Raw), "From: ")
		got = strings.TrimPrefix(got, "From:")
		if strings.TrimLeft(got, " ") != tt.want {
			t.Errorf("From: %q with sender %q -> %q; want %q", tt.from, tt.sender, got, tt.want)
		}
		if (len(changes) > 0) != (tt.from != tt.want) && !strings.Contains(tt.from, "root") {
			t.Errorf("From: %q: changes %q", tt.from, changes)
		}
	}
	// Every From: field gets it.
	h := readHeader(t, []byte("From: a@x\nFrom: b@x\nDate: d\nMessage-ID: <m@x>\n\n"))
	o := baseOptions()
	o.RewriteFrom = true
	Rewrite(h, o)
	if got := headerString(t, h); got != "From: root@example.com\nFrom: root@example.com\nDate: d\nMessage-ID: <m@x>\n\n" {
		t.Errorf("two From: fields: %q", got)
	}
}

func TestRewriteFromName(t *testing.T) {
	tests := []struct {
		name, want string
	}{
		{"Cron Daemon", "Cron Daemon <s@x>"},
		{"  Cron   Daemon ", "Cron Daemon <s@x>"},
		{"John Q. Public", `"John Q. Public" <s@x>`},
		{"Doe, John", `"Doe, John" <s@x>`},
		{`say "hi" \o/`, `"say \"hi\" \\o/" <s@x>`},
		{"=?utf-8?q?fake?=", `"=?utf-8?q?fake?=" <s@x>`},
		{"Evil\r\nBcc: victim@x", `"Evil Bcc: victim@x" <s@x>`},
		{"Jörg Müller", "=?utf-8?q?J=C3=B6rg_M=C3=BCller?= <s@x>"},
		{"Müller, Jörg", "=?utf-8?b?TcO8bGxlciwgSsO2cmc=?= <s@x>"},
		{"", "s@x"},
		{" \t", "s@x"},
	}
	dec := new(mime.WordDecoder)
	for _, tt := range tests {
		got := formatMailbox(tt.name, "s@x")
		if got != tt.want {
			t.Errorf("formatMailbox(%q) = %q; want %q", tt.name, got, tt.want)
		}
		// The result parses back to the address, and the name decodes back.
		addrs, err := ParseAddressList(got, "")
		if err != nil || len(addrs) != 1 || addrs[0] != "s@x" {
			t.Errorf("formatMailbox(%q) = %q parses as %q, %v", tt.name, got, addrs, err)
		}
		if strings.Contains(got, "=?") && !strings.HasPrefix(got, `"`) {
			name, err := dec.DecodeHeader(strings.TrimSuffix(got, " <s@x>"))
			if err != nil || name != tt.name {
				t.Errorf("formatMailbox(%q): name decodes to %q, %v", tt.name, name, err)
			}
		}
	}
}

func TestRewriteMessageID(t *testing.T) {
	o := baseOptions()
	o.MessageID = ""
	re := regexp.MustCompile(`^Message-ID: <20261129164149\.[A-Z2-7]{26}@vm\.example\.com>\n$`)
	seen := map[string]bool{}
	for i := 0; i < 100; i++ {
		h := &Header{}
		Rewrite(h, o)
		f := h.Get("Message-ID")
		if len(f) != 1 || !re.Match(f[0].Raw) {
			t.Fatalf("Message-ID %q", f[0].Raw)
		}
		if seen[string(f[0].Raw)] {
			t.Fatalf("Message-ID %q twice", f[0].Raw)
		}
		seen[string(f[0].Raw)] = true
	}
	// A zero Now means the current time.
	o.Now = time.Time{}
	h := &Header{}
	Rewrite(h, o)
	d := h.Get("Date")
	if len(d) != 1 {
		t.Fatal("no Date")
	}
	got, err := time.Parse(time.RFC1123Z, d[0].Value())
	if err != nil || time.Since(got) > time.Minute || time.Since(got) < -time.Minute {
		t.Errorf("Date %q: %v", d[0].Value(), err)
	}
}

// TestRewriteKeepsOtherBytes checks on the nasty fixture that every
// field Rewrite has no business with leaves byte for byte.
func TestRewriteKeepsOtherBytes(t *testing.T) {
	in := readFixture(t, "nasty.eml")
	h := readHeader(t, in)
	before := map[*Field]string{}
	for _, f := range h.Fields {
		before[f] = string(f.Raw)
	}
	o := baseOptions()
	o.Domain = "example.org"
	changes := Rewrite(h, o)
	for _, f := range h.Fields {
		old, ok := before[f]
		switch {
		case !ok:
			if f.Name != "Date" && f.Name != "Message-ID" {
				t.Errorf("unexpected new field %q", f.Raw)
			}
		case strings.EqualFold(f.Name, "bcc"):
			t.Errorf("Bcc kept: %q", f.Raw)
		case nameIn(f.Name, qualifiedFields):
			// Only "@example.org" may have been inserted.
			if strings.ReplaceAll(string(f.Raw), "@example.org", "") != old {
				t.Errorf("%s: %q -> %q", f.Name, old, f.Raw)
			}
		default:
			if string(f.Raw) != old {
				t.Errorf("%s changed: %q -> %q", f.Name, old, f.Raw)
			}
		}
	}
	got := headerString(t, h)
	for _, want := range []string{
		"To: root@example.org, \"Doe, John\" <john@example.com>,\n",
		"To : <root@example.org>\n",
		"Reply-To: reply@example.com\r\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("rewritten header lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(strings.ToLower(got), "hidden") || strings.Contains(got, "www-data") {
		t.Errorf("Bcc addresses left in the header:\n%s", got)
	}
	// The rewritten header still gives the To/Cc recipients, qualified.
	rcpts, err := HeaderRecipients(h)
	if err != nil || len(rcpts) != 12 || rcpts[0] != "root@example.org" || rcpts[8] != "root@example.org" {
		t.Errorf("recipients after Rewrite: %q, %v", rcpts, err)
	}
	if len(changes) != 5 {
		t.Errorf("changes %q", changes)
	}
}
