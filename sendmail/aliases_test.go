package sendmail

import (
	"errors"
	"fmt"
	"io"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"
)

// debianAliases is the /etc/aliases Debian installs, plus the root line an
// administrator adds.
const debianAliases = `# /etc/aliases
mailer-daemon: postmaster
postmaster: root
nobody: root
hostmaster: root
usenet: root
news: root
webmaster: root
www: root
ftp: root
abuse: root
noc: root
security: root
root: admin@example.com
`

func TestParseAliases(t *testing.T) {
	tests := []struct {
		name     string
		in       string
		want     map[string][]string
		warnings []string
	}{
		{
			name: "debian default",
			in:   debianAliases,
			want: map[string][]string{
				"mailer-daemon": {"postmaster"}, "postmaster": {"root"}, "nobody": {"root"},
				"hostmaster": {"root"}, "usenet": {"root"}, "news": {"root"}, "webmaster": {"root"},
				"www": {"root"}, "ftp": {"root"}, "abuse": {"root"}, "noc": {"root"},
				"security": {"root"}, "root": {"admin@example.com"},
			},
		},
		{
			name: "empty input",
			in:   "",
			want: map[string][]string{},
		},
		{
			name: "lists, spaces and a trailing comma",
			in:   "ops:a@x,b@y ,  c@z,\nteam :\tops, dev ,\n",
			want: map[string][]string{"ops": {"a@x", "b@y", "c@z"}, "team": {"ops", "dev"}},
		},
		{
			name: "continuation lines",
			in:   "staff: a@x,\n  b@y,\n\tc@z\nother: d@x\n",
			want: map[string][]string{"staff": {"a@x", "b@y", "c@z"}, "other": {"d@x"}},
		},
		{
			name: "continuation without a comma",
			in:   "staff: a@x\n  b@y\n",
			want: map[string][]string{},
			warnings: []string{
				`aliases:1: staff: target "a@x b@y" is not an address, skipped`,
			},
		},
		{
			name: "comments and blank lines do not end an entry",
			in:   "# head\n\nstaff: a@x,\n# in the middle\n\n   # indented comment\n  b@y\n",
			want: map[string][]string{"staff": {"a@x", "b@y"}},
		},
		{
			name: "CRLF file",
			in:   "root: admin@x\r\nops: a@x,\r\n b@y\r\n",
			want: map[string][]string{"root": {"admin@x"}, "ops": {"a@x", "b@y"}},
		},
		{
			name: "no final newline",
			in:   "root: admin@x",
			want: map[string][]string{"root": {"admin@x"}},
		},
		{
			name: "names are case-insensitive",
			in:   "Root: admin@x\nPOSTMASTER: Root\n",
			want: map[string][]string{"root": {"admin@x"}, "postmaster": {"Root"}},
		},
		{
			name: "quoted targets and names",
			in:   "a: \"b@x\", \"Some One <c@x>\"\n\"Odd-Name\": d@x\nq: \"john doe\"@x\n",
			want: map[string][]string{"a": {"b@x", "c@x"}, "odd-name": {"d@x"}, "q": {`"john doe"@x`}},
		},
		{
			name: "display names and comments",
			in:   "a: Admin <admin@x>, \"Ops, Team\" <ops@x>, b@x (the boss)\n",
			want: map[string][]string{"a": {"admin@x", "ops@x", "b@x"}},
		},
		{
			name: "backslash target kept for Expand",
			in:   "root: \\root, admin@x\n",
			want: map[string][]string{"root": {`\root`, "admin@x"}},
		},
		{
			name: "unsupported targets",
			in: "list: :include:/etc/mail/list, |/usr/bin/procmail, /var/mail/archive, a@x\n" +
				"prog: \"|/usr/bin/vacation -a me\"\n" +
				"inc: :INCLUDE:/x\n",
			want: map[string][]string{"list": {"a@x"}},
			warnings: []string{
				`aliases:1: list: include target ":include:/etc/mail/list" is not supported by a relay, skipped`,
				`aliases:1: list: program target "|/usr/bin/procmail" is not supported by a relay, skipped`,
				`aliases:1: list: file target "/var/mail/archive" is not supported by a relay, skipped`,
				`aliases:2: prog: program target "|/usr/bin/vacation -a me" is not supported by a relay, skipped`,
				`aliases:3: inc: include target ":INCLUDE:/x" is not supported by a relay, skipped`,
			},
		},
		{
			name: "bad lines are warnings",
			in: "  orphan continuation\n" +
				"no colon here\n" +
				": nameless\n" +
				"two words: a@x\n" +
				"user@host: a@x\n" +
				"empty:\n" +
				"root: first@x\n" +
				"ROOT: second@x\n" +
				"bad: not an address, ok@x\n" +
				"slash: \\, \\a@b\n",
			want: map[string][]string{"root": {"first@x"}, "bad": {"ok@x"}},
			warnings: []string{
				`aliases:1: continuation line without an entry before it, skipped`,
				`aliases:2: no colon after the alias name, skipped`,
				`aliases:3: empty alias name, skipped`,
				`aliases:4: alias name "two words" is not a local name, skipped`,
				`aliases:5: alias name "user@host" is not a local name, skipped`,
				`aliases:6: empty: no targets, skipped`,
				`aliases:8: duplicate alias "root", the one at line 7 is kept`,
				`aliases:9: bad: target "not an address" is not an address, skipped`,
				`aliases:10: slash: target "\\" is not a local name, skipped`,
				`aliases:10: slash: target "\\a@b" is not a local name, skipped`,
			},
		},
		{
			name: "line too long",
			in:   "big: " + strings.Repeat("a", aliasMaxLine+10) + "@x\nsmall: s@x\n",
			want: map[string][]string{"small": {"s@x"}},
			warnings: []string{
				fmt.Sprintf("aliases:1: entry longer than %d bytes, skipped", aliasMaxLine),
			},
		},
		{
			name: "entry too long through continuations",
			in: "big: a@x,\n" + strings.Repeat(" "+strings.Repeat("b", 1000)+"@x,\n", 70) +
				"small: s@x\n",
			want: map[string][]string{"small": {"s@x"}},
			warnings: []string{
				fmt.Sprintf("aliases:1: entry longer than %d bytes, skipped", aliasMaxLine),
			},
		},
		{
			name: "control characters",
			in:   "a: b\x01@x, c@x\n",
			want: map[string][]string{"a": {"c@x"}},
			warnings: []string{
				`aliases:1: a: target "b\x01@x" contains a control character, skipped`,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, warnings, err := ParseAliases(strings.NewReader(tt.in), "aliases")
			if err != nil {
				t.Fatalf("ParseAliases: %v", err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("table\n got %q\nwant %q", got, tt.want)
			}
			if !reflect.DeepEqual(warnings, tt.warnings) {
				t.Errorf("warnings\n got %q\nwant %q", warnings, tt.warnings)
			}
		})
	}
}

func TestParseAliasesWarningsAreCapped(t *testing.T) {
	in := strings.Repeat("no colon\n", aliasMaxWarnings+50)
	_, warnings, err := ParseAliases(strings.NewReader(in), "f")
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != aliasMaxWarnings+1 {
		t.Fatalf("got %d warnings, want %d", len(warnings), aliasMaxWarnings+1)
	}
	if last := warnings[len(warnings)-1]; last != "f: 50 more warnings not shown" {
		t.Errorf("last warning %q", last)
	}
}

func TestParseAliasesIOError(t *testing.T) {
	boom := errors.New("boom")
	r := io.MultiReader(strings.NewReader("root: admin@x\nops: a@x,\n"), iotest.ErrReader(boom))
	got, _, err := ParseAliases(r, "/etc/aliases")
	if !errors.Is(err, boom) {
		t.Fatalf("err = %v, want it to wrap boom", err)
	}
	if want := "aliases: /etc/aliases: line 3: boom"; err.Error() != want {
		t.Errorf("error text %q, want %q", err.Error(), want)
	}
	want := map[string][]string{"root": {"admin@x"}, "ops": {"a@x"}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("entries before the error: got %q, want %q", got, want)
	}
}

func TestExpand(t *testing.T) {
	debian, warnings, err := ParseAliases(strings.NewReader(debianAliases), "debian")
	if err != nil || warnings != nil {
		t.Fatalf("ParseAliases: %v %q", err, warnings)
	}
	chain := map[string][]string{}
	for i := range 30 {
		chain[fmt.Sprintf("n%d", i)] = []string{fmt.Sprintf("n%d", i+1)}
	}
	tests := []struct {
		name   string
		config map[string][]string
		file   map[string][]string
		in     string
		want   []string
	}{
		{"no aliases", nil, nil, "root", []string{"root"}},
		{"address passes", nil, nil, "a@x", []string{"a@x"}},
		{"empty name", nil, nil, "", nil},
		{"debian chain", nil, debian, "mailer-daemon", []string{"admin@example.com"}},
		{"debian case-insensitive", nil, debian, "PostMaster", []string{"admin@example.com"}},
		{"debian unknown user", nil, debian, "www-data", []string{"www-data"}},
		{"list", nil, map[string][]string{"ops": {"a@x", "b@y", "dev"}}, "ops", []string{"a@x", "b@y", "dev"}},
		{"nested lists keep order", nil, map[string][]string{
			"all": {"ops", "z@x", "dev"}, "ops": {"a@x", "b@x"}, "dev": {"c@x", "a@x"},
		}, "all", []string{"a@x", "b@x", "z@x", "c@x"}},
		{"de-duplicated without regard to case", nil, map[string][]string{
			"ops": {"A@X", "a@x", "bob", "Bob"},
		}, "ops", []string{"A@X", "bob"}},
		{"self-reference", nil, map[string][]string{"root": {"root", "admin@x"}}, "root", []string{"root", "admin@x"}},
		{"self-reference other case", nil, map[string][]string{"root": {"Root", "admin@x"}}, "root", []string{"Root", "admin@x"}},
		{"backslash is final", map[string][]string{"root": {"admin@x"}}, map[string][]string{"ops": {`\root`, "x@y"}}, "ops", []string{"root", "x@y"}},
		{"loop of two", nil, map[string][]string{"a": {"b"}, "b": {"a"}}, "a", []string{"a"}},
		{"loop of three with an address", nil, map[string][]string{"a": {"b"}, "b": {"c", "b@x"}, "c": {"a"}}, "a", []string{"a", "b@x"}},
		{"depth limit", nil, chain, "n0", []string{"n20"}},
		{"depth limit from the middle", nil, chain, "n5", []string{"n25"}},
		{"config wins", map[string][]string{"ROOT": {"cfg@x"}}, map[string][]string{"root": {"file@x"}, "postmaster": {"root"}}, "postmaster", []string{"cfg@x"}},
		{"config empty removes the file entry", map[string][]string{"root": {}}, map[string][]string{"root": {"file@x"}}, "root", []string{"root"}},
		{"catch-all", map[string][]string{"*": {"catchall@x"}}, nil, "bob", []string{"catchall@x"}},
		{"catch-all not for known names", map[string][]string{"*": {"catchall@x"}, "root": {"admin@x"}}, nil, "root", []string{"admin@x"}},
		{"catch-all for a bare target", map[string][]string{"*": {"catchall@x"}}, debian, "nobody", []string{"admin@example.com"}},
		{"catch-all for an unknown target", map[string][]string{"*": {"catchall@x"}}, map[string][]string{"ops": {"alice", "bob@y"}}, "ops", []string{"catchall@x", "bob@y"}},
		{"catch-all not re-applied", map[string][]string{"*": {"nobody"}}, nil, "bob", []string{"nobody"}},
		{"catch-all result may be an alias", map[string][]string{"*": {"root"}, "root": {"admin@x"}}, nil, "bob", []string{"admin@x"}},
		{"catch-all result alias with unknown name", map[string][]string{"*": {"root"}, "root": {"ghost", "admin@x"}}, nil, "bob", []string{"ghost", "admin@x"}},
		{"star is not a name", map[string][]string{"*": {"catchall@x"}}, nil, "*", []string{"catchall@x"}},
		{"catch-all in file", nil, map[string][]string{"*": {"f@x"}}, "bob", []string{"f@x"}},
		{"diamond expanded once", nil, map[string][]string{"a": {"b", "c"}, "b": {"d"}, "c": {"d"}, "d": {"d@x"}}, "a", []string{"d@x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := NewAliases(tt.config, tt.file)
			got := a.Expand(tt.in)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Expand(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestExpandNil(t *testing.T) {
	var a *Aliases
	if got := a.Expand("root"); !reflect.DeepEqual(got, []string{"root"}) {
		t.Errorf("nil Expand = %q", got)
	}
	if got := a.Trace("root"); !reflect.DeepEqual(got, []string{"root: no alias"}) {
		t.Errorf("nil Trace = %q", got)
	}
}

// TestExpandBounded feeds a table in which every name points at every
// other: without the once-per-name rule the work would be factorial.
func TestExpandBounded(t *testing.T) {
	file := map[string][]string{}
	const n = 40
	for i := range n {
		var targets []string
		for j := range n {
			targets = append(targets, fmt.Sprintf("u%d", j))
		}
		file[fmt.Sprintf("u%d", i)] = append(targets, fmt.Sprintf("u%d@x", i))
	}
	got := NewAliases(nil, file).Expand("u0")
	if len(got) != 2*n {
		t.Errorf("got %d results, want %d (every name once, every address once): %q", len(got), 2*n, got)
	}
}

func TestTrace(t *testing.T) {
	file, _, err := ParseAliases(strings.NewReader(debianAliases+"ops: a@x, alice\nloop1: loop2\nloop2: loop1\nself: self, s@x\n"), "f")
	if err != nil {
		t.Fatal(err)
	}
	config := map[string][]string{"root": {"admin@example.com"}, "*": {"catchall@example.com"}}
	a := NewAliases(config, file)
	tests := []struct {
		in   string
		want []string
	}{
		{"root", []string{"root -> admin@example.com (config)"}},
		{"postmaster", []string{
			"postmaster -> root (file)",
			"  root -> admin@example.com (config)",
		}},
		{"ops", []string{
			"ops -> a@x, alice (file)",
			"  alice -> catchall@example.com (catch-all *)",
		}},
		{"bob", []string{"bob -> catchall@example.com (catch-all *)"}},
		{"loop1", []string{
			"loop1 -> loop2 (file)",
			"  loop2 -> loop1 (file)",
			"    loop1: loop, final",
		}},
		{"self", []string{
			"self -> self, s@x (file)",
			"  self: in its own expansion, final",
		}},
		{"a@x", []string{"a@x: an address, final"}},
	}
	for _, tt := range tests {
		if got := a.Trace(tt.in); !reflect.DeepEqual(got, tt.want) {
			t.Errorf("Trace(%q)\n got %q\nwant %q", tt.in, got, tt.want)
		}
	}

	chain := map[string][]string{}
	for i := range 25 {
		chain[fmt.Sprintf("n%d", i)] = []string{fmt.Sprintf("n%d", i+1)}
	}
	trace := NewAliases(nil, chain).Trace("n0")
	last := trace[len(trace)-1]
	if want := strings.Repeat("  ", 20) + "n20: depth limit 20 reached, final"; last != want {
		t.Errorf("depth trace ends with %q, want %q", last, want)
	}
	unknown := NewAliases(nil, nil).Trace("nobody")
	if !reflect.DeepEqual(unknown, []string{"nobody: no alias"}) {
		t.Errorf("Trace(nobody) = %q", unknown)
	}
}

func FuzzParseAliases(f *testing.F) {
	for _, s := range []string{
		debianAliases,
		"staff: a@x,\n  b@y\n# c\n\tc@z\n",
		"a: \"b c\"@x, Name <d@x>, |prog, /file, :include:/x, \\root\n",
		"\"q\\\"n\": x\nr: b\nb: r\n*: r\n",
		"a:\r\n b,\r\nc: d",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		table, warnings, err := ParseAliases(strings.NewReader(in), "fuzz")
		if err != nil {
			t.Fatalf("error from a strings.Reader: %v", err)
		}
		for _, w := range warnings {
			if !strings.HasPrefix(w, "fuzz:") || strings.ContainsAny(w, "\r\n") {
				t.Fatalf("bad warning %q", w)
			}
		}
		for name, targets := range table {
			if name == "" || name != strings.ToLower(name) || len(targets) == 0 {
				t.Fatalf("bad entry %q: %q", name, targets)
			}
			for _, tg := range targets {
				if tg == "" || strings.TrimSpace(tg) != tg || aliasHasControl(tg) {
					t.Fatalf("bad target %q in %q", tg, name)
				}
			}
		}
		a := NewAliases(nil, table)
		for name := range table {
			out := a.Expand(name)
			if len(out) == 0 {
				t.Fatalf("Expand(%q) is empty", name)
			}
			if len(a.Trace(name)) == 0 {
				t.Fatalf("Trace(%q) is empty", name)
			}
		}
	})
}
