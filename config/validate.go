package config

import (
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/mail"
	"path/filepath"
	"sort"
	"strings"
	"time"
	"unicode"

	"relaymail/relay"
)

// Defaults of SPEC §5.
const (
	DefaultQueueDir = "/var/spool/relaymail"
	DefaultMaxAge   = 120 * time.Hour

	// -bd's limits. The command timeout is RFC 5321 §4.5.3.2.7's server
	// timeout; RFC 5321 has no bound on the whole of DATA, 10 minutes is
	// the client's wait for the final reply (§4.5.3.2.6).
	DefaultListenMaxSessions    = 100
	DefaultListenCommandTimeout = 5 * time.Minute
	DefaultListenDataTimeout    = 10 * time.Minute
	DefaultListenWaitTimeout    = 30 * time.Second
	maxListenSessions           = 10000
)

// defaultListen is the default of listen: loopback only, both families.
var defaultListen = []string{"127.0.0.1:25", "[::1]:25"}

// sysEnv is what defaults depend on outside the file; tests replace it.
type sysEnv struct {
	fqdn func() string // this host's FQDN, called only when hostname is unset
	// readFile reads ca_file; tests may stub it.
	readFile func(string) ([]byte, error)
}

var systemEnv = sysEnv{fqdn: systemFQDN, readFile: readSmallFile}

// maxCAFile bounds a ca_file: a bundle of every public root is ~250 KB.
const maxCAFile = 4 << 20

// readSmallFile reads a regular file of at most maxCAFile bytes, so that a
// mistaken ca_file (/dev/zero, /dev/stdin, a FIFO) neither hangs nor eats
// memory.
func readSmallFile(name string) ([]byte, error) {
	f, err := OpenRegular(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxCAFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxCAFile {
		return nil, fmt.Errorf("larger than %d bytes", maxCAFile)
	}
	return b, nil
}

func (env sysEnv) parse(data []byte, path string) (*Config, error) {
	var fc fileConfig
	if err := decode(data, path, &fc); err != nil {
		return nil, err
	}
	var ps problems
	cfg := env.resolve(&fc, path, &ps)
	if len(ps) > 0 {
		return nil, &Error{Path: path, Problems: ps}
	}
	return cfg, nil
}

func (env sysEnv) resolve(fc *fileConfig, path string, ps *problems) *Config {
	cfg := &Config{
		Path:              path,
		FromOverride:      fc.FromOverride == nil || *fc.FromOverride,
		RewriteFromHeader: fc.RewriteFromHeader,
		ListenAllowRemote: fc.ListenAllowRemote,
	}

	cfg.Hostname = fc.Hostname
	if cfg.Hostname == "" {
		cfg.Hostname = env.fqdn()
		if !validDomain(cfg.Hostname) {
			ps.add("this host's name %q is not a valid domain name; set hostname", cfg.Hostname)
		}
	} else if !validDomain(cfg.Hostname) {
		ps.add("hostname must be a domain name such as web1.example.com, not %q", cfg.Hostname)
	}
	cfg.Domain = fc.Domain
	if cfg.Domain == "" {
		cfg.Domain = cfg.Hostname
	} else if !validDomain(cfg.Domain) {
		ps.add("domain must be a domain name such as example.com, not %q", cfg.Domain)
	}

	if fc.From != "" {
		if validAddrSpec(fc.From) {
			cfg.From = fc.From
		} else {
			ps.add("from must be a plain address such as robot@example.com, not %q", fc.From)
		}
	}

	cfg.AliasesFile = absPath(fc.AliasesFile, "aliases_file", ps)
	checkRegular(cfg.AliasesFile, "aliases_file", ps)

	switch l := fc.Log; {
	case l == "":
		// Unset: where it goes depends on the mode and on whether a
		// syslog socket exists when it runs (logging.Default).
	case l == "syslog" || l == "stderr" || l == "none":
		cfg.Log = l
	case filepath.IsAbs(l):
		cfg.Log = filepath.Clean(l)
	default:
		ps.add("log must be syslog, stderr, none or an absolute path, not %q", l)
	}

	if fc.Listen == nil {
		cfg.Listen = append([]string(nil), defaultListen...)
	} else {
		if len(*fc.Listen) == 0 {
			ps.add("listen must hold at least one address")
		}
		for _, a := range *fc.Listen {
			if _, port, err := net.SplitHostPort(a); err != nil || port == "" {
				ps.add("listen address %q must be host:port, such as 127.0.0.1:25 or [::1]:25", a)
			}
		}
		cfg.Listen = append([]string(nil), (*fc.Listen)...)
	}

	cfg.ListenMaxSessions = DefaultListenMaxSessions
	if n := fc.ListenMaxSessions; n != nil {
		if *n < 1 || *n > maxListenSessions {
			ps.add("listen_max_sessions must be between 1 and %d, not %d", maxListenSessions, *n)
		}
		cfg.ListenMaxSessions = int(*n)
	}
	cfg.ListenCommandTimeout = duration(fc.ListenCmdTimeout, DefaultListenCommandTimeout, "listen_command_timeout", ps)
	cfg.ListenDataTimeout = duration(fc.ListenDataTimeout, DefaultListenDataTimeout, "listen_data_timeout", ps)
	cfg.ListenWaitTimeout = duration(fc.ListenWait, DefaultListenWaitTimeout, "listen_wait_timeout", ps)

	if fc.Smarthost == nil {
		ps.add("smarthost.host is required")
		cfg.Smarthosts = append(cfg.Smarthosts, Smarthost{})
	} else {
		cfg.Smarthosts = append(cfg.Smarthosts, env.smarthost(fc.Smarthost, "smarthost.", ps))
	}
	for i := range fc.Fallback {
		cfg.Smarthosts = append(cfg.Smarthosts, env.smarthost(&fc.Fallback[i], fmt.Sprintf("fallback[%d].", i), ps))
	}

	cfg.Aliases = aliases(fc.Aliases, ps)

	q := fc.Queue
	if q == nil {
		q = &fileQueue{}
	}
	cfg.Queue.Dir = DefaultQueueDir
	if q.Dir != "" {
		cfg.Queue.Dir = absPath(q.Dir, "queue.dir", ps)
	}
	switch m := QueueMode(q.Mode); m {
	case "":
		cfg.Queue.Mode = QueueFallback
	case QueueFallback, QueueAlways, QueueNever:
		cfg.Queue.Mode = m
	default:
		ps.add("queue.mode must be fallback, always or never, not %q", q.Mode)
	}
	cfg.Queue.MaxAge = duration(q.MaxAge, DefaultMaxAge, "queue.max_age", ps)
	return cfg
}

var authMechs = map[string]bool{
	"auto": true, "plain": true, "login": true, "cram-md5": true,
	"xoauth2": true, "oauthbearer": true, "none": true,
}

func (env sysEnv) smarthost(f *fileSmarthost, pre string, ps *problems) Smarthost {
	var s Smarthost
	s.Name = f.Host
	s.TLSVerify = f.TLSVerify == nil || *f.TLSVerify
	s.Username = f.Username
	switch {
	case f.Host == "":
		ps.add("%shost is required", pre)
	case !validHost(f.Host):
		ps.add("%shost must be a host name or IP address without port or brackets, not %q", pre, f.Host)
	}

	switch t, ok := tlsModes[f.TLS]; {
	case f.TLS == "":
		s.TLS = relay.TLSStartTLS
	case ok:
		s.TLS = t
	default:
		ps.add("%stls must be starttls, implicit or none, not %q", pre, f.TLS)
	}

	switch {
	case f.Port == nil:
		s.Port = s.TLS.DefaultPort()
	case *f.Port < 1 || *f.Port > 65535:
		ps.add("%sport must be between 1 and 65535, not %d", pre, *f.Port)
	default:
		s.Port = int(*f.Port)
	}

	if f.CAFile != "" {
		s.CAFile = absPath(f.CAFile, pre+"ca_file", ps)
		if s.CAFile != "" {
			s.RootCAs = env.certPool(s.CAFile, pre, ps)
		}
	}

	s.TLSServerName = f.TLSServerName
	if s.TLSServerName == "" {
		s.TLSServerName = s.Name
	} else if !validHost(s.TLSServerName) {
		ps.add("%stls_server_name must be a host name, not %q", pre, f.TLSServerName)
	}

	s.Auth = relay.AuthMechanism(strings.ToLower(f.Auth))
	if s.Auth == "" {
		s.Auth = relay.AuthAuto
	}
	if !authMechs[string(s.Auth)] {
		ps.add("%sauth must be auto, plain, login, cram-md5, xoauth2, oauthbearer or none, not %q", pre, f.Auth)
	}
	if strings.ContainsFunc(f.Username, unicode.IsControl) {
		ps.add("%susername must not hold control characters", pre)
	}

	// Password sources: at most one, and only together with a username.
	var sources []string
	if f.Password != nil {
		sources = append(sources, "password")
		if *f.Password == "" {
			ps.add("%spassword is empty", pre)
		} else if strings.ContainsAny(*f.Password, "\r\n") {
			ps.add("%spassword must not hold a line break", pre)
		}
		s.pw = &passwordSource{inline: *f.Password}
	}
	if f.PasswordFile != "" {
		sources = append(sources, "password_file")
		s.pw = &passwordSource{file: absPath(f.PasswordFile, pre+"password_file", ps)}
		checkRegular(s.pw.file, pre+"password_file", ps)
	}
	if f.PasswordCommand != nil {
		sources = append(sources, "password_command")
		argv := append([]string(nil), f.PasswordCommand...)
		switch {
		case len(argv) == 0 || argv[0] == "":
			ps.add("%spassword_command must name a command", pre)
		case strings.Contains(argv[0], "/") && !filepath.IsAbs(argv[0]):
			ps.add("%spassword_command must start with a command name or an absolute path, not %q", pre, argv[0])
		}
		s.pw = &passwordSource{argv: argv}
	}
	if len(sources) > 1 {
		ps.add("%s%s are set but only one password source may be", pre, strings.Join(sources, " and "))
	}
	if f.OAuth2 != nil {
		s.OAuth2 = env.oauth2(f.OAuth2, pre+"oauth2.", ps)
		s.oauth2Auth(f, sources, pre, ps)
	}
	switch {
	case f.OAuth2 != nil: // checked by oauth2Auth
	case f.Username != "" && len(sources) == 0 && s.Auth != relay.AuthNone:
		ps.add("%susername is set but no password, password_file or password_command is (or set auth = \"none\")", pre)
	case f.Username == "" && len(sources) > 0:
		ps.add("%s%s is set but %susername is not", pre, sources[0], pre)
	case f.Username == "" && s.Auth != relay.AuthAuto && s.Auth != relay.AuthNone && authMechs[string(s.Auth)]:
		ps.add("%sauth = %q needs %susername", pre, s.Auth, pre)
	}

	s.Timeout = duration(f.Timeout, relay.DefaultTimeout, pre+"timeout", ps)
	s.DataTimeout = duration(f.DataTimeout, relay.DefaultDataTimeout, pre+"data_timeout", ps)
	if s.pw != nil {
		s.Host.Password = s.passwordFunc()
	}
	return s
}

// tlsModes are the values of tls = (SPEC §5), each relay's one TLS mode.
var tlsModes = map[string]relay.TLSMode{
	relay.TLSStartTLS.String(): relay.TLSStartTLS,
	relay.TLSImplicit.String(): relay.TLSImplicit,
	relay.TLSNone.String():     relay.TLSNone,
}

func (env sysEnv) certPool(file, pre string, ps *problems) *x509.CertPool {
	pem, err := env.readFile(file)
	if err != nil {
		ps.add("%sca_file %s cannot be read: %s", pre, file, errText(err))
		return nil
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		ps.add("%sca_file %s holds no PEM certificate", pre, file)
		return nil
	}
	return pool
}

// duration parses a duration key, or returns def when it is unset.
func duration(s string, def time.Duration, key string, ps *problems) time.Duration {
	if s == "" {
		return def
	}
	d, err := parseDuration(s)
	switch {
	case err != nil:
		ps.add("%s must be a duration such as \"30s\", \"2h\" or \"5d\", not %q", key, s)
	case d <= 0:
		ps.add("%s must be greater than zero, not %q", key, s)
	}
	return d
}

// absPath checks that a path key is absolute: relaymail runs from any
// working directory, so a relative path would mean something different
// for every caller.
func absPath(p, key string, ps *problems) string {
	switch {
	case p == "":
		return ""
	case !filepath.IsAbs(p):
		ps.add("%s must be an absolute path, not %q", key, p)
		return ""
	}
	return filepath.Clean(p)
}

// aliases turns the [aliases] table into lower-case names and their
// targets, reporting values that are neither a string nor an array of
// strings.
func aliases(in map[string]any, ps *problems) map[string][]string {
	out := make(map[string][]string, len(in))
	names := make([]string, 0, len(in))
	for k := range in {
		names = append(names, k)
	}
	sort.Strings(names) // problems in a stable order
	seen := make(map[string]string, len(in))
	for _, name := range names {
		key := keyString([]string{"aliases", name})
		lower := strings.ToLower(name)
		if !validAliasName(name) {
			ps.add("%s: an alias name must be a bare local name without @ or spaces, or \"*\"", key)
			continue
		}
		if prev, dup := seen[lower]; dup {
			ps.add("%s and %s name the same alias (names are not case-sensitive)", keyString([]string{"aliases", prev}), key)
			continue
		}
		seen[lower] = name
		var targets []string
		switch v := in[name].(type) {
		case string:
			targets = []string{v}
		case []any:
			for _, e := range v {
				s, ok := e.(string)
				if !ok {
					targets = nil
					ps.add("%s must be a string or an array of strings", key)
					break
				}
				targets = append(targets, s)
			}
			if targets == nil {
				if len(v) == 0 {
					ps.add("%s must name at least one target", key)
				}
				continue
			}
		default:
			ps.add("%s must be a string or an array of strings", key)
			continue
		}
		ok := true
		for _, t := range targets {
			switch {
			case strings.TrimSpace(t) == "":
				ps.add("%s has an empty target", key)
				ok = false
			case strings.ContainsFunc(t, unicode.IsControl):
				ps.add("%s has a target with a control character", key)
				ok = false
			case strings.Contains(t, ","):
				ps.add("%s target %q holds a comma; write several targets as an array", key, t)
				ok = false
			}
		}
		if ok {
			for i := range targets {
				targets[i] = strings.TrimSpace(targets[i])
			}
			out[lower] = targets
		}
	}
	return out
}

func validAliasName(name string) bool {
	if name == "*" {
		return true
	}
	return name != "" && !strings.ContainsFunc(name, func(r rune) bool {
		return r == '@' || r == '*' || r == ',' || r == ':' || unicode.IsSpace(r) || unicode.IsControl(r)
	})
}

// validDomain accepts a dot-separated name of letters, digits, '-' and
// '_' (no empty label, labels <= 63, name <= 253): what may follow EHLO or
// the '@' of an address without further quoting.
func validDomain(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 {
			return false
		}
		for _, r := range label {
			if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
				return false
			}
		}
	}
	return true
}

// validHost accepts a domain name or an IP address (IPv6 without
// brackets, as net.JoinHostPort wants it).
func validHost(s string) bool {
	if net.ParseIP(s) != nil {
		return true
	}
	return validDomain(strings.TrimSuffix(s, "."))
}

// validAddrSpec accepts a bare RFC 5322 addr-spec (local@domain), not a
// display name or angle brackets.
func validAddrSpec(s string) bool {
	if strings.ContainsAny(s, "<>\r\n") {
		return false
	}
	a, err := mail.ParseAddress(s)
	return err == nil && a.Name == "" && strings.Contains(a.Address, "@")
}
