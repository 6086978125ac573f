package sendmail

import (
	"errors"
	"net/mail"
	"reflect"
	"strings"
	"testing"
)

func TestQualifyAddressList(t *testing.T) {
	const d = "example.com"
	tests := []struct {
		in, want string
	}{
		// Captures: cron, cronie, sudo, atd, mailutils, Mail::Mailer.
		{"root (Cron Daemon)", "root@example.com (Cron Daemon)"},
		{" root (Cron Daemon)\n", " root@example.com (Cron Daemon)\n"},
		{`"(Cron Daemon)" <root>`, `"(Cron Daemon)" <root@example.com>`},
		{"root", "root@example.com"},
		{" root\r\n", " root@example.com\r\n"},
		{"<root>", "<root@example.com>"},
		{"Name <a@x>, root", "Name <a@x>, root@example.com"},
		{"ops@example.com,second@example.com", ""},
		{"undisclosed-recipients:;", ""},
		{"list: root, b@x;", "list: root@example.com, b@x;"},
		{"list: root, b@x; c", "list: root@example.com, b@x; c@example.com"},
		{"a@x", ""},
		{"", ""},
		{"   ", ""},
		// Folding, comments, quoting kept byte for byte.
		{" a@x,\r\n\troot,\r\n bob (the (nested) builder)\r\n", " a@x,\r\n\troot@example.com,\r\n bob@example.com (the (nested) builder)\r\n"},
		{`"Doe, John" <jdoe>, "x;y" <y@x>`, `"Doe, John" <jdoe@example.com>, "x;y" <y@x>`},
		{`(a, b; c) root (d: e)`, `(a, b; c) root@example.com (d: e)`},
		{`"quoted local"`, `"quoted local"@example.com`},
		{`"a@b"`, `"a@b"@example.com`},
		{`john . smith`, `john . smith@example.com`},
		{`root(comment)`, `root@example.com(comment)`},
		{`=?UTF-8?Q?J=C3=B6rg,_Doe?= <joerg>`, `=?UTF-8?Q?J=C3=B6rg,_Doe?= <joerg@example.com>`},
		{"Jörg <jörg>", "Jörg <jörg@example.com>"},
		{"<@route.example:user>", "<@route.example:user@example.com>"},
		{"a@x; root", "a@x; root@example.com"},
		// Left alone: the element (or the whole list) cannot be parsed.
		{"<>", ""},
		{"John Smith", ""},
		{"John Smith, root", "John Smith, root@example.com"},
		{`"unterminated, root`, ""},
		{"(unterminated root", ""},
		{"<root, other", ""},
		{"root>", ""},
		{"a@", ""},
	}
	for _, tt := range tests {
		want := tt.want
		if want == "" {
			want = tt.in
		}
		got, changed := QualifyAddressList(tt.in, d)
		if got != want || changed != (want != tt.in) {
			t.Errorf("QualifyAddressList(%q) = %q, %v; want %q, %v", tt.in, got, changed, want, want != tt.in)
		}
	}
	if got, changed := QualifyAddressList("root", ""); got != "root" || changed {
		t.Errorf(`QualifyAddressList("root", "") = %q, %v; want unchanged`, got, changed)
	}
}

func TestParseAddressList(t *testing.T) {
	tests := []struct {
		in     string
		domain string
		want   []string
	}{
		{"root", "example.com", []string{"root@example.com"}},
		{"root", "", []string{"root"}},
		{"a@x,b@y", "", []string{"a@x", "b@y"}},
		{"ops@example.com,second@example.com", "", []string{"ops@example.com", "second@example.com"}},
		{"a@example.com, Bob <b@example.com>", "", []string{"a@example.com", "b@example.com"}},
		{"<user@example.com>", "", []string{"user@example.com"}},
		{"root (Cron Daemon)", "", []string{"root"}},
		{`"(Cron Daemon)" <root>`, "d", []string{"root@d"}},
		{"undisclosed-recipients:;", "d", nil},
		{"undisclosed-recipients: ;", "d", nil},
		{"list: root, b@x;, c@y", "", []string{"root", "b@x", "c@y"}},
		{"list: root, b@x", "", []string{"root", "b@x"}}, // group without ';'
		{"a:;, b: c@d ;", "", []string{"c@d"}},
		{"", "", nil},
		{" , ,a@x,, ", "", []string{"a@x"}},
		{"(just a comment)", "", nil},
		{`"Doe, John" <john@x>`, "", []string{"john@x"}},
		{`"a;b:c" <c@x>, "<d@y>" <d@x>`, "", []string{"c@x", "d@x"}},
		{`a(comment)@x`, "", []string{"a@x"}},
		{`a (c) . (d) b @ (e) x . y`, "", []string{"a.b@x.y"}},
		{`"john smith"@x`, "", []string{`"john smith"@x`}},
		{`"a\"b"@x`, "", []string{`"a\"b"@x`}},
		{`"root"@x`, "", []string{`root@x`}},
		{`"root"`, "d", []string{`root@d`}},
		{`"a"."b c"@x`, "", []string{`"a.b c"@x`}},
		{`john."x"@x`, "", []string{`john.x@x`}},
		{`"a\b"@x`, "", []string{`ab@x`}},
		{`"a\\b"@x`, "", []string{`"a\\b"@x`}},
		{`"a@b"@x`, "", []string{`"a@b"@x`}},
		{`Root@Example.COM`, "", []string{`Root@Example.COM`}},
		{`a@[192.0.2.1]`, "", []string{`a@[192.0.2.1]`}},
		{`jörg@bücher.example`, "", []string{`jörg@bücher.example`}},
		{`=?UTF-8?Q?Gr=C3=BC=C3=9Fe,_Bob?= <b@x>`, "", []string{"b@x"}},
		{`=?UTF-8?B?R3LDvMOfZQ==?= <b@x>`, "", []string{"b@x"}},
		{`user@example.com <user@example.com>`, "", []string{"user@example.com"}},
		{`<@a.example,@b.example:u@c.example>`, "", []string{"u@c.example"}},
		{`a@x; b@y`, "", []string{"a@x", "b@y"}},
		{`Name <a@x> (trailing comment)`, "", []string{"a@x"}},
		{"\tmixed\t<tab@x>\t", "", []string{"tab@x"}},
		{"[-i]", "", nil}, // filled below: an error
	}
	for _, tt := range tests {
		if tt.in == "[-i]" {
			continue
		}
		got, err := ParseAddressList(tt.in, tt.domain)
		if err != nil {
			t.Errorf("ParseAddressList(%q) error: %v", tt.in, err)
			continue
		}
		if !reflect.DeepEqual(got, tt.want) {
			t.Errorf("ParseAddressList(%q, %q) = %q; want %q", tt.in, tt.domain, got, tt.want)
		}
	}
}

func TestParseAddressListErrors(t *testing.T) {
	tests := []struct {
		in, reason string
	}{
		{"a@x\r\nBcc: b@x", "CR, LF or NUL"},
		{"a@x\nb", "CR, LF or NUL"},
		{"a\x00@x", "CR, LF or NUL"},
		{"<a@x", "unbalanced <>"},
		{"a@x>", "unbalanced <>"},
		{"<<a@x>>", "unbalanced <>"},
		{"<a@x> <b@x>", "unbalanced <>"},
		{"<a@x> junk", "text after >"},
		{"<>", "empty address <>"},
		{"Name <>", "empty address <>"},
		{`"unterminated`, "unterminated quoted string"},
		{"(unterminated", "unterminated comment"},
		{"a) b", "unbalanced )"},
		{"a@[1.2.3.4", "unterminated domain literal"},
		{"a@", "empty domain"},
		{"@x", "empty local part"},
		{"a@b@c", "unexpected '@'"},
		{"John Smith", "two words"},
		{"a@x y", "two words"},
		{`a"b"@x`, "missing dot"},
		{"[-i]", "unexpected [-i]"},
		{`a\b@x`, "backslash outside quotes"},
		{"g1: a@x, g2: b@x;;", "group inside a group"},
		{"<@route-without-colon>", "address starts with @"},
		{"a@x, b c, d@x", "two words"},
		{"\x01@x", "control character"},
	}
	for _, tt := range tests {
		got, err := ParseAddressList(tt.in, "example.com")
		if err == nil {
			t.Errorf("ParseAddressList(%q) = %q; want an error", tt.in, got)
			continue
		}
		if !errors.Is(err, ErrData) {
			t.Errorf("ParseAddressList(%q): %v does not wrap ErrData", tt.in, err)
		}
		msg := err.Error()
		if !strings.HasPrefix(msg, "bad address list ") || !strings.Contains(msg, tt.reason) {
			t.Errorf("ParseAddressList(%q): error %q; want \"bad address list\" and %q", tt.in, msg, tt.reason)
		}
		if got != nil {
			t.Errorf("ParseAddressList(%q): addresses %q with an error", tt.in, got)
		}
	}
	// A long value is shortened in the message, but its start is quoted.
	long := strings.Repeat("x", 500) + " y"
	_, err := ParseAddressList(long, "")
	if err == nil || len(err.Error()) > 200 || !strings.Contains(err.Error(), "xxxx...") {
		t.Errorf("long value: error %v; want a shortened quote", err)
	}
}

// TestParseAddressListAgreesWithNetMail checks the lexer against net/mail
// on lists that net/mail accepts and whose local parts need no quoting.
func TestParseAddressListAgreesWithNetMail(t *testing.T) {
	lists := []string{
		"a@example.com, Bob <b@example.com>",
		`"Doe, John" <john@example.com>, jane@example.com (Jane)`,
		`=?UTF-8?Q?Gr=C3=BC=C3=9Fe?= <g@example.com>`,
		"group: a@x.example, b@y.example;, c@z.example",
		"Dev Eloper <dev@example.com>, cc@example.com",
		`"(Cron Daemon)" <root@vm>`,
		"a@example.com (comment), b@example.com",
		"<a@x.example>",
		"Jörg <j@example.com>",
	}
	for _, l := range lists {
		want, err := mail.ParseAddressList(l)
		if err != nil {
			t.Fatalf("net/mail rejects %q: %v", l, err)
		}
		got, err := ParseAddressList(l, "")
		if err != nil {
			t.Errorf("ParseAddressList(%q): %v", l, err)
			continue
		}
		var ws []string
		for _, a := range want {
			ws = append(ws, a.Address)
		}
		if !reflect.DeepEqual(got, ws) {
			t.Errorf("ParseAddressList(%q) = %q; net/mail says %q", l, got, ws)
		}
	}
}

func TestParseSender(t *testing.T) {
	tests := []struct {
		in, domain, want string
	}{
		{"", "d", ""},
		{"<>", "d", ""},
		{" <> ", "d", ""},
		{"Name <>", "d", ""},
		{"a@x", "d", "a@x"},
		{"<a@x>", "d", "a@x"},
		{"Name <a@x>", "d", "a@x"},
		{"Sender Name <sender@example.com>", "d", "sender@example.com"},
		{`"Web App" <app@example.com>`, "d", "app@example.com"},
		{"root", "example.com", "root@example.com"},
		{"root", "", "root"},
		{"Sender", "example.com", "Sender@example.com"}, // the mailutils bug: a word, taken as a local name
		{"root@vm", "example.com", "root@vm"},
		{"bounce@example.com", "x", "bounce@example.com"},
		{"<root>", "example.com", "root@example.com"},
		{"root (comment)", "example.com", "root@example.com"},
	}
	for _, tt := range tests {
		got, err := ParseSender(tt.in, tt.domain)
		if err != nil || got != tt.want {
			t.Errorf("ParseSender(%q, %q) = %q, %v; want %q", tt.in, tt.domain, got, err, tt.want)
		}
	}
	bad := []string{
		"a@x, b@x",
		"grp: a@x;",
		"grp:;",
		"a@x\n",
		"Sender Name",
		"<a@x",
		`"x`,
		"(only a comment)",
		"a@",
	}
	for _, in := range bad {
		got, err := ParseSender(in, "d")
		if err == nil || !errors.Is(err, ErrData) || !strings.HasPrefix(err.Error(), "bad sender address") {
			t.Errorf("ParseSender(%q) = %q, %v; want an ErrData error", in, got, err)
		}
	}
}

func TestIsBareName(t *testing.T) {
	tests := []struct {
		in   string
		want bool
	}{
		{"root", true},
		{"www-data", true},
		{`"a@b"`, true},
		{`"a\"@b"`, true},
		{"a@b", false},
		{`"a@b"@c`, false},
		{`"a\\"@b`, false},
		{"", false},
	}
	for _, tt := range tests {
		if got := IsBareName(tt.in); got != tt.want {
			t.Errorf("IsBareName(%q) = %v; want %v", tt.in, got, tt.want)
		}
	}
}

func FuzzQualifyAddressList(f *testing.F) {
	for _, s := range []string{
		"root (Cron Daemon)", `"(Cron Daemon)" <root>`, "Name <a@x>, root", "undisclosed-recipients:;",
		"list: root, b@x;", " a@x,\r\n\troot\r\n", `=?UTF-8?Q?a,b?= <c>`, `"a\"b" (c\)d) <e>`, "<@r:u>",
	} {
		f.Add(s)
	}
	const domain = "qualified.invalid"
	f.Fuzz(func(t *testing.T, in string) {
		out, changed := QualifyAddressList(in, domain)
		ins := "@" + domain
		if strings.ReplaceAll(out, ins, "") != strings.ReplaceAll(in, ins, "") {
			t.Fatalf("QualifyAddressList(%q) = %q: more than @domain inserted", in, out)
		}
		if changed != (out != in) {
			t.Fatalf("QualifyAddressList(%q) = %q, changed %v", in, out, changed)
		}
		// Qualifying twice changes nothing more.
		if again, c := QualifyAddressList(out, domain); c || again != out {
			t.Fatalf("QualifyAddressList not idempotent: %q -> %q -> %q", in, out, again)
		}
		// What ParseAddressList finds in the result has a domain.
		if addrs, err := ParseAddressList(out, ""); err == nil {
			for _, a := range addrs {
				if IsBareName(a) {
					t.Fatalf("QualifyAddressList(%q) = %q still holds bare %q", in, out, a)
				}
			}
		}
	})
}

func FuzzParseAddressList(f *testing.F) {
	for _, s := range []string{
		"root", "a@x,b@y", `"Doe, John" <j@x>`, "g: a, b@x;", "a (c) . b @ x", "<>", "<@a,@b:c@d>",
		`=?UTF-8?Q?x?= <a@b>`, "a@[1.2.3.4]", "\"x\\\"y\"@z",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		// Where net/mail accepts the list and every address is plain
		// dot-atom text, the lexer must find the same addresses.
		if want, err := mail.ParseAddressList(in); err == nil && plainAddrs(want) {
			got, err := ParseAddressList(in, "")
			var ws []string
			for _, a := range want {
				ws = append(ws, a.Address)
			}
			if err != nil || !reflect.DeepEqual(got, ws) {
				t.Fatalf("ParseAddressList(%q) = %q, %v; net/mail says %q", in, got, err, ws)
			}
		}
		addrs, err := ParseAddressList(in, "d.example")
		if err != nil {
			if !errors.Is(err, ErrData) {
				t.Fatalf("ParseAddressList(%q): %v does not wrap ErrData", in, err)
			}
			return
		}
		for _, a := range addrs {
			if a == "" || strings.ContainsAny(a, "\r\n\x00") {
				t.Fatalf("ParseAddressList(%q) gave %q", in, a)
			}
			if IsBareName(a) {
				t.Fatalf("ParseAddressList(%q) gave unqualified %q", in, a)
			}
		}
		// Whatever parses as a list of one also parses as a sender.
		if len(addrs) == 1 && !strings.Contains(in, ":") {
			if s, err := ParseSender(in, "d.example"); err != nil || s != addrs[0] {
				t.Fatalf("ParseSender(%q) = %q, %v; list gave %q", in, s, err, addrs[0])
			}
		}
	})
}

// plainAddrs reports whether every address is dot-atom@dot-atom, the
// form that net/mail and the lexer render the same way.
func plainAddrs(as []*mail.Address) bool {
	for _, a := range as {
		local, domain, ok := strings.Cut(a.Address, "@")
		if !ok || !dotAtom(local) || !dotAtom(domain) {
			return false
		}
	}
	return true
}

func dotAtom(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] != '.' && !isAtext(s[i]) {
			return false
		}
	}
	return true
}
