package relay

import (
	"bufio"
	"errors"
	"io"
	"reflect"
	"strings"
	"testing"
)

func readOne(in string) (*Reply, []string, error) {
	var traced []string
	rr := replyReader{br: bufio.NewReaderSize(strings.NewReader(in), 4096), trace: func(l string) { traced = append(traced, l) }}
	r, err := rr.read()
	return r, traced, err
}

func TestReadReply(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want *Reply
	}{
		{"single", "250 OK\r\n", &Reply{Code: 250, Lines: []string{"OK"}}},
		{"bare code", "250\r\n", &Reply{Code: 250, Lines: []string{""}}},
		{"LF only", "220 mx ready\n", &Reply{Code: 220, Lines: []string{"mx ready"}}},
		{"multi", "250-mx.example\r\n250-PIPELINING\r\n250 SIZE 100\r\n",
			&Reply{Code: 250, Lines: []string{"mx.example", "PIPELINING", "SIZE 100"}}},
		{"enhanced", "550 5.1.1 <x@y>: no such user\r\n",
			&Reply{Code: 550, Enhanced: "5.1.1", Lines: []string{"<x@y>: no such user"}}},
		{"enhanced every line", "451-4.3.0 first\r\n451 4.3.0 second\r\n",
			&Reply{Code: 451, Enhanced: "4.3.0", Lines: []string{"first", "second"}}},
		{"enhanced only", "250 2.0.0\r\n", &Reply{Code: 250, Enhanced: "2.0.0", Lines: []string{""}}},
		{"enhanced three-digit parts", "554 5.123.456 x\r\n", &Reply{Code: 554, Enhanced: "5.123.456", Lines: []string{"x"}}},
		{"class mismatch is text", "550 4.1.1 odd\r\n", &Reply{Code: 550, Lines: []string{"4.1.1 odd"}}},
		{"not enhanced: version", "220 mx ESMTP 1.2.3\r\n", &Reply{Code: 220, Lines: []string{"mx ESMTP 1.2.3"}}},
		{"not enhanced: glued", "250 2.0.0ok\r\n", &Reply{Code: 250, Lines: []string{"2.0.0ok"}}},
		{"not enhanced: four digits", "550 5.1.1234 x\r\n", &Reply{Code: 550, Lines: []string{"5.1.1234 x"}}},
		{"3xx never enhanced", "354 3.0.0 go on\r\n", &Reply{Code: 354, Lines: []string{"3.0.0 go on"}}},
		{"334 base64", "334 VXNlcm5hbWU6\r\n", &Reply{Code: 334, Lines: []string{"VXNlcm5hbWU6"}}},
		{"trailing bytes stay", "250 a\r\n250 b\r\n", &Reply{Code: 250, Lines: []string{"a"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, traced, err := readOne(tt.in)
			if err != nil {
				t.Fatalf("read(%q): %v", tt.in, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("read(%q) = %+v, want %+v", tt.in, got, tt.want)
			}
			if len(traced) != len(tt.want.Lines) {
				t.Errorf("traced %d lines, want %d", len(traced), len(tt.want.Lines))
			}
		})
	}
}

func TestReadReplyErrors(t *testing.T) {
	tests := []struct {
		name      string
		in        string
		malformed bool // else a transport-level error
	}{
		{"garbage", "hello\r\n", true},
		{"short", "25\r\n", true},
		{"letters", "2x0 ok\r\n", true},
		{"code 1xx", "150 ok\r\n", true},
		{"code 6xx", "650 ok\r\n", true},
		{"second digit 6", "260 ok\r\n", true},
		{"bad separator", "250_ok\r\n", true},
		{"code changes", "250-a\r\n251 b\r\n", true},
		{"too long", "250 " + strings.Repeat("x", maxReplyLine) + "\r\n", true},
		{"way too long", "250 " + strings.Repeat("x", 10000) + "\r\n", true},
		{"too many lines", strings.Repeat("250-x\r\n", maxReplyLines) + "250 x\r\n", true},
		{"empty", "", false},
		{"EOF mid line", "250 ok", false},
		{"EOF mid reply", "250-ok\r\n", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := readOne(tt.in)
			if err == nil {
				t.Fatalf("read(%q): no error", clip(tt.in))
			}
			if got := errors.Is(err, errMalformed); got != tt.malformed {
				t.Errorf("read(%q): %v; malformed = %v, want %v", clip(tt.in), err, got, tt.malformed)
			}
			if !tt.malformed && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
				t.Errorf("read(%q): %v, want an EOF", clip(tt.in), err)
			}
		})
	}
	// Exactly at the bound is fine.
	line := "250 " + strings.Repeat("x", maxReplyLine-6) + "\r\n"
	if _, _, err := readOne(line); err != nil {
		t.Errorf("line of exactly %d octets: %v", len(line), err)
	}
	if _, _, err := readOne(strings.Repeat("250-x\r\n", maxReplyLines-1) + "250 x\r\n"); err != nil {
		t.Errorf("reply of exactly %d lines: %v", maxReplyLines, err)
	}
}

func TestParseEHLO(t *testing.T) {
	got := parseEHLO([]string{"mx.example greets you", "PIPELINING", "size 1000", "AUTH PLAIN LOGIN", "AUTH=CRAM-MD5", "8BITMIME", "STARTTLS", ""})
	want := map[string]string{"PIPELINING": "", "SIZE": "1000", "AUTH": "PLAIN LOGIN CRAM-MD5", "8BITMIME": "", "STARTTLS": ""}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("parseEHLO = %v, want %v", got, want)
	}
	if got := parseEHLO(nil); len(got) != 0 {
		t.Errorf("parseEHLO(nil) = %v", got)
	}
}

func FuzzReadReply(f *testing.F) {
	for _, s := range []string{
		"250 OK\r\n", "250-a\r\n250 b\r\n", "550 5.1.1 x\r\n", "334 \r\n", "220\n",
		"451-4.3.0 a\r\n451 4.3.0 b\r\n", "hello\r\n", "250-", strings.Repeat("250-x\r\n", 101),
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		r, _, err := readOne(in)
		if err != nil {
			if r != nil {
				t.Fatalf("reply %+v with error %v", r, err)
			}
			return
		}
		if r.Code < 200 || r.Code > 559 {
			t.Fatalf("code %d out of range", r.Code)
		}
		if len(r.Lines) == 0 || len(r.Lines) > maxReplyLines {
			t.Fatalf("%d lines", len(r.Lines))
		}
		for _, l := range r.Lines {
			if len(l) > maxReplyLine || strings.ContainsAny(l, "\n") {
				t.Fatalf("bad line %q", clip(l))
			}
		}
		if r.Enhanced != "" {
			if r.Enhanced[0] != byte('0'+r.Code/100) || enhancedCode(r.Code, r.Enhanced) != r.Enhanced {
				t.Fatalf("enhanced %q with code %d", r.Enhanced, r.Code)
			}
		}
		_ = r.String()
	})
}
