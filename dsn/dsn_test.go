package dsn

import (
	"bufio"
	"bytes"
	"io"
	"mime"
	"mime/multipart"
	"net/mail"
	"net/textproto"
	"strings"
	"testing"
	"time"
)

var (
	arrival = time.Date(2025, 11, 24, 9, 30, 0, 0, time.UTC)
	now     = time.Date(2025, 11, 29, 9, 30, 0, 0, time.FixedZone("CET", 3600))
	origHdr = []byte("From: Cron Daemon <root@host.example.com>\r\nTo: admin@example.com\r\n" +
		"Subject: Cron <root@host> backup\r\nMessage-ID: <abc.123@host.example.com>\r\n" +
		"X-Folded: one\r\n\ttwo\r\n\r\n")
)

func baseReport() Report {
	return Report{
		ReportingMTA: "host.example.com",
		From:         "MAILER-DAEMON@example.com",
		To:           "root@host.example.com",
		EnvID:        "QQ314159",
		Arrival:      arrival,
		Recipients: []Recipient{{
			Addr: "admin@example.com", Action: "failed", Status: "5.1.1",
			DiagnosticCode: "smtp; 550 5.1.1 <admin@example.com>: no such user",
			RemoteMTA:      "dns; smtp.example.com",
		}},
		Reason:    "The smarthost refused the message.",
		Header:    origHdr,
		Now:       now,
		MessageID: "bounce1",
	}
}

// parsed is a notification taken apart with the standard library.
type parsed struct {
	msg      *mail.Message
	parts    []part
	perMsg   textproto.MIMEHeader
	perRcpt  []textproto.MIMEHeader
	boundary string
}

type part struct {
	header textproto.MIMEHeader
	body   []byte
}

func parse(t *testing.T, data []byte) *parsed {
	t.Helper()
	msg, err := mail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatalf("net/mail cannot read the DSN: %v\n%s", err, data)
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "multipart/report" || params["report-type"] != "delivery-status" || params["boundary"] == "" {
		t.Fatalf("Content-Type = %q (%v)", msg.Header.Get("Content-Type"), err)
	}
	p := &parsed{msg: msg, boundary: params["boundary"]}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	for {
		mp, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("multipart: %v\n%s", err, data)
		}
		body, err := io.ReadAll(mp)
		if err != nil {
			t.Fatal(err)
		}
		p.parts = append(p.parts, part{textproto.MIMEHeader(mp.Header), body})
	}
	if len(p.parts) < 2 {
		t.Fatalf("%d parts, want at least 2", len(p.parts))
	}
	// The delivery-status body: groups of fields separated by blank lines
	// (RFC 3464 §2.1), the first per message, then one per recipient.
	tr := textproto.NewReader(bufio.NewReader(bytes.NewReader(p.parts[1].body)))
	p.perMsg, err = tr.ReadMIMEHeader()
	if err != nil {
		t.Fatalf("per-message fields: %v\n%s", err, p.parts[1].body)
	}
	for {
		h, err := tr.ReadMIMEHeader()
		if len(h) > 0 {
			p.perRcpt = append(p.perRcpt, h)
		}
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("per-recipient fields: %v\n%s", err, p.parts[1].body)
		}
	}
	return p
}

func TestBuildFailed(t *testing.T) {
	data, err := Build(baseReport())
	if err != nil {
		t.Fatal(err)
	}
	p := parse(t, data)
	h := p.msg.Header
	wantHeader := map[string]string{
		"From":           "Mail Delivery System <MAILER-DAEMON@example.com>",
		"To":             "<root@host.example.com>",
		"Subject":        SubjectFailed,
		"Auto-Submitted": "auto-replied",
		"Mime-Version":   "1.0",
		"Message-Id":     "<bounce1@host.example.com>",
		"In-Reply-To":    "<abc.123@host.example.com>",
		"References":     "<abc.123@host.example.com>",
	}
	for k, want := range wantHeader {
		if got := h.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	if d, err := h.Date(); err != nil || !d.Equal(now) {
		t.Errorf("Date: %v, %v", d, err)
	}
	if _, err := mail.ParseAddress(h.Get("From")); err != nil {
		t.Errorf("From does not parse: %v", err)
	}
	if h.Get("Content-Transfer-Encoding") != "" {
		t.Error("a 7-bit notification is marked 8bit")
	}

	if len(p.parts) != 3 {
		t.Fatalf("%d parts, want 3", len(p.parts))
	}
	wantTypes := []string{"text/plain", "message/delivery-status", "text/rfc822-headers"}
	for i, want := range wantTypes {
		if mt, _, _ := mime.ParseMediaType(p.parts[i].header.Get("Content-Type")); mt != want {
			t.Errorf("part %d: %q, want %s", i, p.parts[i].header.Get("Content-Type"), want)
		}
	}
	human := string(p.parts[0].body)
	for _, s := range []string{"admin@example.com", "no such user", "smtp.example.com", "refused the message", "host.example.com"} {
		if !strings.Contains(human, s) {
			t.Errorf("text part lacks %q:\n%s", s, human)
		}
	}

	wantMsg := map[string]string{
		"Reporting-Mta":        "dns; host.example.com",
		"Arrival-Date":         arrival.Format(time.RFC1123Z),
		"Original-Envelope-Id": "QQ314159",
	}
	for k, want := range wantMsg {
		if got := p.perMsg.Get(k); got != want {
			t.Errorf("per-message %s: %q, want %q", k, got, want)
		}
	}
	if len(p.perRcpt) != 1 {
		t.Fatalf("%d recipient groups, want 1", len(p.perRcpt))
	}
	wantRcpt := map[string]string{
		"Final-Recipient": "rfc822; admin@example.com",
		"Action":          "failed",
		"Status":          "5.1.1",
		"Remote-Mta":      "dns; smtp.example.com",
		"Diagnostic-Code": "smtp; 550 5.1.1 <admin@example.com>: no such user",
	}
	for k, want := range wantRcpt {
		if got := p.perRcpt[0].Get(k); got != want {
			t.Errorf("recipient %s: %q, want %q", k, got, want)
		}
	}

	// The third part is the original header block, LF, without its
	// blank line; never the body.
	want := strings.TrimSuffix(strings.ReplaceAll(string(origHdr), "\r\n", "\n"), "\n")
	if got := string(p.parts[2].body); got != want {
		t.Errorf("headers part:\n%q\nwant\n%q", got, want)
	}
	if bytes.Contains(data, []byte("\r")) {
		t.Error("CR in the output: line endings are LF")
	}
	for i, l := range strings.Split(string(data), "\n") {
		if len(l) > 998 {
			t.Errorf("line %d is %d bytes long", i+1, len(l))
		}
	}
}

func TestBuildCases(t *testing.T) {
	long := strings.Repeat("word ", 200)
	bigHeader := []byte("Subject: big\n")
	for len(bigHeader) < MaxHeaderBytes+5000 {
		bigHeader = append(bigHeader, "X-Long: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\n"...)
	}
	bigHeader = append(bigHeader, "\nthe body, which never goes back\n"...)
	tests := []struct {
		name  string
		edit  func(r *Report)
		check func(t *testing.T, p *parsed, data []byte)
	}{
		{"delayed", func(r *Report) {
			r.Recipients = []Recipient{{Addr: "a@example.com", Action: "delayed", DiagnosticCode: "smtp; 421 4.3.2 busy"}}
		}, func(t *testing.T, p *parsed, data []byte) {
			if s := p.msg.Header.Get("Subject"); s != SubjectDelayed {
				t.Errorf("Subject %q", s)
			}
			if g := p.perRcpt[0]; g.Get("Action") != "delayed" || g.Get("Status") != "4.0.0" {
				t.Errorf("recipient group %v", g)
			}
			if !strings.Contains(string(p.parts[0].body), "do not need to send it again") {
				t.Errorf("text part does not say it is still tried:\n%s", p.parts[0].body)
			}
		}},
		{"mixed", func(r *Report) {
			r.Recipients = []Recipient{
				{Addr: "a@example.com", Action: "delayed", Status: "4.4.1"},
				{Addr: "b@example.com", Action: "failed"},
			}
		}, func(t *testing.T, p *parsed, data []byte) {
			if s := p.msg.Header.Get("Subject"); s != SubjectFailed {
				t.Errorf("Subject %q", s)
			}
			if len(p.perRcpt) != 2 || p.perRcpt[0].Get("Status") != "4.4.1" || p.perRcpt[1].Get("Status") != "5.0.0" ||
				p.perRcpt[1].Get("Final-Recipient") != "rfc822; b@example.com" {
				t.Errorf("recipient groups %v", p.perRcpt)
			}
			if p.perRcpt[0].Get("Diagnostic-Code") != "" || p.perRcpt[0].Get("Remote-Mta") != "" {
				t.Errorf("empty optional fields written: %v", p.perRcpt[0])
			}
		}},
		{"defaults", func(r *Report) {
			r.From, r.EnvID, r.MessageID, r.Arrival, r.Reason = "", "", "", time.Time{}, ""
		}, func(t *testing.T, p *parsed, data []byte) {
			if f := p.msg.Header.Get("From"); f != "Mail Delivery System <MAILER-DAEMON@host.example.com>" {
				t.Errorf("From %q", f)
			}
			if id := p.msg.Header.Get("Message-Id"); !strings.HasPrefix(id, "<") || !strings.HasSuffix(id, "@host.example.com>") {
				t.Errorf("Message-ID %q", id)
			}
			if p.perMsg.Get("Arrival-Date") != "" || p.perMsg.Get("Original-Envelope-Id") != "" {
				t.Errorf("optional per-message fields written: %v", p.perMsg)
			}
		}},
		{"long diagnostic folded", func(r *Report) {
			r.Recipients[0].DiagnosticCode = "smtp; 550-5.7.1 first line\r\n550 5.7.1 " + long
		}, func(t *testing.T, p *parsed, data []byte) {
			d := p.perRcpt[0].Get("Diagnostic-Code")
			if !strings.HasPrefix(d, "smtp; 550-5.7.1 first line 550 5.7.1 word word") {
				t.Errorf("Diagnostic-Code %q", d)
			}
			for _, l := range strings.Split(string(p.parts[1].body), "\n") {
				if len(l) > 78 {
					t.Errorf("unfolded line of %d bytes: %q", len(l), l)
				}
			}
		}},
		{"header bounded, body never", func(r *Report) { r.Header = bigHeader }, func(t *testing.T, p *parsed, data []byte) {
			h := p.parts[2].body
			if len(h) > MaxHeaderBytes || len(h) < MaxHeaderBytes-200 {
				t.Errorf("headers part is %d bytes, want just under %d", len(h), MaxHeaderBytes)
			}
			if !bytes.HasSuffix(h, []byte("bbbb\n")) {
				t.Errorf("headers part cut inside a field: ends %q", h[len(h)-40:])
			}
			if bytes.Contains(data, []byte("the body")) {
				t.Error("the original body was returned")
			}
			if _, err := mail.ReadMessage(bytes.NewReader(append(h, "\n\n"...))); err != nil {
				t.Errorf("returned headers do not parse: %v", err)
			}
		}},
		{"no header", func(r *Report) { r.Header = nil }, func(t *testing.T, p *parsed, data []byte) {
			if len(p.parts) != 2 {
				t.Errorf("%d parts, want 2 without a header", len(p.parts))
			}
		}},
		{"8-bit header", func(r *Report) {
			r.Header = []byte("Subject: caf\xc3\xa9\n\n")
		}, func(t *testing.T, p *parsed, data []byte) {
			if p.msg.Header.Get("Content-Transfer-Encoding") != "8bit" || p.parts[2].header.Get("Content-Transfer-Encoding") != "8bit" {
				t.Error("8-bit header part not marked 8bit")
			}
		}},
		{"injection in texts", func(r *Report) {
			r.Reason = "line\r\nBcc: evil@example.com"
			r.EnvID = "x\r\nStatus: 2.0.0"
			r.Recipients[0].DiagnosticCode = "smtp; 550 x\r\n\r\nFinal-Recipient: rfc822; evil@example.com"
		}, func(t *testing.T, p *parsed, data []byte) {
			if p.msg.Header.Get("Bcc") != "" || len(p.perRcpt) != 1 || p.perMsg.Get("Status") != "" {
				t.Errorf("a CR LF in a text made a field:\n%s", data)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := baseReport()
			tt.edit(&r)
			data, err := Build(r)
			if err != nil {
				t.Fatal(err)
			}
			p := parse(t, data)
			if bytes.Contains(r.Header, []byte(p.boundary)) {
				t.Error("boundary occurs in the content")
			}
			tt.check(t, p, data)
		})
	}
}

func TestBuildErrors(t *testing.T) {
	tests := []struct {
		name string
		edit func(r *Report)
		want string
	}{
		{"null sender", func(r *Report) { r.To = "" }, "never bounced"},
		{"no recipients", func(r *Report) { r.Recipients = nil }, "no recipient"},
		{"no reporting MTA", func(r *Report) { r.ReportingMTA = "" }, "reporting MTA"},
		{"bad reporting MTA", func(r *Report) { r.ReportingMTA = "a b" }, "host name"},
		{"CR in To", func(r *Report) { r.To = "a@b\r\nBcc: c@d" }, "bad address"},
		{"bracket in From", func(r *Report) { r.From = "a>@b" }, "bad address"},
		{"bad message id", func(r *Report) { r.MessageID = "a@b" }, "Message-ID"},
		{"empty recipient", func(r *Report) { r.Recipients[0].Addr = "" }, "bad recipient"},
		{"unknown action", func(r *Report) { r.Recipients[0].Action = "bounced" }, "unknown action"},
		{"bad status", func(r *Report) { r.Recipients[0].Status = "5.1" }, "status"},
		{"status of another class", func(r *Report) { r.Recipients[0].Status = "4.1.1" }, "does not fit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := baseReport()
			tt.edit(&r)
			data, err := Build(r)
			if err == nil {
				t.Fatalf("Build succeeded:\n%s", data)
			}
			if !strings.HasPrefix(err.Error(), "dsn: ") || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("error %q, want one about %q", err, tt.want)
			}
		})
	}
}

func TestStatusFor(t *testing.T) {
	tests := []struct {
		code     int
		enhanced string
		want     string
	}{
		{550, "5.1.1", "5.1.1"},
		{550, "", "5.0.0"},
		{550, "4.1.1", "5.0.0"}, // class disagrees with the code
		{552, "5.3.4", "5.3.4"},
		{421, "4.3.2", "4.3.2"},
		{451, "", "4.0.0"},
		{450, "4.x.1", "4.0.0"},
		{250, "2.0.0", "2.0.0"},
		{250, "", "2.0.0"},
		{554, "5.7.1000", "5.0.0"},
		{554, "5.123.456", "5.123.456"},
		{0, "", "5.0.0"},
	}
	for _, tt := range tests {
		if got := StatusFor(tt.code, tt.enhanced); got != tt.want {
			t.Errorf("StatusFor(%d, %q) = %q, want %q", tt.code, tt.enhanced, got, tt.want)
		}
	}
}

// FuzzBuild: whatever the texts and the header hold, Build either
// refuses them or produces a notification that the standard library
// parses, with one recipient group per recipient.
func FuzzBuild(f *testing.F) {
	f.Add("a@example.com", "smtp; 550 5.1.1 x", "dns; mx", "Subject: x\n\n", "reason", "5.1.1")
	f.Add("a@b", "x\r\ny", "", "A: b\r\n c\r\n\r\nbody", "", "")
	f.Add("ü@b", "", "", "\xff\xfe: \x00\n", "\n\n", "4.0.0")
	f.Fuzz(func(t *testing.T, addr, diag, remote, header, reason, status string) {
		r := baseReport()
		r.Recipients = []Recipient{{Addr: addr, Action: "failed", Status: status, DiagnosticCode: diag, RemoteMTA: remote}}
		r.Header = []byte(header)
		r.Reason = reason
		data, err := Build(r)
		if err != nil {
			return
		}
		p := parse(t, data)
		if len(p.perRcpt) != 1 || p.perRcpt[0].Get("Action") != "failed" {
			t.Fatalf("recipient groups %v\n%s", p.perRcpt, data)
		}
	})
}
