package modes

import (
	"io"
	"strings"

	"relaymail/queue"
)

// cleanLines passes each line written to it through queue.OneLine, so
// control characters a server sent (in a reply, a greeting, a
// certificate name) never reach a terminal raw; line breaks are kept.
// It is the writer for the -v trace and for --check.
type cleanLines struct{ w io.Writer }

func (c cleanLines) Write(p []byte) (int, error) {
	var b strings.Builder
	for _, l := range strings.SplitAfter(string(p), "\n") {
		text, nl := strings.CutSuffix(l, "\n")
		b.WriteString(queue.OneLine(text))
		if nl {
			b.WriteByte('\n')
		}
	}
	if _, err := io.WriteString(c.w, b.String()); err != nil {
		return 0, err
	}
	return len(p), nil
}
