package queue

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// FormatList writes the mailq view (relaymail -bp, mailq) of the
// messages waiting to be tried again, in Postfix's layout (its long-id
// variant, postqueue's showq_compat), because monitoring parses it:
// check_mailq and the Munin and Zabbix templates read the last line,
// "Mail queue is empty" or "-- N Kbytes in M Request(s).", and count the
// lines that start with an id. Each message is its id, size, arrival
// time and sender, the last error in parentheses right-aligned at column
// 76 (with when it is tried next), then the recipients still to deliver.
// Messages in failed/ are not waiting: FormatFailed lists them.
func FormatList(w io.Writer, queued []*Envelope, now time.Time) {
	if len(queued) == 0 {
		fmt.Fprintln(w, "Mail queue is empty")
		return
	}
	formatTable(w, queued, now, true)
}

// FormatFailed writes the messages kept in failed/ (mailq --failed): a
// line saying how to requeue or delete them, then the layout of
// FormatList without a next try (they have none), or "No failed
// messages".
func FormatFailed(w io.Writer, failed []*Envelope, now time.Time) {
	if len(failed) == 0 {
		fmt.Fprintln(w, "No failed messages")
		return
	}
	fmt.Fprintln(w, "Failed, not retried: relaymail --requeue ID puts one back in the queue, relaymail --delete ID removes it.")
	formatTable(w, failed, now, false)
}

// formatTable writes envs in Postfix's layout and the summary line.
func formatTable(w io.Writer, envs []*Envelope, now time.Time, nextTry bool) {
	idw := len("----Queue ID-----")
	for _, e := range envs {
		idw = max(idw, len(e.ID))
	}
	fmt.Fprintf(w, "%-*s %8s %-19s %s\n", idw, "----Queue ID-----", "--Size--", "---Arrival Time----", "--Sender/Recipient------")
	var total int64
	for i, e := range envs {
		if i > 0 {
			fmt.Fprintln(w)
		}
		total += e.Size()
		sender := e.From
		if sender == "" {
			sender = "MAILER-DAEMON"
		}
		arrival := e.Created.In(now.Location()).Format("Mon Jan _2 15:04:05")
		fmt.Fprintf(w, "%-*s %8d %19.19s %s\n", idw, e.ID, e.Size(), arrival, oneLine(sender))
		why := oneLine(e.LastError)
		if nextTry && e.NextAttempt.After(now) {
			if why != "" {
				why += "; "
			}
			why += "next try in " + formatAge(e.NextAttempt.Sub(now))
		}
		if why != "" {
			fmt.Fprintf(w, "%*s(%s)\n", max(0, 76-len(why)), "", why)
		}
		for _, r := range e.To {
			fmt.Fprintf(w, "%-*s %8s %-19s %s\n", idw, "", "", "", oneLine(r))
		}
	}
	req := "Requests"
	if len(envs) == 1 {
		req = "Request"
	}
	fmt.Fprintf(w, "\n-- %d Kbytes in %d %s.\n", total/1024, len(envs), req)
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
