package smtpd

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestParseCommand(t *testing.T) {
	tests := []struct {
		line, verb, arg string
		code            int // 0: parsed
	}{
		{"QUIT", "QUIT", "", 0},
		{"quit", "QUIT", "", 0},
		{"MaIl FROM:<a@x>  ", "MAIL", "FROM:<a@x>", 0},
		{"EHLO   [127.0.0.1]", "EHLO", "[127.0.0.1]", 0},
		{"", "", "", 500},
		{" NOOP", "", "", 500},
		{"N0OP", "", "", 500},
		{"NO\x00OP", "", "", 500},
		{"NOOP\r", "", "", 500},
		{"ÜBER x", "", "", 500},
		{strings.Repeat("A", 17), "", "", 500},
	}
	for _, tc := range tests {
		cmd, r := parseCommand([]byte(tc.line))
		if tc.code != 0 {
			if r == nil || r.Code != tc.code {
				t.Errorf("%q: reply %v, want %d", tc.line, r, tc.code)
			}
			continue
		}
		if r != nil || cmd.verb != tc.verb || cmd.arg != tc.arg {
			t.Errorf("%q: got %+v, %v; want %q %q", tc.line, cmd, r, tc.verb, tc.arg)
		}
	}
}

func TestParsePathArg(t *testing.T) {
	tests := []struct {
		arg      string
		sender   bool
		addr     string
		params   string // KEY=VALUE,KEY
		code     int
		enhanced string
	}{
		{"FROM:<a@x>", true, "a@x", "", 0, ""},
		{"from:<a@x>", true, "a@x", "", 0, ""},
		{"FROM: <a@x>", true, "a@x", "", 0, ""},
		{"FROM:<>", true, "", "", 0, ""},
		{"FROM:a@x SIZE=5", true, "a@x", "SIZE=5", 0, ""},
		{"FROM:<a@x> size=5 body=8BITMIME smtputf8", true, "a@x", "SIZE=5,BODY=8BITMIME,SMTPUTF8", 0, ""},
		{"FROM:<ü@x> SMTPUTF8", true, "ü@x", "SMTPUTF8", 0, ""},
		{"FROM:<ü@x>", true, "", "", 553, "5.6.7"},
		{"FROM:<a@x>SIZE=5", true, "", "", 501, "5.5.4"},
		{"FROM <a@x>", true, "", "", 501, "5.5.4"},
		{"FROM:<a@x", true, "", "", 501, "5.1.7"},
		{"FROM:<<a@x>>", true, "", "", 501, "5.1.7"},
		{"FROM:<a@x> SIZE==", true, "", "", 501, "5.5.4"},
		{"FROM:<a@x> -X=1", true, "", "", 501, "5.5.4"},
		{"TO:<a@x>", false, "a@x", "", 0, ""},
		{"TO:<Postmaster>", false, "Postmaster", "", 0, ""},
		{"TO:<@a,@b:c@d>", false, "c@d", "", 0, ""},
		{"TO:<@[IPv6:::1]:c@d>", false, "c@d", "", 0, ""},
		{"TO:<\"a b\"@x>", false, `"a b"@x`, "", 0, ""},
		{"TO:<\"a\\\"b>\"@x>", false, `"a\"b>"@x`, "", 0, ""},
		{"TO:<a@[192.0.2.1]>", false, "a@[192.0.2.1]", "", 0, ""},
		{"TO:<a..b@x.example>", false, "a..b@x.example", "", 0, ""},
		{"TO:<>", false, "", "", 501, "5.1.3"},
		{"TO:<a@>", false, "", "", 501, "5.1.3"},
		{"TO:<@x>", false, "", "", 501, "5.1.3"},
		{"TO:<a@x..y>", false, "", "", 501, "5.1.3"},
		{"TO:<a,b@x>", false, "", "", 501, "5.1.3"},
		{"TO:<a@x y>", false, "", "", 501, "5.1.3"},
		{"TO:<a@[x>", false, "", "", 501, "5.1.3"},
		{"TO:<\"a@x>", false, "", "", 501, "5.1.3"},
		{"TO:<a@\xff>", false, "", "", 501, "5.1.3"},
		{"TO:<@a:>", false, "", "", 501, "5.1.3"},
		{"TO:<" + strings.Repeat("a", 251) + "@x.y>", false, "", "", 501, "5.1.3"},
		{"TO:" + strings.Repeat("a", 251) + "@x.y", false, "", "", 501, "5.1.3"},
		{"FROM:<a@x>", false, "", "", 501, "5.5.4"},
	}
	for _, tc := range tests {
		kw := "TO"
		if tc.sender {
			kw = "FROM"
		}
		pa, r := parsePathArg(tc.arg, kw, tc.sender, false)
		if tc.code != 0 {
			if r == nil || r.Code != tc.code || r.Enhanced != tc.enhanced {
				t.Errorf("%q: reply %v, want %d %s", tc.arg, r, tc.code, tc.enhanced)
			}
			continue
		}
		if r != nil {
			t.Errorf("%q: unexpected reply %v", tc.arg, r)
			continue
		}
		var ps []string
		for _, p := range pa.params {
			if p.hasValue {
				ps = append(ps, p.key+"="+p.value)
			} else {
				ps = append(ps, p.key)
			}
		}
		if pa.addr != tc.addr || strings.Join(ps, ",") != tc.params {
			t.Errorf("%q: got %q %v, want %q %q", tc.arg, pa.addr, ps, tc.addr, tc.params)
		}
	}
}

func TestParseMailParams(t *testing.T) {
	tests := []struct {
		arg  string
		max  int64
		want mailParams
		code int
	}{
		{"FROM:<a@x>", 100, mailParams{}, 0},
		{"FROM:<a@x> SIZE=100 BODY=8bitmime SMTPUTF8", 100, mailParams{100, true, true}, 0},
		{"FROM:<a@x> BODY=7BIT", 100, mailParams{}, 0},
		{"FROM:<a@x> SIZE=101", 100, mailParams{}, 552},
		{"FROM:<a@x> SIZE=18446744073709551616", -1, mailParams{}, 552},
		{"FROM:<a@x> SIZE=9223372036854775807", -1, mailParams{size: 9223372036854775807}, 0},
		{"FROM:<a@x> SIZE", 100, mailParams{}, 501},
		{"FROM:<a@x> SIZE=-1", 100, mailParams{}, 501},
		{"FROM:<a@x> SIZE=+1", 100, mailParams{}, 501},
		{"FROM:<a@x> BODY=BINARYMIME", 100, mailParams{}, 501},
		{"FROM:<a@x> SMTPUTF8=yes", 100, mailParams{}, 501},
		{"FROM:<a@x> RET=HDRS", 100, mailParams{}, 555},
		{"FROM:<a@x> X-FOO", 100, mailParams{}, 555},
	}
	for _, tc := range tests {
		pa, r := parsePathArg(tc.arg, "FROM", true, false)
		if r != nil {
			if r.Code != tc.code {
				t.Errorf("%q: path reply %v", tc.arg, r)
			}
			continue
		}
		mp, r := parseMailParams(pa.params, tc.max)
		if tc.code != 0 {
			if r == nil || r.Code != tc.code {
				t.Errorf("%q: reply %v, want %d", tc.arg, r, tc.code)
			}
			continue
		}
		if r != nil || mp != tc.want {
			t.Errorf("%q: got %+v, %v; want %+v", tc.arg, mp, r, tc.want)
		}
	}
}

// FuzzCommand: the command parsers never panic, and what they accept is
// safe to hand on (no line breaks, no controls, valid UTF-8, bounded).
func FuzzCommand(f *testing.F) {
	for _, s := range []string{
		"MAIL FROM:<a@x> SIZE=10 BODY=8BITMIME SMTPUTF8",
		"RCPT TO:<@a,@[IPv6:::1]:\"x y\"@[1.2.3.4]>",
		"MAIL FROM:a@x",
		"RCPT TO:<\"\\\">\"@x>",
		"EHLO [127.0.0.1]",
		"MAIL FROM:<ü@ü.example> SMTPUTF8",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		cmd, r := parseCommand(line)
		if r != nil {
			if r.Code != 500 {
				t.Fatalf("parseCommand reply %v", r)
			}
			return
		}
		if strings.ContainsAny(cmd.arg, "\r\n\x00") || strings.ToUpper(cmd.verb) != cmd.verb {
			t.Fatalf("bad command %+v", cmd)
		}
		for _, kw := range []string{"FROM", "TO"} {
			pa, r := parsePathArg(cmd.arg, kw, kw == "FROM", false)
			if r != nil {
				if r.Code < 500 || r.Code > 555 {
					t.Fatalf("reply %v", r)
				}
				continue
			}
			utf8Param := false
			for _, p := range pa.params {
				utf8Param = utf8Param || p.key == "SMTPUTF8"
			}
			if len(pa.addr)+2 > maxPath || !utf8.ValidString(pa.addr) || !isASCII(pa.addr) && !(kw == "FROM" && utf8Param) {
				t.Fatalf("accepted %q", pa.addr)
			}
			if pa.addr != "" && !validMailbox(pa.addr) {
				t.Fatalf("accepted invalid mailbox %q", pa.addr)
			}
			for _, c := range pa.addr {
				if c < ' ' || c == 0x7f || c == '<' && !strings.Contains(pa.addr, `"`) {
					t.Fatalf("accepted %q", pa.addr)
				}
			}
			mp, r := parseMailParams(pa.params, 1000)
			if r == nil && (mp.size < 0 || mp.size > 1000) {
				t.Fatalf("size %d accepted", mp.size)
			}
		}
	})
}
