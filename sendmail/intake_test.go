package sendmail

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
)

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", "intake", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func fieldNames(h *Header) []string {
	var names []string
	for _, f := range h.Fields {
		names = append(names, f.Name)
	}
	return names
}

// TestReadMessageCaptures reads stdin as real callers wrote it
// (testdata/clients), with -i as each caller passed it.
func TestReadMessageCaptures(t *testing.T) {
	tests := []struct {
		file       string
		ignoreDots bool
		names      []string
		sep        string
		body       string
		eightBit   bool
		loneDot    bool
	}{
		{
			file: "php-001.eml", ignoreDots: true, // PHP mail(): CRLF headers, LF body, raw UTF-8 Subject
			names: []string{"To", "Subject"}, sep: "\r\n",
			body:     "line1\nline2\n.\n..twodots\nlast line without newline\r\n",
			eightBit: true,
		},
		{
			file: "php-002.eml", ignoreDots: true, // CRLF throughout, Bcc present
			names: []string{"To", "Subject", "From", "Cc", "Bcc", "Reply-To", "X-Custom"}, sep: "\r\n",
			body: "Body\r\nsecond line\r\n\r\n",
		},
		{
			file: "php-005.eml", ignoreDots: true, // mixed LF and CRLF in the header block
			names: []string{"To", "Subject", "From", "Cc"}, sep: "\n", body: "b\n\n",
		},
		{
			file: "cron-debian-001.eml", ignoreDots: true,
			names: []string{"From", "To", "Subject", "MIME-Version", "Content-Type", "Content-Transfer-Encoding",
				"X-Cron-Env", "X-Cron-Env", "X-Cron-Env", "X-Cron-Env"},
			sep: "\n", body: "job1 default MAILTO (root)\n.\nGrüße\n", eightBit: true,
		},
		{
			file: "cron-debian-002.eml", ignoreDots: true, // CRLF job output, no final newline
			names: []string{"From", "To", "Subject", "MIME-Version", "Content-Type", "Content-Transfer-Encoding",
				"X-Cron-Env", "X-Cron-Env", "X-Cron-Env", "X-Cron-Env", "X-Cron-Env"},
			sep: "\n", body: "job2 multi MAILTO\r\nCRLF line\r\nno trailing newline",
		},
		{
			file: "bsd-mailx-001.eml", ignoreDots: true, // the body is kept whole after a lone dot with -i
			names: []string{"To", "Subject", "MIME-Version", "Content-Type", "Content-Transfer-Encoding"},
			sep:   "\n", body: "hello from bsd-mailx\n.\nafter lone dot\nGrüße\n", eightBit: true,
		},
		{
			file: "bsd-mailx-004.eml", ignoreDots: true, // empty body
			names: []string{"To", "Subject", "MIME-Version", "Content-Type", "Content-Transfer-Encoding"},
			sep:   "\n", body: "",
		},
		{
			file: "atd-nooutput-001.eml", ignoreDots: true,
			names: []string{"Subject", "To"}, sep: "\n", body: "",
		},
		{
			file: "mutt-001.eml", ignoreDots: false, // no -oi: the lone dot ends the message
			names: []string{"Date", "From", "To", "Subject", "Message-ID", "MIME-Version", "Content-Type",
				"Content-Disposition", "Content-Transfer-Encoding"},
			sep: "\n", body: "hello from mutt\n", loneDot: true,
			eightBit: false, // the Latin-1 line after the dot was discarded
		},
		{
			file: "perl-mail-mailer-001.eml", ignoreDots: false, // -t without -i
			names: []string{"Subject", "To", "To", "Cc", "Bcc", "From"}, sep: "\n",
			body: "line1\n", loneDot: true,
		},
		{
			file: "php-symfony-mailer-003.eml", ignoreDots: false, // dot-stuffed by Symfony, un-stuffed here
			names: []string{"From", "To", "Cc", "Subject", "Message-ID", "MIME-Version", "Date",
				"Content-Type", "Content-Transfer-Encoding"},
			sep: "\n", body: "line1\n.\nGr=C3=BC=C3=9Fe\n",
		},
		{
			file: "php-swiftmailer-002.eml", ignoreDots: false,
			names: []string{"Message-ID", "Date", "Subject", "From", "To", "Bcc", "MIME-Version",
				"Content-Type", "Content-Transfer-Encoding"},
			sep: "\n", body: "line1\n.\nGr=C3=BC=C3=9Fe\n",
		},
		{
			file: "ruby-mail-001.eml", ignoreDots: true, // folded To and Content-Type
			names: []string{"Date", "From", "To", "Cc", "Message-ID", "Subject", "Mime-Version", "Content-Type",
				"Content-Transfer-Encoding"},
			sep: "\n", body: "bGluZTENCi4NCkdyw7zDn2UNCg==\n",
		},
		{
			file: "sudo-001.eml", ignoreDots: false,
			names: []string{"To", "From", "Auto-Submitted", "Subject"}, sep: "\n",
			body: "vm : Nov 29 16:44:45 : root : PWD=/home/admin ; USER=root ; COMMAND=/usr/bin/true\n\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			in := readFixture(t, tt.file)
			var body bytes.Buffer
			h, st, err := ReadMessage(bytes.NewReader(in), IntakeOptions{IgnoreDots: tt.ignoreDots}, &body)
			if err != nil {
				t.Fatal(err)
			}
			if got := fieldNames(h); !reflect.DeepEqual(got, tt.names) {
				t.Errorf("fields %q; want %q", got, tt.names)
			}
			if string(h.Separator) != tt.sep {
				t.Errorf("separator %q; want %q", h.Separator, tt.sep)
			}
			if body.String() != tt.body {
				t.Errorf("body %q; want %q", body.String(), tt.body)
			}
			if st.EightBit != tt.eightBit || st.LoneDot != tt.loneDot || st.HasNUL {
				t.Errorf("stats %+v; want EightBit %v LoneDot %v", st, tt.eightBit, tt.loneDot)
			}
			if st.BodyBytes != int64(body.Len()) || st.HeaderBytes != h.Len() {
				t.Errorf("stats %+v; body %d octets, header %d", st, body.Len(), h.Len())
			}
			// With -i and a separator, header and body are the input.
			if tt.ignoreDots {
				var out bytes.Buffer
				h.WriteTo(&out)
				out.Write(body.Bytes())
				if !bytes.Equal(out.Bytes(), in) {
					t.Errorf("header+body differ from the input:\n%q\n%q", out.Bytes(), in)
				}
			}
		})
	}
}

func TestReadMessage(t *testing.T) {
	tests := []struct {
		name       string
		in         string
		ignoreDots bool
		fields     []string // raw fields
		sep        string   // "<nil>" for none
		body       string
		stats      IntakeStats // HeaderBytes/BodyBytes checked separately
	}{
		{name: "empty input", in: "", sep: "<nil>", body: ""},
		{name: "only a blank line", in: "\n", sep: "\n", body: ""},
		{name: "no headers, body text", in: "hello world\nsecond\n", sep: "<nil>", body: "hello world\nsecond\n"},
		{name: "headers then garbage line", in: "A: 1\nthis is not a header\nB: 2\n",
			fields: []string{"A: 1\n"}, sep: "<nil>", body: "this is not a header\nB: 2\n"},
		{name: "no blank line, ends in header", in: "To: a@x\nSubject: s",
			fields: []string{"To: a@x\n", "Subject: s"}, sep: "<nil>", body: ""},
		{name: "continuation lines", in: "To: a@x,\n\tb@x,\r\n  c@x\nX: y\n\nbody\n",
			fields: []string{"To: a@x,\n\tb@x,\r\n  c@x\n", "X: y\n"}, sep: "\n", body: "body\n"},
		{name: "leading white space line is body", in: " indented\nA: b\n", sep: "<nil>", body: " indented\nA: b\n"},
		{name: "obsolete space before colon", in: "Subject : hi\n\nb", fields: []string{"Subject : hi\n"}, sep: "\n", body: "b"},
		{name: "empty name is not a header", in: ": x\n\n", sep: "<nil>", body: ": x\n\n"},
		{name: "mbox From line dropped", in: "From root@vm Sun Nov 29 16:00:00 2026\nTo: a@x\n\nb\n",
			fields: []string{"To: a@x\n"}, sep: "\n", body: "b\n"},
		{name: "From line only at the top", in: "To: a@x\nFrom someone\n", fields: []string{"To: a@x\n"}, sep: "<nil>", body: "From someone\n"},
		{name: "From: header is kept", in: "From: a@x\n\n", fields: []string{"From: a@x\n"}, sep: "\n"},
		{name: "lone CR ends a header line", in: "A: 1\r2\n\r\nx\ry\r\n", fields: []string{"A: 1\r"}, sep: "<nil>", body: "2\n\r\nx\ry\r\n"},
		{name: "field after a lone CR", in: "Subject: a\rBcc: x@y\n\nb\n", fields: []string{"Subject: a\r", "Bcc: x@y\n"}, sep: "\n", body: "b\n"},
		{name: "continuation after a lone CR", in: "A: 1\r 2\rB: 3\r\rb\r", fields: []string{"A: 1\r 2\r", "B: 3\r"}, sep: "\r", body: "b\r"},
		{name: "CR CR LF: a blank line, then an empty body line", in: "A: 1\n\r\r\nb\n", fields: []string{"A: 1\n"}, sep: "\r", body: "\r\nb\n"},
		{name: "CRLF split by the buffer", in: "X: " + strings.Repeat("a", readBufSize-4) + "\r\nY: 2\n\nb\n",
			fields: []string{"X: " + strings.Repeat("a", readBufSize-4) + "\r\n", "Y: 2\n"}, sep: "\n", body: "b\n"},
		{name: "lone CR at the buffer's end", in: "X: " + strings.Repeat("a", readBufSize-4) + "\rY: 2\n\nb\n",
			fields: []string{"X: " + strings.Repeat("a", readBufSize-4) + "\r", "Y: 2\n"}, sep: "\n", body: "b\n"},
		{name: "blank CRLF line after a long line", in: "X: " + strings.Repeat("a", readBufSize-5) + "\n\r\nb\n",
			fields: []string{"X: " + strings.Repeat("a", readBufSize-5) + "\n"}, sep: "\r\n", body: "b\n"},
		{name: "lone dot ends the body", in: "A: 1\n\nb\n.\nafter\n", fields: []string{"A: 1\n"}, sep: "\n", body: "b\n",
			stats: IntakeStats{LoneDot: true}},
		{name: "lone dot CRLF", in: "A: 1\r\n\r\nb\r\n.\r\nafter\r\n", fields: []string{"A: 1\r\n"}, sep: "\r\n", body: "b\r\n",
			stats: IntakeStats{LoneDot: true}},
		{name: "lone dot in the header block", in: "A: 1\n.\nB: 2\n\nbody\n", fields: []string{"A: 1\n"}, sep: "<nil>",
			stats: IntakeStats{LoneDot: true}},
		{name: "lone dot first", in: ".\nA: 1\n", sep: "<nil>", stats: IntakeStats{LoneDot: true}},
		{name: "dot at EOF without newline is text", in: "A: 1\n\nb\n.", fields: []string{"A: 1\n"}, sep: "\n", body: "b\n."},
		{name: "dot space is text", in: "\n. \n.x\n", sep: "\n", body: ". \n.x\n"},
		{name: "un-stuffing", in: "\n..\n...\n..x\nx..\n", sep: "\n", body: ".\n..\n.x\nx..\n"},
		{name: "un-stuffing in header", in: "..X: 1\n\n", fields: []string{".X: 1\n"}, sep: "\n"},
		{name: "-i keeps dots", in: "\n.\n..\n", ignoreDots: true, sep: "\n", body: ".\n..\n"},
		{name: "-i keeps dot in header block", in: "A: 1\n.\n", ignoreDots: true, fields: []string{"A: 1\n"}, sep: "<nil>", body: ".\n"},
		{name: "NUL passes", in: "A: \x00\n\nb\x00\n", ignoreDots: true, fields: []string{"A: \x00\n"}, sep: "\n", body: "b\x00\n",
			stats: IntakeStats{HasNUL: true}},
		{name: "invalid UTF-8 passes", in: "S: \xff\xfe\n\n\xc3\x28\n", fields: []string{"S: \xff\xfe\n"}, sep: "\n", body: "\xc3\x28\n",
			stats: IntakeStats{EightBit: true}},
		{name: "8-bit only in header", in: "S: Grüße\n\nascii\n", fields: []string{"S: Grüße\n"}, sep: "\n", body: "ascii\n",
			stats: IntakeStats{EightBit: true}},
		{name: "8-bit after lone dot not counted", in: "\nascii\n.\nGrüße\n", sep: "\n", body: "ascii\n",
			stats: IntakeStats{LoneDot: true}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// Every case also arrives one byte at a time.
			for _, oneByte := range []bool{false, true} {
				var r io.Reader = strings.NewReader(tt.in)
				if oneByte {
					r = iotest.OneByteReader(r)
				}
				var body bytes.Buffer
				h, st, err := ReadMessage(r, IntakeOptions{IgnoreDots: tt.ignoreDots}, &body)
				if err != nil {
					t.Fatal(err)
				}
				var raw []string
				for _, f := range h.Fields {
					raw = append(raw, string(f.Raw))
				}
				if !reflect.DeepEqual(raw, tt.fields) {
					t.Errorf("fields %q; want %q", raw, tt.fields)
				}
				sep := "<nil>"
				if h.Separator != nil {
					sep = string(h.Separator)
				}
				if sep != tt.sep {
					t.Errorf("separator %q; want %q", sep, tt.sep)
				}
				if body.String() != tt.body {
					t.Errorf("body %q; want %q", body.String(), tt.body)
				}
				want := tt.stats
				want.HeaderBytes = int64(len(strings.Join(tt.fields, "")))
				if tt.sep != "<nil>" {
					want.HeaderBytes += int64(len(tt.sep))
				}
				want.BodyBytes = int64(len(tt.body))
				if st != want {
					t.Errorf("stats %+v; want %+v", st, want)
				}
			}
		})
	}
}

// countingReader records how much was read and whether EOF was reached.
type countingReader struct {
	r   io.Reader
	n   int64
	eof bool
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	if err == io.EOF {
		c.eof = true
	}
	return n, err
}

// patternReader yields size octets of line, repeated, without holding them.
type patternReader struct {
	line []byte
	left int64
	off  int
}

func (p *patternReader) Read(b []byte) (int, error) {
	if p.left <= 0 {
		return 0, io.EOF
	}
	n := 0
	for n < len(b) && p.left > 0 {
		c := copy(b[n:], p.line[p.off:])
		if int64(c) > p.left {
			c = int(p.left)
		}
		n += c
		p.left -= int64(c)
		p.off = (p.off + c) % len(p.line)
	}
	return n, nil
}

func TestReadMessageHeaderTooLarge(t *testing.T) {
	tests := []struct {
		name  string
		max   int
		input func() io.Reader
		size  int64
		msg   string
	}{
		{name: "8 MB of header fields", input: func() io.Reader {
			return &patternReader{line: []byte("X-Filler: 0123456789012345678901234567890123456789\n"), left: 8 << 20}
		}, size: 8 << 20, msg: "message header block exceeds 1 MiB"},
		{name: "one 8 MB header line", input: func() io.Reader {
			return io.MultiReader(strings.NewReader("Subject: "), &patternReader{line: []byte("x"), left: 8 << 20})
		}, size: 8<<20 + 9, msg: "message header block exceeds 1 MiB"},
		{name: "one 8 MB folded field", input: func() io.Reader {
			return io.MultiReader(strings.NewReader("To: a@x,\n"), &patternReader{line: []byte(" b@x,\n"), left: 8 << 20})
		}, size: 8<<20 + 9, msg: "message header block exceeds 1 MiB"},
		{name: "small limit", max: 100, input: func() io.Reader {
			return strings.NewReader(strings.Repeat("A: b\n", 30) + "\nbody\n.\nmore\n")
		}, size: 30*5 + 13, msg: "message header block exceeds 100 octets"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cr := &countingReader{r: tt.input()}
			var body bytes.Buffer
			h, _, err := ReadMessage(cr, IntakeOptions{MaxHeaderBytes: tt.max}, &body)
			if !errors.Is(err, ErrData) || err.Error() != tt.msg {
				t.Fatalf("error %v; want %q wrapping ErrData", err, tt.msg)
			}
			if h != nil {
				t.Errorf("header %v with an error", h)
			}
			if !cr.eof || cr.n != tt.size {
				t.Errorf("read %d octets (EOF %v); want all %d", cr.n, cr.eof, tt.size)
			}
		})
	}
}

// TestReadMessageDrains checks that input after a lone dot is read to
// EOF and thrown away, so that the writer never gets SIGPIPE.
func TestReadMessageDrains(t *testing.T) {
	in := "A: 1\n\nbody\n.\n" + strings.Repeat("discarded line\n", 100000)
	cr := &countingReader{r: strings.NewReader(in)}
	var body bytes.Buffer
	_, st, err := ReadMessage(cr, IntakeOptions{}, &body)
	if err != nil {
		t.Fatal(err)
	}
	if !cr.eof || cr.n != int64(len(in)) || !st.LoneDot || body.String() != "body\n" {
		t.Errorf("read %d of %d (EOF %v), stats %+v, body %q", cr.n, len(in), cr.eof, st, body.String())
	}
}

// failWriter fails every write.
type failWriter struct{ n int }

func (w *failWriter) Write(p []byte) (int, error) {
	w.n++
	return 0, errors.New("disk full")
}

func TestReadMessageErrors(t *testing.T) {
	// A body that cannot be stored: the error says so, and stdin is still
	// read to its end.
	in := "A: 1\n\n" + strings.Repeat("line\n", 50000)
	cr := &countingReader{r: strings.NewReader(in)}
	w := &failWriter{}
	_, _, err := ReadMessage(cr, IntakeOptions{IgnoreDots: true}, w)
	if err == nil || errors.Is(err, ErrData) || err.Error() != "storing message body: disk full" {
		t.Errorf("error %v; want a storing error", err)
	}
	if !cr.eof || w.n != 1 {
		t.Errorf("EOF %v, %d writes; want EOF and one write", cr.eof, w.n)
	}

	// A read error is reported with context.
	r := io.MultiReader(strings.NewReader("A: 1\n\nb"), iotest.ErrReader(errors.New("connection reset")))
	_, _, err = ReadMessage(r, IntakeOptions{}, io.Discard)
	if err == nil || err.Error() != "reading message: connection reset" {
		t.Errorf("error %v; want a reading error", err)
	}
	r = io.MultiReader(strings.NewReader("A: 1\n\nb\n.\n"), iotest.ErrReader(errors.New("connection reset")))
	_, _, err = ReadMessage(r, IntakeOptions{}, io.Discard)
	if err == nil || err.Error() != "reading message: connection reset" {
		t.Errorf("error %v after a lone dot; want a reading error", err)
	}
}

// limitWriter fails when more than max octets arrive in one Write, which
// would mean a line was buffered whole.
type limitWriter struct {
	max, total, writes int
}

func (w *limitWriter) Write(p []byte) (int, error) {
	if len(p) > w.max {
		return 0, errors.New("write too large")
	}
	w.total += len(p)
	w.writes++
	return len(p), nil
}

func TestReadMessageLongLines(t *testing.T) {
	const lineLen = copyBufSize + 10<<10
	long := strings.Repeat("y", lineLen)
	for _, ignoreDots := range []bool{false, true} {
		// Body lines longer than any buffer, one starting with "..":
		// streamed in pieces no larger than the read buffer (with -i, the
		// copy buffer), the stuffing still undone.
		in := "Subject: long\n\n" + long + "\n.." + long + "\n" + long
		w := &limitWriter{max: readBufSize}
		if ignoreDots {
			w.max = copyBufSize
		}
		_, st, err := ReadMessage(iotest.HalfReader(strings.NewReader(in)), IntakeOptions{IgnoreDots: ignoreDots}, w)
		if err != nil {
			t.Fatal(err)
		}
		want := 3*lineLen + 3 // two LFs and the dot that stays
		if ignoreDots {
			want++
		}
		if w.total != want || st.BodyBytes != int64(want) || w.writes < 6 {
			t.Errorf("ignoreDots %v: body %d octets in %d writes (stats %d); want %d", ignoreDots, w.total, w.writes, st.BodyBytes, want)
		}
	}

	// A long header line is kept whole; a body with no header whose first
	// line is long is streamed.
	in := "Subject: " + long + "\n\nb\n"
	h, _, err := ReadMessage(strings.NewReader(in), IntakeOptions{}, io.Discard)
	if err != nil || len(h.Fields) != 1 || len(h.Fields[0].Raw) != 9+lineLen+1 {
		t.Fatalf("long header line: %v", err)
	}
	w := &limitWriter{max: readBufSize}
	h, _, err = ReadMessage(strings.NewReader(long+long+"\n"), IntakeOptions{}, w)
	if err != nil || len(h.Fields) != 0 || w.total != 2*lineLen+1 {
		t.Fatalf("long first line: %v, %d fields, %d octets", err, len(h.Fields), w.total)
	}
	// A long mbox From_ line is dropped whole.
	var body bytes.Buffer
	h, st, err := ReadMessage(strings.NewReader("From "+long+"\nA: 1\n\nb\n"), IntakeOptions{}, &body)
	if err != nil || len(h.Fields) != 1 || body.String() != "b\n" || st.HeaderBytes != 6 {
		t.Fatalf("long From_ line: %v, %v, %q", err, fieldNames(h), body.String())
	}
}

// TestReadMessageMemory checks that memory does not grow with the body.
func TestReadMessageMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("reads 64 MB")
	}
	r := io.MultiReader(strings.NewReader("A: 1\n\n"), &patternReader{line: []byte(strings.Repeat("z", 1000) + "\n"), left: 64 << 20})
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	_, st, err := ReadMessage(r, IntakeOptions{}, io.Discard)
	runtime.ReadMemStats(&after)
	if err != nil || st.BodyBytes != 64<<20 {
		t.Fatalf("%v, %+v", err, st)
	}
	if n := after.TotalAlloc - before.TotalAlloc; n > 1<<20 {
		t.Errorf("%d octets allocated for a 64 MB body", n)
	}
}

func FuzzReadMessage(f *testing.F) {
	f.Add([]byte("From x\nA: 1\n b\n\nbody\n.\n..x\n"), true)
	f.Add([]byte("A: 1\r\n\r\nb\r\n.\r\n"), false)
	f.Add([]byte("no header\n"), false)
	f.Add([]byte(".\n"), false)
	f.Add([]byte("X: \x00\xff\n\r\n"), true)
	f.Add([]byte("From \n"), true)
	for _, name := range []string{"php-002.eml", "ruby-mail-001.eml", "mutt-001.eml"} {
		b, err := os.ReadFile(filepath.Join("testdata", "intake", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, false)
	}
	f.Fuzz(func(t *testing.T, in []byte, ignoreDots bool) {
		var body bytes.Buffer
		h, st, err := ReadMessage(bytes.NewReader(in), IntakeOptions{IgnoreDots: ignoreDots, MaxHeaderBytes: 4096}, &body)
		if err != nil {
			if !errors.Is(err, ErrData) {
				t.Fatalf("error %v", err)
			}
			return
		}
		if body.Len() > len(in) || st.BodyBytes != int64(body.Len()) || st.HeaderBytes != h.Len()-int64(missingLFs(h)) {
			t.Fatalf("stats %+v, body %d, header %d, input %d", st, body.Len(), h.Len(), len(in))
		}
		dropped := 0
		if bytes.HasPrefix(in, []byte("From ")) {
			dropped = len(in)
			if i := bytes.IndexByte(in, '\n'); i >= 0 {
				dropped = i + 1
			}
		}
		if ignoreDots {
			if st.HeaderBytes+st.BodyBytes != int64(len(in)-dropped) || st.LoneDot {
				t.Fatalf("-i: header %d + body %d != %d - %d", st.HeaderBytes, st.BodyBytes, len(in), dropped)
			}
			// Nothing is lost or reordered: header then body is the input.
			var out bytes.Buffer
			for _, f := range h.Fields {
				out.Write(f.Raw)
			}
			out.Write(h.Separator)
			out.Write(body.Bytes())
			if !bytes.Equal(out.Bytes(), in[dropped:]) {
				t.Fatalf("-i: output %q != input %q", out.Bytes(), in[dropped:])
			}
		}
		for _, f := range h.Fields {
			if f.Name == "" || !bytes.HasPrefix(f.Raw, []byte(f.Name)) {
				t.Fatalf("field %q named %q", f.Raw, f.Name)
			}
		}
		// Rewriting whatever was read gives a header block that reads
		// back as the same fields, without Bcc:, with Date/Message-ID/From.
		HeaderRecipients(h)
		Rewrite(h, RewriteOptions{Domain: "d.example", Hostname: "h.example", Sender: "s@d.example",
			FullName: "N", RewriteFrom: true, Now: testNow, MessageID: "m"})
		var out bytes.Buffer
		h.WriteTo(&out)
		if bytes.HasPrefix(out.Bytes(), []byte("From ")) {
			return // "From :" (obsolete syntax) moved to the top would read as an mbox line
		}
		again, _, err := ReadMessage(&out, IntakeOptions{IgnoreDots: true}, io.Discard)
		if err != nil || len(again.Fields) != len(h.Fields) || again.Has("Bcc") || again.Has("Resent-Bcc") ||
			!again.Has("Date") || !again.Has("Message-ID") || !again.Has("From") {
			t.Fatalf("rewritten header %q reads back as %q, %v", out.Bytes(), fieldNames(again), err)
		}
	})
}

// missingLFs counts the fields WriteTo completes with a LF.
func missingLFs(h *Header) int {
	n := 0
	for _, f := range h.Fields {
		if needsLF(f.Raw) {
			n++
		}
	}
	if h.Separator == nil {
		n++
	}
	return n
}
