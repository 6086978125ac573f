// Package config owns relaymail's configuration file (SPEC §5): it decodes
// the TOML strictly (an unknown or misspelt key is an error, so a typo
// cannot silently disable TLS), fills in every default, validates the
// result, and hands back a resolved Config whose shape is independent of
// the file's. It also owns the rules about secrets (SPEC §9): a config file
// or password_file readable by all users is refused, password_command runs
// with a clean environment, and no error or formatted value ever shows a
// password.
//
// Each smarthost is resolved once into the relay.Host that relay dials
// (Smarthost embeds it): the TLS mode is relay's, the port default is
// relay.TLSMode.DefaultPort, the timeouts default to relay's.
//
// Every error from Load and Parse wraps ErrConfig and is one line naming
// the file, the line:column where TOML gives one, and what is wrong.
package config

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"time"

	"relaymail/relay"
)

// DefaultPath is the system configuration file (SPEC §1), used when
// neither -C nor $RELAYMAIL_CONFIG names another.
const DefaultPath = "/etc/relaymail.toml"

// ExamplePath is where the package installs the documented example
// (packaging/build-deb: conf/*.toml into the doc directory's examples/),
// named in the error for a missing config file so the administrator knows
// where to start.
const ExamplePath = "/usr/share/doc/relaymail/examples/relaymail.toml"

// maxFileSize bounds how much of a config file is read: a config is a few
// kilobytes, and the file may be the wrong one (-C /dev/zero).
const maxFileSize = 1 << 20

// Config is a loaded, defaulted and validated configuration. Nothing in it
// needs further checking: ports are resolved from the TLS mode, durations
// are parsed, aliases keys are lower case, and the CA file is parsed.
type Config struct {
	Path              string // the file it came from
	Hostname          string // EHLO name and Message-ID domain
	Domain            string // qualifies bare names and the default sender
	From              string // envelope sender when the caller gives none; "" = not set
	FromOverride      bool   // honour -f / -r
	RewriteFromHeader bool   // rewrite the From: header to the envelope sender
	AliasesFile       string // sendmail-format aliases file; "" = none
	// Aliases maps a lower-case local name, or "*" for any other bare
	// name, to its targets. It wins over AliasesFile.
	Aliases           map[string][]string
	Log               string   // "syslog" | "stderr" | "none" | absolute path; "" = unset (logging.Default)
	Listen            []string // host:port addresses for -bd
	ListenAllowRemote bool     // let -bd listen on non-loopback addresses
	// -bd's limits (issue 19.6), so that idle or slow local clients cannot
	// lock the others out.
	ListenMaxSessions    int           // sessions served at once
	ListenCommandTimeout time.Duration // a client's silence while a command is due (RFC 5321 §4.5.3.2.7)
	ListenDataTimeout    time.Duration // the whole of DATA, 354 to the final dot
	ListenWaitTimeout    time.Duration // a client over ListenMaxSessions waiting for a session, then 421 4.3.2
	// Smarthosts holds [smarthost] first, then each [[fallback]] in
	// file order; it always has at least one element.
	Smarthosts []Smarthost
	Queue      Queue
}

// Smarthost is one relay: [smarthost] or a [[fallback]]. Each stands
// alone; a fallback inherits nothing from [smarthost].
//
// The config resolves each one once into the relay.Host that relay dials
// (its one TLS mode, the port defaulted by relay.TLSMode.DefaultPort, the
// CA file loaded, the timeouts defaulted, Password set when a password
// source is); nothing is copied field by field on the way to the wire.
// Only the OAuth2 token source is added later, by delivery, since it
// needs the queue directory for its cache.
//
// The password source is unexported and Smarthost formats itself (String,
// Format), so printing a Smarthost or a Config with any fmt verb shows
// "<redacted>" in place of the password.
type Smarthost struct {
	relay.Host
	CAFile string // "" = system roots; RootCAs holds it parsed
	// OAuth2 is [smarthost.oauth2]: the access token for XOAUTH2 or
	// OAUTHBEARER is got, cached and refreshed by relaymail (package
	// oauth). nil when not configured; it then replaces the password.
	OAuth2 *OAuth2

	pw *passwordSource // nil when no password source is configured
}

// QueueMode says when a message goes through the queue.
type QueueMode string

// The queue modes of SPEC §5.
const (
	QueueFallback QueueMode = "fallback" // try now, queue on a temporary failure
	QueueAlways   QueueMode = "always"   // always queue, deliver from the runner
	QueueNever    QueueMode = "never"    // never queue; fail instead
)

// Queue is the [queue] table, resolved.
type Queue struct {
	Dir    string    // absolute spool directory
	Mode   QueueMode // when to queue
	MaxAge time.Duration
}

// Load reads, decodes and validates the config file at path, and refuses
// it if it holds an inline password (or names a password_file) readable by
// all users, or if anyone may write it (SPEC §9). Every error wraps
// ErrConfig.
func Load(path string) (*Config, error) {
	f, err := OpenRegular(path)
	if err != nil {
		return nil, openError(path, err)
	}
	defer f.Close()
	// Stat the opened file, not the path: what we check is what we read.
	st, err := f.Stat()
	if err != nil {
		return nil, fileError(path, err, "cannot stat it: %v", errText(err))
	}
	data, err := io.ReadAll(io.LimitReader(f, maxFileSize+1))
	if err != nil {
		return nil, fileError(path, err, "cannot read it: %v", errText(err))
	}
	if len(data) > maxFileSize {
		return nil, fileError(path, nil, "is larger than %d bytes", maxFileSize)
	}
	cfg, err := systemEnv.parse(data, path)
	if err != nil {
		return nil, err
	}
	if err := cfg.checkPermissions(st.Mode()); err != nil {
		return nil, err
	}
	return cfg, nil
}

// Parse decodes and validates data as if read from path (which is only
// used in messages). It does no permission checks; it exists for tests
// and tools that already hold the bytes. Every error wraps ErrConfig.
func Parse(data []byte, path string) (*Config, error) {
	return systemEnv.parse(data, path)
}

func openError(path string, err error) error {
	switch {
	case errors.Is(err, fs.ErrNotExist) && path == DefaultPath:
		return fileError(path, err, "no such file (create it from %s, or name another with -C)", ExamplePath)
	case errors.Is(err, fs.ErrNotExist):
		// Named with -C or $RELAYMAIL_CONFIG: the caller chose it.
		return fileError(path, err, "no such file (an example is %s)", ExamplePath)
	case errors.Is(err, errNotRegular):
		if st, serr := os.Stat(path); serr == nil && st.IsDir() {
			return fileError(path, err, "is a directory, not a file")
		}
		return fileError(path, err, "is not a regular file")
	case errors.Is(err, fs.ErrPermission):
		return fileError(path, err, "permission denied (relaymail must be installed setgid relaymail and the file mode 0640 root:relaymail)")
	default:
		return fileError(path, err, "cannot open it: %v", errText(err))
	}
}

func fileError(path string, cause error, format string, args ...any) error {
	return &Error{Path: path, Err: cause, Problems: []Problem{{Msg: fmt.Sprintf(format, args...)}}}
}

// errText is the text of an OS error without the path, which the message
// already names.
func errText(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}
