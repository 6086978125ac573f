package relay

import (
	"io"
	"strconv"
	"sync"
)

// redacted replaces every AUTH payload in the trace.
const redacted = "<redacted>"

// tracer writes the SMTP dialogue for -v: "<-- " lines from the server,
// "--> " lines from the client. A nil tracer or writer traces nothing, and
// write errors are ignored: a broken stderr must not fail a delivery.
type tracer struct {
	mu sync.Mutex
	w  io.Writer
}

func (t *tracer) line(prefix, s string) {
	if t == nil || t.w == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	_, _ = io.WriteString(t.w, prefix+s+"\n")
}

// server traces one line the server sent.
func (t *tracer) server(s string) { t.line("<-- ", s) }

// client traces one line the client sent; callers pass the redacted form
// of anything secret.
func (t *tracer) client(s string) { t.line("--> ", s) }

// body traces the message body as a count, never its content.
func (t *tracer) body(n int64) {
	t.client("<message body, " + strconv.FormatInt(n, 10) + " octets>")
}
