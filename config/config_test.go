package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"relaymail/relay"
	"strings"
	"testing"
	"time"
)

// testEnv makes defaults independent of the machine running the tests.
var testEnv = sysEnv{
	fqdn:     func() string { return "host.example.net" },
	readFile: os.ReadFile,
}

const minimal = "[smarthost]\nhost = \"smtp.example.com\"\n"

func mustParse(t *testing.T, env sysEnv, doc string) *Config {
	t.Helper()
	cfg, err := env.parse([]byte(doc), "/etc/relaymail.toml")
	if err != nil {
		t.Fatalf("parse: %v\n%s", err, doc)
	}
	return cfg
}

// checkErr asserts the invariants of every config error and returns its text.
func checkErr(t *testing.T, err error) string {
	t.Helper()
	if err == nil {
		t.Fatal("no error")
	}
	if !errors.Is(err, ErrConfig) {
		t.Errorf("error does not wrap ErrConfig: %v", err)
	}
	msg := err.Error()
	if strings.ContainsAny(msg, "\r\n") {
		t.Errorf("error is not one line: %q", msg)
	}
	if !strings.HasPrefix(msg, "config: ") {
		t.Errorf("error lacks the package prefix: %q", msg)
	}
	return msg
}

func TestDefaults(t *testing.T) {
	cfg := mustParse(t, testEnv, minimal)
	want := &Config{
		Path:              "/etc/relaymail.toml",
		Hostname:          "host.example.net",
		Domain:            "host.example.net",
		FromOverride:      true,
		Aliases:           map[string][]string{},
		Listen:            []string{"127.0.0.1:25", "[::1]:25"},
		ListenAllowRemote: false,
		ListenMaxSessions: 100, ListenCommandTimeout: 5 * time.Minute,
		ListenDataTimeout: 10 * time.Minute, ListenWaitTimeout: 30 * time.Second,
		Smarthosts: []Smarthost{{
			Host: relay.Host{Name: "smtp.example.com", Port: 587, TLS: relay.TLSStartTLS, TLSVerify: true,
				TLSServerName: "smtp.example.com", Auth: relay.AuthAuto, Timeout: 30 * time.Second, DataTimeout: 10 * time.Minute},
		}},
		Queue: Queue{Dir: "/var/spool/relaymail", Mode: QueueFallback, MaxAge: 120 * time.Hour},
	}
	if !reflect.DeepEqual(cfg, want) {
		t.Errorf("defaults:\n got %+v\nwant %+v", cfg, want)
	}

	called := false
	counting := testEnv
	counting.fqdn = func() string { called = true; return "x.example" }
	mustParse(t, counting, "hostname = \"mx.example.org\"\n"+minimal)
	if called {
		t.Error("hostname lookup ran although hostname was set")
	}
}

func TestResolvedValues(t *testing.T) {
	tests := []struct {
		name string
		doc  string
		get  func(*Config) any
		want any
	}{
		{"hostname", `hostname = "mx.example.org"` + "\n" + minimal, func(c *Config) any { return c.Hostname + " " + c.Domain }, "mx.example.org mx.example.org"},
		{"domain", `domain = "example.org"` + "\n" + minimal, func(c *Config) any { return c.Domain }, "example.org"},
		{"from", `from = "robot@example.org"` + "\n" + minimal, func(c *Config) any { return c.From }, "robot@example.org"},
		{"from_override false", "from_override = false\n" + minimal, func(c *Config) any { return c.FromOverride }, false},
		{"rewrite_from_header", "rewrite_from_header = true\n" + minimal, func(c *Config) any { return c.RewriteFromHeader }, true},
		{"aliases_file", `aliases_file = "/etc//aliases"` + "\n" + minimal, func(c *Config) any { return c.AliasesFile }, "/etc/aliases"},
		{"log none", `log = "none"` + "\n" + minimal, func(c *Config) any { return c.Log }, "none"},
		{"log stderr", `log = "stderr"` + "\n" + minimal, func(c *Config) any { return c.Log }, "stderr"},
		{"log file", `log = "/var/log/relaymail.log"` + "\n" + minimal, func(c *Config) any { return c.Log }, "/var/log/relaymail.log"},
		{"listen", `listen = ["0.0.0.0:2525"]` + "\nlisten_allow_remote = true\n" + minimal, func(c *Config) any { return []any{c.Listen, c.ListenAllowRemote} }, []any{[]string{"0.0.0.0:2525"}, true}},
		{"listen limits", "listen_max_sessions = 20\nlisten_command_timeout = \"1m\"\nlisten_data_timeout = \"2m\"\nlisten_wait_timeout = \"5s\"\n" + minimal,
			func(c *Config) any {
				return []any{c.ListenMaxSessions, c.ListenCommandTimeout, c.ListenDataTimeout, c.ListenWaitTimeout}
			}, []any{20, time.Minute, 2 * time.Minute, 5 * time.Second}},
		{"listen limits default", minimal,
			func(c *Config) any {
				return []any{c.ListenMaxSessions, c.ListenCommandTimeout, c.ListenDataTimeout, c.ListenWaitTimeout}
			}, []any{100, 5 * time.Minute, 10 * time.Minute, 30 * time.Second}},
		{"implicit port", minimal + `tls = "implicit"`, func(c *Config) any { return c.Smarthosts[0].Port }, 465},
		{"starttls port", minimal + `tls = "starttls"`, func(c *Config) any { return c.Smarthosts[0].Port }, 587},
		{"none port", minimal + `tls = "none"`, func(c *Config) any { return c.Smarthosts[0].Port }, 587},
		{"explicit port", minimal + "tls = \"implicit\"\nport = 2465", func(c *Config) any { return c.Smarthosts[0].Port }, 2465},
		{"tls_verify false", minimal + "tls_verify = false", func(c *Config) any { return c.Smarthosts[0].TLSVerify }, false},
		{"tls_server_name", minimal + `tls_server_name = "mail.example.com"`, func(c *Config) any { return c.Smarthosts[0].TLSServerName }, "mail.example.com"},
		{"auth upper", minimal + "auth = \"CRAM-MD5\"\nusername = \"u\"\npassword = \"p\"", func(c *Config) any { return c.Smarthosts[0].Auth }, relay.AuthCRAMMD5},
		{"timeout", minimal + `timeout = "1m30s"`, func(c *Config) any { return c.Smarthosts[0].Timeout }, 90 * time.Second},
		{"timeout days", minimal + `timeout = "1d"`, func(c *Config) any { return c.Smarthosts[0].Timeout }, 24 * time.Hour},
		{"data_timeout default", minimal, func(c *Config) any { return c.Smarthosts[0].DataTimeout }, 10 * time.Minute},
		{"data_timeout", minimal + `data_timeout = "2s"`, func(c *Config) any { return c.Smarthosts[0].DataTimeout }, 2 * time.Second},
		{"fallback data_timeout", minimal + "[[fallback]]\nhost = \"b.example\"\ndata_timeout = \"1h\"", func(c *Config) any { return c.Smarthosts[1].DataTimeout }, time.Hour},
		{"username none", minimal + "username = \"u\"\nauth = \"none\"", func(c *Config) any { return c.Smarthosts[0].HasPassword() }, false},
		{"password", minimal + "username = \"u\"\npassword = \"p\"", func(c *Config) any { return c.Smarthosts[0].HasPassword() }, true},
		{"queue", minimal + "[queue]\ndir = \"/srv/q/\"\nmode = \"always\"\nmax_age = \"5d\"", func(c *Config) any { return c.Queue }, Queue{Dir: "/srv/q", Mode: QueueAlways, MaxAge: 5 * 24 * time.Hour}},
		{"queue never", minimal + "[queue]\nmode = \"never\"", func(c *Config) any { return c.Queue.Mode }, QueueNever},
		{"ipv6 host", "[smarthost]\nhost = \"::1\"\ntls = \"none\"", func(c *Config) any { return c.Smarthosts[0].Name + " " + c.Smarthosts[0].TLSServerName }, "::1 ::1"},
		{"inline table", `smarthost = { host = "a.example", port = 25 }`, func(c *Config) any { return c.Smarthosts[0].Port }, 25},
		{
			"fallbacks stand alone",
			minimal + "tls = \"implicit\"\nusername = \"u\"\npassword = \"p\"\ntimeout = \"5s\"\n" +
				"[[fallback]]\nhost = \"b.example\"\n[[fallback]]\nhost = \"c.example\"\ntls = \"none\"\nport = 25\n",
			func(c *Config) any {
				var out []string
				for _, s := range c.Smarthosts {
					out = append(out, s.String()+" "+s.Timeout.String())
				}
				return out
			},
			[]string{
				`smtp.example.com port 465 tls implicit (auth auto as "u" password <redacted>) 5s`,
				"b.example port 587 tls starttls (no auth) 30s",
				"c.example port 25 tls none (no auth) 30s",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := mustParse(t, testEnv, tt.doc)
			if got := tt.get(cfg); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v, want %#v", got, tt.want)
			}
		})
	}
}

// TestValidation checks each validation sentence, and that all problems
// are collected on one line.
func TestValidation(t *testing.T) {
	const sh = "[smarthost]\nhost = \"smtp.example.com\"\n"
	tests := []struct {
		name string
		doc  string
		want string // the whole message after "config: /etc/relaymail.toml: "
	}{
		{"host required", "", "smarthost.host is required"},
		{"host required in table", "[smarthost]\nport = 25\n", "smarthost.host is required"},
		{"host with port", "[smarthost]\nhost = \"smtp.example.com:587\"\n", `smarthost.host must be a host name or IP address without port or brackets, not "smtp.example.com:587"`},
		{"fallback host", sh + "[[fallback]]\nport = 25\n", "fallback[0].host is required"},
		{"brief example", "[smarthost]\ntls = \"ssl\"\n", `smarthost.host is required; smarthost.tls must be starttls, implicit or none, not "ssl"`},
		{"port zero", sh + "port = 0", "smarthost.port must be between 1 and 65535, not 0"},
		{"port big", sh + "port = 65536", "smarthost.port must be between 1 and 65535, not 65536"},
		{"port negative", sh + "port = -1", "smarthost.port must be between 1 and 65535, not -1"},
		{"auth", sh + "auth = \"gssapi\"", `smarthost.auth must be auto, plain, login, cram-md5, xoauth2, oauthbearer or none, not "gssapi"`},
		{"username without password", sh + "username = \"u\"", `smarthost.username is set but no password, password_file or password_command is (or set auth = "none")`},
		{"password without username", sh + "password = \"p\"", "smarthost.password is set but smarthost.username is not"},
		{"password_file without username", sh + "password_file = \"/etc/pw\"", "smarthost.password_file is set but smarthost.username is not"},
		{"auth without username", sh + "auth = \"plain\"", `smarthost.auth = "plain" needs smarthost.username`},
		{"two sources", sh + "username = \"u\"\npassword = \"p\"\npassword_command = [\"pass\"]", "smarthost.password and password_command are set but only one password source may be"},
		{"three sources", sh + "username = \"u\"\npassword = \"p\"\npassword_file = \"/p\"\npassword_command = [\"pass\"]", "smarthost.password and password_file and password_command are set but only one password source may be"},
		{"empty password", sh + "username = \"u\"\npassword = \"\"", "smarthost.password is empty"},
		{"password line break", sh + "username = \"u\"\npassword = \"a\\nb\"", "smarthost.password must not hold a line break"},
		{"empty command", sh + "username = \"u\"\npassword_command = []", "smarthost.password_command must name a command"},
		{"relative command", sh + "username = \"u\"\npassword_command = [\"bin/pw\"]", `smarthost.password_command must start with a command name or an absolute path, not "bin/pw"`},
		{"relative password_file", sh + "username = \"u\"\npassword_file = \"secret\"", `smarthost.password_file must be an absolute path, not "secret"`},
		{"relative ca_file", sh + "ca_file = \"ca.pem\"", `smarthost.ca_file must be an absolute path, not "ca.pem"`},
		{"missing ca_file", sh + "ca_file = \"/nonexistent/ca.pem\"", "smarthost.ca_file /nonexistent/ca.pem cannot be read: no such file or directory"},
		{"bad timeout", sh + "timeout = \"30\"", `smarthost.timeout must be a duration such as "30s", "2h" or "5d", not "30"`},
		{"zero timeout", sh + "timeout = \"0s\"", `smarthost.timeout must be greater than zero, not "0s"`},
		{"negative timeout", sh + "timeout = \"-5s\"", `smarthost.timeout must be greater than zero, not "-5s"`},
		{"zero data_timeout", sh + "data_timeout = \"0s\"", `smarthost.data_timeout must be greater than zero, not "0s"`},
		{"tls_server_name", sh + "tls_server_name = \"a b\"", `smarthost.tls_server_name must be a host name, not "a b"`},
		{"fallback tls", sh + "[[fallback]]\nhost = \"b.example\"\n[[fallback]]\nhost = \"c.example\"\ntls = \"TLS\"", `fallback[1].tls must be starttls, implicit or none, not "TLS"`},
		{"hostname", "hostname = \"bad name\"\n" + sh, `hostname must be a domain name such as web1.example.com, not "bad name"`},
		{"hostname crlf", "hostname = \"a\\r\\nMAIL FROM:<x>\"\n" + sh, `hostname must be a domain name such as web1.example.com, not "a\r\nMAIL FROM:<x>"`},
		{"domain", "domain = \"-.\"\n" + sh, `domain must be a domain name such as example.com, not "-."`},
		{"from display name", "from = \"Robot <r@example.com>\"\n" + sh, `from must be a plain address such as robot@example.com, not "Robot <r@example.com>"`},
		{"from bare", "from = \"robot\"\n" + sh, `from must be a plain address such as robot@example.com, not "robot"`},
		{"aliases_file", "aliases_file = \"aliases\"\n" + sh, `aliases_file must be an absolute path, not "aliases"`},
		{"log", "log = \"file.log\"\n" + sh, `log must be syslog, stderr, none or an absolute path, not "file.log"`},
		{"listen", "listen = [\"127.0.0.1\"]\n" + sh, `listen address "127.0.0.1" must be host:port, such as 127.0.0.1:25 or [::1]:25`},
		{"listen empty", "listen = []\n" + sh, "listen must hold at least one address"},
		{"listen_max_sessions", "listen_max_sessions = 0\n" + sh, "listen_max_sessions must be between 1 and 10000, not 0"},
		{"listen_command_timeout", "listen_command_timeout = \"0s\"\n" + sh, `listen_command_timeout must be greater than zero, not "0s"`},
		{"listen_data_timeout", "listen_data_timeout = \"soon\"\n" + sh, `listen_data_timeout must be a duration such as "30s", "2h" or "5d", not "soon"`},
		{"listen_wait_timeout", "listen_wait_timeout = \"-1s\"\n" + sh, `listen_wait_timeout must be greater than zero, not "-1s"`},
		{"queue dir", sh + "[queue]\ndir = \"spool\"", `queue.dir must be an absolute path, not "spool"`},
		{"queue mode", sh + "[queue]\nmode = \"later\"", `queue.mode must be fallback, always or never, not "later"`},
		{"queue max_age", sh + "[queue]\nmax_age = \"5 days\"", `queue.max_age must be a duration such as "30s", "2h" or "5d", not "5 days"`},
		{"queue max_age zero", sh + "[queue]\nmax_age = \"0d\"", `queue.max_age must be greater than zero, not "0d"`},
		{
			"many problems",
			"log = \"x\"\n[smarthost]\nport = 0\ntls = \"ssl\"\n[queue]\nmode = \"x\"\n",
			`log must be syslog, stderr, none or an absolute path, not "x"; smarthost.host is required; ` +
				`smarthost.tls must be starttls, implicit or none, not "ssl"; smarthost.port must be between 1 and 65535, not 0; ` +
				`queue.mode must be fallback, always or never, not "x"`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := testEnv.parse([]byte(tt.doc), "/etc/relaymail.toml")
			msg := checkErr(t, err)
			want := "config: /etc/relaymail.toml: " + oneLine(tt.want)
			if msg != want {
				t.Errorf("\n got %s\nwant %s", msg, want)
			}
			var ce *Error
			if !errors.As(err, &ce) || len(ce.Problems) != strings.Count(tt.want, "; ")+1 {
				t.Errorf("problems not kept apart: %#v", err)
			}
		})
	}
}

// TestDecodeErrors covers what TOML itself reports, with positions.
func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name, doc, want string
	}{
		{"unknown key", "[smarthost]\nhost = \"a.example\"\n\n\ntsl = \"none\"\n", `5:1: unknown key "smarthost.tsl"`},
		{"unknown keys", "hostnme = \"x\"\n[smarthost]\nhost = \"a.example\"\n  tsl = \"none\"\n", `1:1: unknown key "hostnme"; 4:3: unknown key "smarthost.tsl"`},
		{"unknown table", "[smarthots]\nhost = \"a.example\"\n", `1:2: unknown table "smarthots"`},
		{"unknown in fallback", "[smarthost]\nhost = \"a\"\n[[fallback]]\nhots = \"b\"\n", `4:1: unknown key "fallback.hots"`},
		{"unknown in queue", "[smarthost]\nhost = \"a\"\n[queue]\nmax-age = \"1h\"\n", `4:1: unknown key "queue.max-age"`},
		{"upper-case key", "[smarthost]\nhost = \"a\"\nTLS = \"none\"\n", `3:1: unknown key "smarthost.TLS" (names are case-sensitive and lower case)`},
		{"upper-case table", "[SmartHost]\nhost = \"a\"\n", `1:2: unknown table "SmartHost" (names are case-sensitive and lower case)`},
		{"upper-case dotted", "smarthost.Host = \"a\"\n", `1:11: unknown key "smarthost.Host" (names are case-sensitive and lower case)`},
		{"upper-case inline", "smarthost = { host = \"a\", Port = 25 }\n", `1:27: unknown key "smarthost.Port" (names are case-sensitive and lower case)`},
		{"port string", "[smarthost]\nhost = \"a\"\nport = \"587\"\n", "3:8: smarthost.port must be an integer, not a TOML string"},
		{"bool string", "from_override = \"yes\"\n", "1:17: from_override must be a boolean, not a TOML string"},
		{"timeout int", "[smarthost]\ntimeout = 30\n", `2:11: smarthost.timeout must be a duration string such as "30s", not a TOML integer`},
		{"listen string", "listen = \"127.0.0.1:25\"\n", "1:10: listen must be an array of strings, not a TOML string"},
		{"argv element", "[smarthost]\npassword_command = [\"a\", 2]\n", "2:26: smarthost.password_command must be an array of strings (argv), not a TOML integer"},
		{"table as value", "smarthost = \"a\"\n", "1:13: smarthost must be a table, not a TOML string"},
		{"fallback as table", "[fallback]\nhost = \"a\"\n", ""},
		{"huge port", "[smarthost]\nport = 99999999999999999999\n", "2:8: smarthost.port: decimal number is too large to fit in a 64-bit signed integer"},
		{"syntax", "[smarthost\nhost = \"a\"\n", "1:11: expected ']' to close table name"},
		{"duplicate", "[smarthost]\nhost = \"a\"\nhost = \"b\"\n", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := testEnv.parse([]byte(tt.doc), "/etc/relaymail.toml")
			msg := checkErr(t, err)
			if tt.want == "" { // only the invariants and a position
				if !strings.HasPrefix(msg, "config: /etc/relaymail.toml:") {
					t.Errorf("no position: %s", msg)
				}
				return
			}
			if want := "config: /etc/relaymail.toml:" + tt.want; msg != want {
				t.Errorf("\n got %s\nwant %s", msg, want)
			}
		})
	}
}

// TestSyntaxErrorHidesSecret: go-toml quotes the offending character; on
// a password line that is part of the password.
func TestSyntaxErrorHidesSecret(t *testing.T) {
	docs := []string{
		"[smarthost]\nhost = \"a\"\nusername = \"u\"\npassword = \"Zq\"Xy7\n",
		"[smarthost]\nhost = \"a\"\nusername = \"u\"\npassword = Xy7Zq\n",
		"[smarthost]\nhost = \"a\"\nusername = \"u\"\npassword = \"Zq\\Xy7\"\n",
		"[smarthost]\nhost = \"a\"\nusername = \"u\"\npassword = 7e99999\n",
		"[smarthost]\nhost = \"a\"\nusername = \"u\"\npassword = 0x7Zq\n",
	}
	for _, doc := range docs {
		_, err := testEnv.parse([]byte(doc), "/etc/relaymail.toml")
		msg := checkErr(t, err)
		for _, frag := range []string{"X", "Zq", "99999", "7"} {
			if strings.Contains(strings.TrimPrefix(msg, "config: /etc/relaymail.toml:"), frag) {
				t.Errorf("%q: error shows %q of the password: %s", doc, frag, msg)
			}
		}
	}
}

func TestAliases(t *testing.T) {
	tests := []struct {
		name    string
		body    string
		want    map[string][]string
		wantErr string
	}{
		{"string", `root = "admin@example.com"`, map[string][]string{"root": {"admin@example.com"}}, ""},
		{"array", `ops = ["a@example.com", " b@example.com "]`, map[string][]string{"ops": {"a@example.com", "b@example.com"}}, ""},
		{"catch-all and case", "\"*\" = \"all@example.com\"\nPostMaster = \"pm\"", map[string][]string{"*": {"all@example.com"}, "postmaster": {"pm"}}, ""},
		{"integer", `root = 5`, nil, "aliases.root must be a string or an array of strings"},
		{"mixed array", `root = ["a@x", 5]`, nil, "aliases.root must be a string or an array of strings"},
		{"empty array", `root = []`, nil, "aliases.root must name at least one target"},
		{"table", "root.x = \"a\"", nil, "aliases.root must be a string or an array of strings"},
		{"inline table", "root = { a = 1 }", nil, "aliases.root must be a string or an array of strings"},
		{"boolean", "root = true", nil, "aliases.root must be a string or an array of strings"},
		{"date", "root = 2024-01-01", nil, "aliases.root must be a string or an array of strings"},
		{"empty target", `root = ""`, nil, "aliases.root has an empty target"},
		{"comma", `root = "a@x, b@y"`, nil, `aliases.root target "a@x, b@y" holds a comma; write several targets as an array`},
		{"address key", `"a@x" = "b@y"`, nil, `aliases."a@x": an alias name must be a bare local name without @ or spaces, or "*"`},
		{"duplicate by case", "Root = \"a\"\nroot = \"b\"", nil, `aliases.Root and aliases.root name the same alias (names are not case-sensitive)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := testEnv.parse([]byte(minimal+"[aliases]\n"+tt.body+"\n"), "/r.toml")
			if tt.wantErr != "" {
				msg := checkErr(t, err)
				if want := "config: /r.toml: " + tt.wantErr; msg != want {
					t.Errorf("\n got %s\nwant %s", msg, want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(cfg.Aliases, tt.want) {
				t.Errorf("got %v, want %v", cfg.Aliases, tt.want)
			}
		})
	}
}

func TestCAFile(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.pem")
	if err := os.WriteFile(bad, []byte("not a certificate\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := testEnv.parse([]byte(minimal+"ca_file = \""+bad+"\"\n"), "/r.toml")
	if msg := checkErr(t, err); msg != "config: /r.toml: smarthost.ca_file "+bad+" holds no PEM certificate" {
		t.Errorf("got %s", msg)
	}

	good := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(good, testCAPEM(t), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := mustParse(t, testEnv, minimal+"ca_file = \""+good+"\"\n")
	if cfg.Smarthosts[0].RootCAs == nil || cfg.Smarthosts[0].CAFile != good {
		t.Errorf("ca_file not loaded: %+v", cfg.Smarthosts[0])
	}
}

func TestCheckListen(t *testing.T) {
	tests := []struct {
		listen []string
		remote bool
		want   string
	}{
		{[]string{"127.0.0.1:25", "[::1]:25"}, false, ""},
		{[]string{"127.0.0.53:2525", "localhost:25", "[::1%lo]:25", "LOCALHOST.:25"}, false, ""},
		{[]string{"0.0.0.0:25"}, false, `listen address "0.0.0.0:25" is not loopback; set listen_allow_remote = true to accept mail from the network`},
		{[]string{"127.0.0.1:25", ":25", "[::]:25"}, false, `listen address ":25" is not loopback; set listen_allow_remote = true to accept mail from the network; listen address "[::]:25" is not loopback; set listen_allow_remote = true to accept mail from the network`},
		{[]string{"mail.example.com:25"}, false, `listen address "mail.example.com:25" is not loopback; set listen_allow_remote = true to accept mail from the network`},
		{[]string{"192.0.2.1:25", ":25"}, true, ""},
	}
	for _, tt := range tests {
		cfg := &Config{Path: "/r.toml", Listen: tt.listen, ListenAllowRemote: tt.remote}
		err := cfg.CheckListen()
		if tt.want == "" {
			if err != nil {
				t.Errorf("%v: %v", tt.listen, err)
			}
			continue
		}
		if msg := checkErr(t, err); msg != "config: /r.toml: "+tt.want {
			t.Errorf("%v:\n got %s\nwant config: /r.toml: %s", tt.listen, msg, tt.want)
		}
	}
}

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		ok   bool
	}{
		{"30s", 30 * time.Second, true},
		{"1h30m", 90 * time.Minute, true},
		{"5d", 120 * time.Hour, true},
		{"1d12h", 36 * time.Hour, true},
		{"0d", 0, true},
		{"d", 0, false},
		{"1.5d", 0, false},
		{"-1d", 0, false},
		{"5 d", 0, false},
		{"1dx", 0, false},
		{"1d-1h", 0, false},
		{"30", 0, false},
		{"99999999999d", 0, false},
		{"106751d", 106751 * 24 * time.Hour, true},
		{"106751d24h", 0, false},
	}
	for _, tt := range tests {
		got, err := parseDuration(tt.in)
		if (err == nil) != tt.ok || (tt.ok && got != tt.want) {
			t.Errorf("parseDuration(%q) = %v, %v; want %v ok=%v", tt.in, got, err, tt.want, tt.ok)
		}
	}
}

func TestCAFileNotRegular(t *testing.T) {
	for _, name := range []string{"/dev/zero", "/dev/stdin", t.TempDir()} {
		_, err := Parse([]byte(minimal+"ca_file = \""+name+"\"\n"), "/r.toml")
		msg := checkErr(t, err)
		if !strings.Contains(msg, "cannot be read") {
			t.Errorf("%s: %s", name, msg)
		}
	}
}

// TestKeyString: keys TOML allows bare are written bare, others quoted.
func TestKeyString(t *testing.T) {
	tests := []struct {
		key  []string
		want string
	}{
		{[]string{"smarthost", "host"}, "smarthost.host"},
		{[]string{"a_b-C9"}, "a_b-C9"},
		{[]string{"aliases", "a.b"}, `aliases."a.b"`},
		{[]string{"aliases", ""}, `aliases.""`},
		{[]string{"aliases", "x y"}, `aliases."x y"`},
		{[]string{"aliases", "é"}, `aliases."é"`},
	}
	for _, tt := range tests {
		if got := keyString(tt.key); got != tt.want {
			t.Errorf("keyString(%q) = %s, want %s", tt.key, got, tt.want)
		}
	}
}
