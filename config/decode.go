package config

import (
	"bytes"
	"errors"
	"regexp"
	"strconv"
	"strings"
	"sync"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// fileConfig is the file's shape, kept apart from Config. Pointers mark
// the keys whose default differs from the zero value, so that "unset" and
// "set to the zero value" stay distinguishable.
type fileConfig struct {
	Hostname          string          `toml:"hostname"`
	Domain            string          `toml:"domain"`
	From              string          `toml:"from"`
	FromOverride      *bool           `toml:"from_override"`
	RewriteFromHeader bool            `toml:"rewrite_from_header"`
	AliasesFile       string          `toml:"aliases_file"`
	Log               string          `toml:"log"`
	Listen            *[]string       `toml:"listen"`
	ListenAllowRemote bool            `toml:"listen_allow_remote"`
	ListenMaxSessions *int64          `toml:"listen_max_sessions"`
	ListenCmdTimeout  string          `toml:"listen_command_timeout"`
	ListenDataTimeout string          `toml:"listen_data_timeout"`
	ListenWait        string          `toml:"listen_wait_timeout"`
	Smarthost         *fileSmarthost  `toml:"smarthost"`
	Fallback          []fileSmarthost `toml:"fallback"`
	Aliases           map[string]any  `toml:"aliases"`
	Queue             *fileQueue      `toml:"queue"`
}

type fileSmarthost struct {
	Host            string      `toml:"host"`
	Port            *int64      `toml:"port"`
	TLS             string      `toml:"tls"`
	TLSVerify       *bool       `toml:"tls_verify"`
	CAFile          string      `toml:"ca_file"`
	TLSServerName   string      `toml:"tls_server_name"`
	Username        string      `toml:"username"`
	Password        *string     `toml:"password"`
	PasswordFile    string      `toml:"password_file"`
	PasswordCommand []string    `toml:"password_command"`
	Auth            string      `toml:"auth"`
	Timeout         string      `toml:"timeout"`
	DataTimeout     string      `toml:"data_timeout"`
	OAuth2          *fileOAuth2 `toml:"oauth2"`
}

type fileQueue struct {
	Dir    string `toml:"dir"`
	Mode   string `toml:"mode"`
	MaxAge string `toml:"max_age"`
}

// keySpec describes one key of the schema: what its value must be (for
// type errors), and the keys of the table(s) below it.
type keySpec struct {
	want string             // "a string", "an integer", ...
	sub  map[string]keySpec // keys of a table or of each table in an array of tables
	free bool               // a table whose keys are free ([aliases])
}

var smarthostSchema = map[string]keySpec{
	"host":             {want: "a string"},
	"port":             {want: "an integer"},
	"tls":              {want: `a string ("starttls", "implicit" or "none")`},
	"tls_verify":       {want: "a boolean"},
	"ca_file":          {want: "a string (a path)"},
	"tls_server_name":  {want: "a string"},
	"username":         {want: "a string"},
	"password":         {want: "a string"},
	"password_file":    {want: "a string (a path)"},
	"password_command": {want: "an array of strings (argv)"},
	"auth":             {want: "a string"},
	"timeout":          {want: `a duration string such as "30s"`},
	"data_timeout":     {want: `a duration string such as "10m"`},
	"oauth2":           {want: "a table ([smarthost.oauth2])", sub: oauth2Schema},
}

var schema = map[string]keySpec{
	"hostname":               {want: "a string"},
	"domain":                 {want: "a string"},
	"from":                   {want: "a string"},
	"from_override":          {want: "a boolean"},
	"rewrite_from_header":    {want: "a boolean"},
	"aliases_file":           {want: "a string (a path)"},
	"log":                    {want: "a string"},
	"listen":                 {want: "an array of strings"},
	"listen_allow_remote":    {want: "a boolean"},
	"listen_max_sessions":    {want: "an integer"},
	"listen_command_timeout": {want: `a duration string such as "5m"`},
	"listen_data_timeout":    {want: `a duration string such as "10m"`},
	"listen_wait_timeout":    {want: `a duration string such as "30s"`},
	"smarthost":              {want: "a table", sub: smarthostSchema},
	"fallback":               {want: "an array of tables ([[fallback]])", sub: smarthostSchema},
	"aliases":                {want: "a table", free: true},
	"queue": {want: "a table", sub: map[string]keySpec{
		"dir":     {want: "a string (a path)"},
		"mode":    {want: "a string"},
		"max_age": {want: `a duration string such as "120h" or "5d"`},
	}},
}

// decode decodes data strictly into fc and turns go-toml's errors into
// positioned problems.
func decode(data []byte, path string, fc *fileConfig) error {
	dec := toml.NewDecoder(bytes.NewReader(data)).DisallowUnknownFields()
	if err := dec.Decode(fc); err != nil {
		return &Error{Path: path, Problems: tomlProblems(err), Err: err}
	}
	// go-toml matches keys to fields case-insensitively; TOML keys are
	// case-sensitive, and "TLS" next to "tls" would let the last one win
	// unnoticed. Insist on the exact spelling.
	if ps := checkKeyCase(data); len(ps) > 0 {
		return &Error{Path: path, Problems: ps}
	}
	return nil
}

func tomlProblems(err error) []Problem {
	var sm *toml.StrictMissingError
	if errors.As(err, &sm) {
		ps := make([]Problem, 0, len(sm.Errors))
		for i := range sm.Errors {
			de := &sm.Errors[i]
			row, col := de.Position()
			what := "key"
			if strings.Contains(de.Error(), "missing table") {
				what = "table"
			}
			ps = append(ps, Problem{Line: row, Column: col,
				Msg: "unknown " + what + " " + strconv.Quote(keyString(de.Key()))})
		}
		return ps
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		row, col := de.Position()
		return []Problem{{Line: row, Column: col, Msg: decodeMessage(de)}}
	}
	return []Problem{{Msg: safeMessage(strings.TrimPrefix(err.Error(), "toml: "))}}
}

// typeMismatch and quotedRune are compiled on first use: only a broken
// config needs them, and compiling them at start-up was most of the CPU a
// healthy run spent in package initialisation (issue 13).
var typeMismatch = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`^cannot decode TOML ([a-zA-Z -]+?) into `)
})

// decodeMessage rewrites a go-toml decode error in the file's terms:
// TOML key names instead of Go struct fields, and never a piece of the
// document (the line may hold a password).
func decodeMessage(de *toml.DecodeError) string {
	msg := strings.TrimPrefix(de.Error(), "toml: ")
	key := de.Key()
	if m := typeMismatch().FindStringSubmatch(msg); m != nil {
		got := "a TOML " + m[1]
		if len(key) == 0 {
			return "value of the wrong type (" + got + ")"
		}
		if want := wantFor(key); want != "" {
			return keyString(key) + " must be " + want + ", not " + got
		}
		return keyString(key) + " has the wrong type (" + got + ")"
	}
	msg = safeMessage(msg)
	if len(key) > 0 {
		return keyString(key) + ": " + msg
	}
	return msg
}

var quotedRune = sync.OnceValue(func() *regexp.Regexp {
	return regexp.MustCompile(`\s*U\+[0-9A-F]{4,6}(?: '.')?`)
})

// safeMessage drops what go-toml quotes from the document (a character,
// a number's text) so that a syntax error on a password line shows no part
// of the password.
func safeMessage(msg string) string {
	msg = quotedRune().ReplaceAllString(msg, "")
	msg = strings.Replace(msg, " but got", "", 1)
	if i := strings.Index(msg, ": "); i >= 0 {
		msg = msg[:i]
	}
	return strings.TrimRight(msg, ": ")
}

// wantFor says what the value at key must be, from the schema.
func wantFor(key []string) string {
	s := schema
	var spec keySpec
	for i, part := range key {
		k, ok := s[part]
		if !ok {
			return ""
		}
		spec = k
		if k.free {
			if i == len(key)-1 {
				return k.want
			}
			return "a string or an array of strings"
		}
		s = k.sub
	}
	return spec.want
}

// bareKey reports whether k is a key TOML allows without quotes
// (A-Za-z0-9_-, at least one).
func bareKey(k string) bool {
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return k != ""
}

// keyString renders a key path as it would be written in TOML.
func keyString(key []string) string {
	parts := make([]string, len(key))
	for i, k := range key {
		if bareKey(k) {
			parts[i] = k
		} else {
			parts[i] = strconv.Quote(k)
		}
	}
	return strings.Join(parts, ".")
}

// checkKeyCase walks the document's expressions and reports every key
// that names a known key only up to case.
func checkKeyCase(data []byte) []Problem {
	var ps []Problem
	var p unstable.Parser
	p.Reset(data)
	var table []string
	skip := false // inside a table whose header was reported
	report := func(what string, full []string, n *unstable.Node) {
		line, col := position(data, int(n.Raw.Offset))
		ps = append(ps, Problem{Line: line, Column: col,
			Msg: "unknown " + what + " " + strconv.Quote(keyString(full)) + " (names are case-sensitive and lower case)"})
	}
	// walkKey checks the key parts of node, which sit below prefix.
	walkKey := func(prefix []string, node *unstable.Node) []string {
		what := "key"
		if node.Kind == unstable.Table || node.Kind == unstable.ArrayTable {
			what = "table"
		}
		full := append([]string(nil), prefix...)
		it := node.Key()
		for it.Next() {
			kn := it.Node()
			full = append(full, string(kn.Data))
			if !knownExactly(full) {
				report(what, full, kn)
				return nil
			}
		}
		return full
	}
	var walkValue func(prefix []string, v *unstable.Node)
	walkValue = func(prefix []string, v *unstable.Node) {
		switch v.Kind {
		case unstable.InlineTable:
			it := v.Children()
			for it.Next() {
				kv := it.Node()
				if kv.Kind != unstable.KeyValue {
					continue
				}
				if full := walkKey(prefix, kv); full != nil {
					walkValue(full, kv.Value())
				}
			}
		case unstable.Array:
			it := v.Children()
			for it.Next() {
				walkValue(prefix, it.Node())
			}
		}
	}
	for p.NextExpression() {
		e := p.Expression()
		switch e.Kind {
		case unstable.Table, unstable.ArrayTable:
			table = walkKey(nil, e)
			skip = table == nil
		case unstable.KeyValue:
			if skip {
				continue
			}
			if full := walkKey(table, e); full != nil {
				walkValue(full, e.Value())
			}
		}
	}
	return ps
}

// knownExactly reports whether key is spelt exactly as the schema has it,
// or lies below [aliases] (whose keys are free).
func knownExactly(key []string) bool {
	s := schema
	for _, part := range key {
		if s == nil {
			return true
		}
		k, ok := s[part]
		if !ok {
			return false
		}
		if k.free {
			return true
		}
		s = k.sub
	}
	return true
}

// position turns a byte offset into a 1-based line and column.
func position(data []byte, off int) (line, col int) {
	if off > len(data) {
		off = len(data)
	}
	line = 1 + bytes.Count(data[:off], []byte{'\n'})
	col = off - bytes.LastIndexByte(data[:off], '\n')
	return line, col
}
