package peers

import (
	"bytes"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// peer is one running smarthost as the shared cases see it.
type peer struct {
	name string
	// port takes submission: STARTTLS, then AUTH required to relay.
	port int
	// ca is the PEM file that verifies the peer's certificate.
	ca         string
	user, pass string
	// mechs are the AUTH mechanisms the peer offers after STARTTLS.
	mechs []string
	// refused is a recipient the peer refuses with a 5xx at RCPT.
	refused string
	// sizeLimit is the peer's message size limit in octets.
	sizeLimit int64
	// dsn and smtputf8 say whether the peer offers those extensions.
	dsn, smtputf8 bool
	// received waits until the messages carrying tag reached n recipients
	// in all, and returns them; what the peer added in front is removed.
	received func(t *testing.T, tag string, n int) []delivered
}

// delivered is one message as the peer passed it on.
type delivered struct {
	from string
	to   []string
	// notify and ret are the DSN parameters that reached the next hop.
	notify []string
	ret    string
	data   []byte
}

// peerCase is one row of the table every peer runs.
type peerCase struct {
	name string
	// needs returns why the case cannot run against p, or "".
	needs func(p *peer) string
	// auth is the config's auth key ("" = auto); password overrides the
	// peer's password.
	auth, password string
	args           []string
	// message builds the input; tag is in its Subject.
	message func(tag string) []byte
	// want is the exit status; rcpts the recipients that must receive it
	// (none: nothing may arrive).
	want  int
	rcpts []string
	// body returns the octets the peer must pass on, given the input;
	// nil means the input with every line end made CRLF.
	body func(in []byte) []byte
	// check, when set, looks at the run and the delivered messages.
	check func(t *testing.T, p *peer, r result, got []delivered)
}

// header is the header block of every case's message: complete, so
// relaymail adds no field and the peer must pass on exactly these bytes.
func header(tag, to string, extra ...string) string {
	return "From: Peers Test <sender@example.com>\n" +
		"To: " + to + "\n" +
		"Subject: peers " + tag + "\n" +
		"Date: Mon, 07 Dec 2026 10:00:00 +0000\n" +
		"Message-ID: <" + tag + "@relaymail.test>\n" +
		"MIME-Version: 1.0\n" +
		"Content-Type: text/plain; charset=utf-8\n" +
		"Content-Transfer-Encoding: 8bit\n" +
		strings.Join(extra, "") + "\n"
}

// crlf makes every line end CR LF, as relaymail sends it.
func crlf(in []byte) []byte {
	in = bytes.ReplaceAll(in, []byte("\r\n"), []byte("\n"))
	return bytes.ReplaceAll(in, []byte("\n"), []byte("\r\n"))
}

// bigBody is n octets of lines 76 long, a line number in each.
func bigBody(n int) []byte {
	var b bytes.Buffer
	b.Grow(n + 100)
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "%08d %s\n", i, strings.Repeat("abcdefghij", 6)+"klmnopq")
	}
	out := b.Bytes()[:n]
	out[n-1] = '\n'
	return out
}

// utf8Rcpt is the SMTPUTF8 case's recipient, in utf8Domain.
const (
	utf8Domain = "例子.example"
	utf8Rcpt   = "用户@" + utf8Domain
)

var manyRcpts = func() []string {
	var r []string
	for i := range 50 {
		r = append(r, fmt.Sprintf("r%02d@example.org", i))
	}
	return r
}()

// cases is the table every peer runs. A case names what it proves.
var cases = []peerCase{
	{
		name: "-t -i", args: []string{"-t", "-i"},
		message: func(tag string) []byte {
			return []byte(header(tag, "Ann <ann@example.org>, bob@example.org") + "Hello.\n.\nStill here.\n")
		},
		rcpts: []string{"ann@example.org", "bob@example.org"},
	},
	{
		name: "PHP CRLF/LF mix", args: []string{"-t", "-i"},
		message: func(tag string) []byte {
			return []byte(strings.ReplaceAll(header(tag, "ann@example.org"), "\n", "\r\n") +
				"line one\r\nline two\nline three\r\n\r\nend\n")
		},
		rcpts: []string{"ann@example.org"},
	},
	{
		name: "8-bit body", args: []string{"-i", "ann@example.org"},
		message: func(tag string) []byte {
			return []byte(header(tag, "ann@example.org") + "Grüße aus Köln, 東京, ½ €\n\xe9t\xe9 (latin-1 bytes)\n")
		},
		rcpts: []string{"ann@example.org"},
	},
	{
		name: "SMTPUTF8 recipient", args: []string{"-i", utf8Rcpt},
		needs: func(p *peer) string {
			if !p.smtputf8 {
				return "the peer does not offer SMTPUTF8"
			}
			return ""
		},
		message: func(tag string) []byte {
			return []byte(header(tag, utf8Rcpt) + "utf-8 address\n")
		},
		rcpts: []string{utf8Rcpt},
	},
	{
		name: "20 MB", args: []string{"-i", "ann@example.org"},
		needs: func(p *peer) string {
			if p.sizeLimit < 21<<20 {
				return fmt.Sprintf("the peer's size limit %d is under 21 MiB", p.sizeLimit)
			}
			return ""
		},
		message: func(tag string) []byte {
			return append([]byte(header(tag, "ann@example.org")), bigBody(20<<20)...)
		},
		rcpts: []string{"ann@example.org"},
	},
	{
		name: "50 recipients", args: append([]string{"-i"}, manyRcpts...),
		message: func(tag string) []byte {
			return []byte(header(tag, "undisclosed-recipients:;") + "to fifty\n")
		},
		rcpts: manyRcpts,
	},
	{
		name: "leading dots", args: []string{"-i", "ann@example.org"},
		message: func(tag string) []byte {
			return []byte(header(tag, "ann@example.org") + ".\n..\n.x\n..y\n. \nend\n.")
		},
		// The last line had no line end: relaymail adds one.
		body:  func(in []byte) []byte { return append(crlf(in), '\r', '\n') },
		rcpts: []string{"ann@example.org"},
	},
	authCase("plain"), authCase("login"), authCase("cram-md5"),
	{
		name: "DSN", args: []string{"-i", "-N", "success,failure", "-R", "hdrs", "-V", "env1", "ann@example.org"},
		needs: func(p *peer) string {
			if !p.dsn {
				return "the peer does not offer DSN"
			}
			return ""
		},
		message: func(tag string) []byte { return []byte(header(tag, "ann@example.org") + "dsn\n") },
		rcpts:   []string{"ann@example.org"},
		check: func(t *testing.T, p *peer, r result, got []delivered) {
			if len(got) == 0 {
				return
			}
			if n := strings.Join(got[0].notify, ","); !strings.EqualFold(n, "SUCCESS,FAILURE") {
				t.Errorf("NOTIFY at the next hop = %q, want SUCCESS,FAILURE", n)
			}
		},
	},
	{
		name: "wrong password", password: "not-the-password", args: []string{"-i", "ann@example.org"},
		message: func(tag string) []byte { return []byte(header(tag, "ann@example.org") + "x\n") },
		// Queued (mode = "fallback"): a refused login may be fixed in the
		// config; the log names the server's 535.
		want: 0,
		check: func(t *testing.T, p *peer, r result, got []delivered) {
			log := readLog(t, r)
			if !regexp.MustCompile(`status=(deferred|queued)`).MatchString(log) || !strings.Contains(log, "code=535") {
				t.Errorf("log does not record the 535 and the queued message:\n%s", log)
			}
			if strings.Contains(log+r.stderr, "not-the-password") {
				t.Errorf("the password leaked into the log or stderr")
			}
		},
	},
	{
		name: "one refused recipient", args: []string{"-i", "ann@example.org", "REFUSED"},
		message: func(tag string) []byte { return []byte(header(tag, "ann@example.org") + "one refused\n") },
		want:    67, rcpts: []string{"ann@example.org"},
		check: func(t *testing.T, p *peer, r result, got []delivered) {
			if !strings.Contains(r.stderr, p.refused) {
				t.Errorf("stderr does not name %s: %q", p.refused, r.stderr)
			}
		},
	},
	{
		name: "over the size limit", args: []string{"-i", "ann@example.org"},
		message: func(tag string) []byte {
			return append([]byte(header(tag, "ann@example.org")), bigBody(23<<20)...)
		},
		needs: func(p *peer) string {
			if p.sizeLimit >= 23<<20 {
				return "the peer's size limit is over 23 MiB"
			}
			return ""
		},
		want: 69,
		check: func(t *testing.T, p *peer, r result, got []delivered) {
			// Refused before the data is sent: by relaymail from the
			// peer's SIZE, or by the peer's 552.
			if !strings.Contains(r.stderr, fmt.Sprint(p.sizeLimit)) && !strings.Contains(r.stderr, "552") {
				t.Errorf("stderr names neither the peer's limit %d nor its 552: %q", p.sizeLimit, r.stderr)
			}
		},
	},
	{
		name: "--check", args: []string{"--check"},
		check: func(t *testing.T, p *peer, r result, got []delivered) {
			if !strings.Contains(r.stdout+r.stderr, "TLS") || !strings.Contains(r.stdout+r.stderr, "AUTH") {
				t.Errorf("--check shows neither TLS nor AUTH:\n%s%s", r.stdout, r.stderr)
			}
		},
	},
}

func authCase(mech string) peerCase {
	return peerCase{
		name: "AUTH " + strings.ToUpper(mech), auth: mech, args: []string{"-i", "ann@example.org"},
		needs: func(p *peer) string {
			if !slices.Contains(p.mechs, strings.ToUpper(mech)) {
				return "the peer does not offer " + strings.ToUpper(mech)
			}
			return ""
		},
		message: func(tag string) []byte { return []byte(header(tag, "ann@example.org") + "auth " + mech + "\n") },
		rcpts:   []string{"ann@example.org"},
	}
}

// conn is how relaymail reaches a peer, where a case differs from the
// peer's submission port with STARTTLS.
type conn struct {
	tls            string
	port           int
	auth, password string
}

// configFor writes relaymail's config for p into dir.
func configFor(t *testing.T, p *peer, dir string, c conn) string {
	t.Helper()
	if c.auth == "" {
		c.auth = "auto"
	}
	if c.password == "" {
		c.password = p.pass
	}
	if c.tls == "" {
		c.tls = "starttls"
	}
	if c.port == 0 {
		c.port = p.port
	}
	cfg := fmt.Sprintf(`hostname = "relaymail.test"
domain = "example.com"
log = %q

[smarthost]
host = "127.0.0.1"
port = %d
tls = %q
ca_file = %q
username = %q
password = %q
auth = %q
timeout = "60s"
data_timeout = "5m"

[queue]
dir = %q
`, filepath.Join(dir, "relaymail.log"), c.port, c.tls, p.ca, p.user, c.password, c.auth, filepath.Join(dir, "spool"))
	name := filepath.Join(dir, "relaymail.toml")
	writeFile(t, name, []byte(cfg), 0o600)
	return name
}

func readLog(t *testing.T, r result) string {
	t.Helper()
	b, _ := os.ReadFile(r.logFile)
	return string(b)
}

// runCases runs the table against p and logs the table of outcomes.
func runCases(t *testing.T, p *peer) {
	var table []string
	for i, c := range cases {
		tag := fmt.Sprintf("%s-%02d-%d", strings.ToLower(p.name), i, time.Now().UnixNano())
		outcome := "pass"
		ok := t.Run(c.name, func(t *testing.T) {
			if c.needs != nil {
				if why := c.needs(p); why != "" {
					outcome = "skip: " + why
					t.Skip(why)
				}
			}
			dir := t.TempDir()
			config := configFor(t, p, dir, conn{auth: c.auth, password: c.password})
			var in []byte
			if c.message != nil {
				in = c.message(tag)
			}
			args := slices.Clone(c.args)
			for i, a := range args {
				if a == "REFUSED" {
					args[i] = p.refused
				}
			}
			r := relaymail(t, config, in, args...)
			r.logFile = filepath.Join(dir, "relaymail.log")
			if r.code != c.want {
				t.Errorf("exit %d, want %d; stderr: %s\nlog: %s", r.code, c.want, r.stderr, readLog(t, r))
			}
			var got []delivered
			if len(c.rcpts) > 0 {
				got = p.received(t, tag, len(c.rcpts))
				var to []string
				for _, d := range got {
					to = append(to, d.to...)
				}
				slices.Sort(to)
				want := slices.Sorted(slices.Values(c.rcpts))
				if !slices.Equal(to, want) {
					t.Errorf("delivered to %q, want %q", to, want)
				}
				expect := crlf(in)
				if c.body != nil {
					expect = c.body(in)
				}
				for _, d := range got {
					if !bytes.Equal(d.data, expect) {
						t.Errorf("%s delivered %d octets (sha256 %x), want the %d relaymail sent (sha256 %x)%s",
							p.name, len(d.data), sha256.Sum256(d.data), len(expect), sha256.Sum256(expect), firstDiff(d.data, expect))
					}
				}
			}
			if c.check != nil {
				c.check(t, p, r, got)
			}
		})
		if !ok {
			outcome = "FAIL"
		}
		table = append(table, fmt.Sprintf("  %-22s %s", c.name, outcome))
	}
	t.Logf("%s case table:\n%s", p.name, strings.Join(table, "\n"))
}

// firstDiff shows where two messages part, for a failure message.
func firstDiff(got, want []byte) string {
	n := min(len(got), len(want))
	i := 0
	for i < n && got[i] == want[i] {
		i++
	}
	lo := max(0, i-40)
	return fmt.Sprintf("; first difference at octet %d: got %q, want %q", i,
		got[lo:min(len(got), i+40)], want[lo:min(len(want), i+40)])
}
