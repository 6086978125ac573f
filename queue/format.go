package queue

import (
	"fmt"
	"io"
	"iter"
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
//
// The messages are written as queued yields them, one at a time, and
// only the totals are kept: a queue of any size is listed in the memory
// of one message. idWidth is the length of the longest id among them
// (Walk.IDWidth), which sets the width of the id column.
func FormatList(w io.Writer, queued iter.Seq[*Envelope], idWidth int, now time.Time) {
	t := table{w: w, idw: idWidth, now: now, nextTry: true}
	t.write(queued, "Mail queue is empty")
}

// FormatFailed writes the messages kept in failed/ (mailq --failed): a
// line saying how to requeue or delete them, then the layout of
// FormatList without a next try (they have none), or "No failed
// messages". It streams them as FormatList does.
func FormatFailed(w io.Writer, failed iter.Seq[*Envelope], idWidth int, now time.Time) {
	t := table{w: w, idw: idWidth, now: now,
		intro: "Failed, not retried: relaymail --requeue ID puts one back in the queue, relaymail --delete ID removes it."}
	t.write(failed, "No failed messages")
}

// IDWidth is the length of the longest id in envs, for FormatList and
// FormatFailed given envelopes held in memory.
func IDWidth(envs []*Envelope) int {
	n := 0
	for _, e := range envs {
		n = max(n, len(e.ID))
	}
	return n
}

// table writes messages in Postfix's layout as they come, the heading
// before the first, and keeps the count and total size for the summary
// line (end).
type table struct {
	w       io.Writer
	idw     int
	now     time.Time
	nextTry bool   // say when each message is tried next
	intro   string // a line before the heading, if any
	n       int
	total   int64
}

// write writes the messages envs yields, then the summary line, or the
// line empty when there was none.
func (t *table) write(envs iter.Seq[*Envelope], empty string) {
	for e := range envs {
		t.add(e)
	}
	if t.n == 0 {
		fmt.Fprintln(t.w, empty)
		return
	}
	t.end()
}

func (t *table) add(e *Envelope) {
	w := t.w
	if t.n == 0 {
		t.idw = max(t.idw, len("----Queue ID-----"))
		if t.intro != "" {
			fmt.Fprintln(w, t.intro)
		}
		fmt.Fprintf(w, "%-*s %8s %-19s %s\n", t.idw, "----Queue ID-----", "--Size--", "---Arrival Time----", "--Sender/Recipient------")
	} else {
		fmt.Fprintln(w)
	}
	t.n++
	t.total += e.Size()
	sender := e.From
	if sender == "" {
		sender = "MAILER-DAEMON"
	}
	arrival := e.Created.In(t.now.Location()).Format("Mon Jan _2 15:04:05")
	fmt.Fprintf(w, "%-*s %8d %19.19s %s\n", t.idw, e.ID, e.Size(), arrival, oneLine(sender))
	why := oneLine(e.LastError)
	if t.nextTry && e.NextAttempt.After(t.now) {
		if why != "" {
			why += "; "
		}
		why += "next try in " + formatAge(e.NextAttempt.Sub(t.now))
	}
	if why != "" {
		fmt.Fprintf(w, "%*s(%s)\n", max(0, 76-len(why)), "", why)
	}
	for _, r := range e.To {
		fmt.Fprintf(w, "%-*s %8s %-19s %s\n", t.idw, "", "", "", oneLine(r))
	}
}

// end writes the summary line.
func (t *table) end() {
	req := "Requests"
	if t.n == 1 {
		req = "Request"
	}
	fmt.Fprintf(t.w, "\n-- %d Kbytes in %d %s.\n", t.total/1024, t.n, req)
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
