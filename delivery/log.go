package delivery

import (
	"log/slog"
	"strings"
	"time"
)

// logLine is one line of the log SPEC §8 promises: one per delivery
// attempt (per group of recipients that shared an outcome), made of
// key=value pairs, never a secret. Empty fields are left out.
type logLine struct {
	id, from   string
	to         []string
	relay, tls string
	status     string // sent, queued, deferred, bounced, failed, expired
	code       int
	dsn, msg   string
	size       int64
	delay      time.Duration
	attempts   int
}

// reply fills code, dsn and msg from the error a server's reply (or the
// transport) caused.
func (l logLine) reply(err error) logLine {
	l.code, l.dsn, l.msg = replyFields(err)
	return l
}

func (l logLine) write(log *slog.Logger) {
	attrs := []any{"id", l.id, "from", l.from, "to", strings.Join(l.to, ",")}
	if l.relay != "" {
		attrs = append(attrs, "relay", l.relay)
	}
	if l.tls != "" {
		attrs = append(attrs, "tls", l.tls)
	}
	attrs = append(attrs, "status", l.status)
	if l.code != 0 {
		attrs = append(attrs, "code", l.code)
	}
	if l.dsn != "" {
		attrs = append(attrs, "dsn", l.dsn)
	}
	if l.msg != "" {
		attrs = append(attrs, "msg", l.msg)
	}
	attrs = append(attrs, "size", l.size, "delay", l.delay.Round(time.Millisecond).String())
	if l.attempts > 0 {
		attrs = append(attrs, "attempts", l.attempts)
	}
	log.Info("", attrs...)
}
