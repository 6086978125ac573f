package queue

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// FormatList writes the mailq view (relaymail -bp, mailq), laid out like
// Postfix's so that people and scripts that read it find their way: one
// block per message with its id, size, age, attempts and sender, the
// last error in parentheses, then the recipients still to deliver; a
// summary line; "Mail queue is empty" when nothing is queued. Failed
// messages follow in a section of their own, headed as such, with how
// to retry or delete them.
func FormatList(w io.Writer, queued, failed []*Envelope, now time.Time) {
	if len(queued) == 0 {
		fmt.Fprintln(w, "Mail queue is empty")
	} else {
		formatSection(w, queued, now)
	}
	if len(failed) > 0 {
		fmt.Fprintf(w, "\nFailed, not retried (relaymail --requeue ID to retry, --delete ID to remove):\n")
		formatSection(w, failed, now)
	}
}

func formatSection(w io.Writer, envs []*Envelope, now time.Time) {
	idw := len("-Queue ID-")
	for _, e := range envs {
		idw = max(idw, len(e.ID))
	}
	fmt.Fprintf(w, "%-*s %8s %7s %5s  %s\n", idw, "-Queue ID-", "--Size--", "--Age--", "Tries", "-Sender/Recipient-------")
	indent := strings.Repeat(" ", idw+1+8+1+7+1+5+2)
	var total int64
	for _, e := range envs {
		total += e.Size()
		sender := e.Sender
		if sender == "" {
			sender = "MAILER-DAEMON"
		}
		fmt.Fprintf(w, "%-*s %8d %7s %5d  %s\n", idw, e.ID, e.Size(), formatAge(now.Sub(e.Created)), e.Attempts, oneLine(sender))
		if e.LastError != "" || e.NextAttempt.After(now) {
			msg := oneLine(e.LastError)
			if e.NextAttempt.After(now) {
				if msg != "" {
					msg += "; "
				}
				msg += "next try in " + formatAge(e.NextAttempt.Sub(now))
			}
			fmt.Fprintf(w, "(%s)\n", msg)
		}
		for _, r := range e.Recipients {
			fmt.Fprintf(w, "%s%s\n", indent, oneLine(r))
		}
		fmt.Fprintln(w)
	}
	n := len(envs)
	req := "Requests"
	if n == 1 {
		req = "Request"
	}
	fmt.Fprintf(w, "-- %d Kbytes in %d %s.\n", (total+1023)/1024, n, req)
}

// formatAge renders a duration the way an admin reads a queue: its two
// largest units, rounded down ("45s", "12m", "2h05m", "3d04h").
func formatAge(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	switch {
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d/time.Second))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d/time.Minute))
	case d < 24*time.Hour:
		return fmt.Sprintf("%dh%02dm", int(d/time.Hour), int(d%time.Hour/time.Minute))
	default:
		return fmt.Sprintf("%dd%02dh", int(d/(24*time.Hour)), int(d%(24*time.Hour)/time.Hour))
	}
}

// oneLine keeps a value on its line: each run of control characters
// (a folded reply's CR LF) becomes one space.
func oneLine(s string) string {
	parts := strings.FieldsFunc(s, func(r rune) bool { return r < ' ' || r == 0x7f })
	return strings.Join(parts, " ")
}
