// Package logging opens relaymail's log (SPEC §8): syslog, stderr, a
// file or nothing, with one line per record made of key=value pairs.
//
// Many callers put sendmail's stdout and stderr on /dev/null (atd, sudo,
// mailutils), so the log, not stderr, is where an administrator finds out
// what happened to a message.
package logging

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"log/syslog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// syslogSockets are where a syslog daemon listens, in the order
// log/syslog tries them.
var syslogSockets = []string{"/dev/log", "/var/run/syslog", "/var/run/log"}

// syslogOverride, when set, is the only syslog socket.
var syslogOverride string

// SetSyslogSocket makes path the only place syslog is looked for (tests
// use it to have no syslog, or one of their own). The caller decides
// whether to trust path: relaymail does only when it runs without a
// privilege its caller lacks (SPEC §9), where the caller could as well
// pass its own config with any log it likes.
func SetSyslogSocket(path string) {
	syslogOverride = path
	syslogSockets = []string{path}
}

// haveSyslog reports whether a syslog socket is there to log to.
func haveSyslog() bool {
	for _, p := range syslogSockets {
		if st, err := os.Stat(p); err == nil && st.Mode().Type() == fs.ModeSocket {
			return true
		}
	}
	return false
}

// Default is where the log goes when the config does not say (log
// unset): syslog when a syslog socket exists. Without one (a container,
// a minimal image) a service (-bd, -q, -q30m) logs to stderr, which its
// supervisor collects; every other run logs nothing, because callers
// such as PHP and cron read any output on stderr as a failure, and SPEC
// §6 has a delivered or queued message print nothing.
func Default(service bool) string {
	switch {
	case haveSyslog():
		return "syslog"
	case service:
		return "stderr"
	default:
		return "none"
	}
}

// Open returns a logger writing to target: "syslog" (facility mail),
// "stderr", "none", or an absolute file path (appended to). The closer
// releases the target. When syslog cannot be reached, the log is
// discarded rather than written to stderr: relaymail must stay silent on
// success.
func Open(target, tag string, stderr io.Writer) (*slog.Logger, io.Closer, error) {
	switch target {
	case "none", "":
		return slog.New(discard{}), io.NopCloser(nil), nil
	case "stderr":
		return slog.New(NewHandler(stderr, true)), io.NopCloser(nil), nil
	case "syslog":
		w, err := dialSyslog(tag)
		if err != nil {
			return slog.New(discard{}), io.NopCloser(nil), nil
		}
		return slog.New(NewHandler(w, false)), w, nil
	default:
		f, err := os.OpenFile(target, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			return slog.New(discard{}), io.NopCloser(nil), fmt.Errorf("logging: %w", err)
		}
		return slog.New(NewHandler(f, true)), f, nil
	}
}

// dialSyslog connects to the local syslog daemon. log/syslog writes the
// local format (no host name) only when it picks the socket itself, which
// journald needs to find the tag; a socket set with SetSyslogSocket (a
// test's) gets the network format.
func dialSyslog(tag string) (*syslog.Writer, error) {
	const prio = syslog.LOG_MAIL | syslog.LOG_INFO
	if syslogOverride == "" {
		return syslog.New(prio, tag)
	}
	w, err := syslog.Dial("unixgram", syslogOverride, prio, tag)
	if err != nil {
		w, err = syslog.Dial("unix", syslogOverride, prio, tag)
	}
	return w, err
}

// Handler writes each record as one line: an optional timestamp, the
// message when there is one, then key=value pairs in the order given.
// Values that need it are quoted Go-style, so a line always parses back.
type Handler struct {
	mu        *sync.Mutex
	w         io.Writer
	timestamp bool
	attrs     []slog.Attr
}

// NewHandler returns a Handler writing to w; timestamp prefixes each line
// with the local time (syslog adds its own).
func NewHandler(w io.Writer, timestamp bool) *Handler {
	return &Handler{mu: new(sync.Mutex), w: w, timestamp: timestamp}
}

// Enabled reports true for every level at or above Info.
func (h *Handler) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }

// Handle formats and writes one record.
func (h *Handler) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	if h.timestamp {
		b.WriteString(r.Time.Format(time.RFC3339))
		b.WriteByte(' ')
	}
	if r.Level != slog.LevelInfo {
		b.WriteString("level=" + strings.ToLower(r.Level.String()) + " ")
	}
	if r.Message != "" {
		b.WriteString(r.Message)
		b.WriteByte(' ')
	}
	for _, a := range h.attrs {
		writeAttr(&b, a)
	}
	r.Attrs(func(a slog.Attr) bool {
		writeAttr(&b, a)
		return true
	})
	line := strings.TrimRight(b.String(), " ") + "\n"
	h.mu.Lock()
	defer h.mu.Unlock()
	_, err := io.WriteString(h.w, line)
	return err
}

func writeAttr(b *strings.Builder, a slog.Attr) {
	if a.Equal(slog.Attr{}) {
		return
	}
	b.WriteString(a.Key)
	b.WriteByte('=')
	b.WriteString(quote(a.Value.Resolve().String()))
	b.WriteByte(' ')
}

// quote leaves simple values bare and quotes the rest.
func quote(s string) string {
	if s == "" {
		return `""`
	}
	if !utf8.ValidString(s) {
		return strconv.Quote(s)
	}
	for _, r := range s {
		if r <= ' ' || r == '=' || r == '"' || r == '\\' || r == 0x7f {
			return strconv.Quote(s)
		}
	}
	return s
}

// WithAttrs returns a handler that adds attrs to every record.
func (h *Handler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), attrs...)
	return &c
}

// WithGroup is not used by relaymail; groups are flattened.
func (h *Handler) WithGroup(string) slog.Handler { return h }

type discard struct{}

func (discard) Enabled(context.Context, slog.Level) bool  { return false }
func (discard) Handle(context.Context, slog.Record) error { return nil }
func (d discard) WithAttrs([]slog.Attr) slog.Handler      { return d }
func (d discard) WithGroup(string) slog.Handler           { return d }
