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
	"log/slog"
	"log/syslog"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

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
		w, err := syslog.New(syslog.LOG_MAIL|syslog.LOG_INFO, tag)
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
