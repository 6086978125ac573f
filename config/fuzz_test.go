package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fuzzEnv keeps the file system out of fuzzing: a ca_file is never read.
var fuzzEnv = sysEnv{
	fqdn:     testEnv.fqdn,
	readFile: func(string) ([]byte, error) { return nil, errors.New("not read while fuzzing") },
}

// FuzzParse: Parse never panics, and every error wraps ErrConfig and is
// one line; a successful result is fully resolved.
func FuzzParse(f *testing.F) {
	seeds, _ := filepath.Glob("../conf/*.toml")
	for _, s := range seeds {
		if b, err := os.ReadFile(s); err == nil {
			f.Add(string(b))
		}
	}
	for _, s := range []string{
		minimal,
		"[smarthost]\nhost = \"a\"\ntls = \"implicit\"\n[[fallback]]\nhost = \"b\"\nport = 25\n",
		"smarthost = { host = \"a\", TLS = \"none\" }\n",
		"[aliases]\nroot = [\"a@x\", 1]\n\"*\" = \"c@x\"\n",
		"[smarthost]\nhost = \"a\"\nusername = \"u\"\npassword = \"p\"\npassword_command = [\"x\"]\n",
		"[queue]\nmax_age = \"99999d\"\n",
		"listen = [\"[::1]:25\", \":25\"]\n",
		"[smarthost\n",
		"a.b.c = 1\n[x.y]\n[[z]]\n",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, doc string) {
		cfg, err := fuzzEnv.parse([]byte(doc), "/etc/relaymail.toml")
		if err != nil {
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("error does not wrap ErrConfig: %v", err)
			}
			if msg := err.Error(); strings.ContainsAny(msg, "\r\n") || !strings.HasPrefix(msg, "config: /etc/relaymail.toml") {
				t.Fatalf("bad error text: %q", msg)
			}
			return
		}
		if len(cfg.Smarthosts) == 0 || cfg.Hostname == "" || cfg.Queue.MaxAge <= 0 || cfg.Queue.Mode == "" {
			t.Fatalf("unresolved config: %+v", cfg)
		}
		for _, s := range cfg.Smarthosts {
			if s.Name == "" || s.Port < 1 || s.Port > 65535 || s.Timeout <= 0 || tlsModes[s.TLS.String()] != s.TLS || s.Auth == "" {
				t.Fatalf("unresolved smarthost: %+v", s)
			}
		}
		if err := cfg.CheckListen(); err != nil && (!errors.Is(err, ErrConfig) || strings.ContainsAny(err.Error(), "\r\n")) {
			t.Fatalf("CheckListen: %q", err)
		}
		_ = fmt.Sprintf("%v %+v %#v", cfg, cfg.Smarthosts, cfg.Smarthosts[0])
	})
}

// FuzzParseDuration: never panics, and never returns a negative value
// without an error for a days form.
func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"5d", "1d12h", "30s", "106751d23h", "d", "-1d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := parseDuration(s)
		if err == nil && strings.Contains(s, "d") && d < 0 {
			t.Fatalf("parseDuration(%q) = %v", s, d)
		}
	})
}
