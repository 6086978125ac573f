package queue

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"relaymail/internal/heaptest"
	"relaymail/message"
)

// TestWalkReadsLinesLikeEnvelopes: the envelope line alone, checked
// against the file's size, accepts and refuses the files that the whole
// envelope does (readEnvLine against readEnv), plain and combined, with
// a line longer than one read, and Walk names each refused file once.
func TestWalkReadsLinesLikeEnvelopes(t *testing.T) {
	q := openTest(t)
	var many []string
	for i := range 400 {
		many = append(many, fmt.Sprintf("recipient-%03d@example.com", i))
	}
	tests := []struct {
		name  string
		plain bool
		to    []string
		edit  func(data []byte) []byte // nil: intact
	}{
		{"combined", false, nil, nil},
		{"plain", true, nil, nil},
		{"long line combined", false, many, nil},
		{"long line plain", true, many, nil},
		{"combined short by one", false, nil, func(d []byte) []byte { return d[:len(d)-1] }},
		{"combined one too many", false, nil, func(d []byte) []byte { return append(d, 'x') }},
		{"plain short by one", true, nil, func(d []byte) []byte { return d[:len(d)-1] }},
		{"plain one too many", true, nil, func(d []byte) []byte { return append(d, 'x') }},
		{"no newline", true, nil, func(d []byte) []byte { return d[:bytes.IndexByte(d, '\n')] }},
		{"empty", true, nil, func(d []byte) []byte { return nil }},
	}
	want := map[string]bool{} // id -> listed
	names := map[string]string{}
	for _, tt := range tests {
		body := []byte("body of " + tt.name + "\n")
		env := testEnvelope([]byte("Subject: " + tt.name + "\n\n"))
		if tt.to != nil {
			env.To = tt.to
		}
		if tt.plain {
			commitPlain(t, q, env, body)
		} else if err := q.Enqueue(env, bytes.NewReader(body)); err != nil {
			t.Fatal(err)
		}
		path := q.path(dirEnv, env.ID)
		if tt.edit != nil {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, tt.edit(data), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		whole, werr := readEnv(path)
		line, _, lerr := readEnvLine(path, nil)
		if (werr == nil) != (lerr == nil) {
			t.Errorf("%s: readEnv: %v; readEnvLine: %v", tt.name, werr, lerr)
		}
		// readEnv reads the line and the header by parts: it must give
		// what decoding the whole file gives.
		data, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		full, ferr := decodeEnvelope(data)
		if (werr == nil) != (ferr == nil) {
			t.Errorf("%s: readEnv: %v; the whole file: %v", tt.name, werr, ferr)
		}
		if werr == nil && ferr == nil && !reflect.DeepEqual(whole, full) {
			t.Errorf("%s: readEnv = %+v, the whole file = %+v", tt.name, whole, full)
		}
		if werr == nil && lerr == nil {
			line.Header = whole.Header
			if !reflect.DeepEqual(line, whole) {
				t.Errorf("%s: readEnvLine = %+v, readEnv = %+v", tt.name, line, whole)
			}
		}
		want[env.ID] = tt.edit == nil
		names[env.ID] = tt.name
	}

	list, err := q.List()
	for _, e := range list {
		if !want[e.ID] {
			t.Errorf("List lists %s (%s)", e.ID, names[e.ID])
		}
		delete(want, e.ID)
	}
	for id, listed := range want {
		n := 0
		if err != nil {
			n = strings.Count(err.Error(), q.path(dirEnv, id))
		}
		switch {
		case listed:
			t.Errorf("List does not list %s (%s)", id, names[id])
		case n != 1:
			t.Errorf("List names %s (%s) %d times, want once:\n%v", id, names[id], n, err)
		}
	}
}

// TestFormatListStreams: mailq lists a queue in the memory of a message
// or two, whatever the queue's size (issue 13.4): when the table's first
// line is written, the live heap has not grown by the queue's header
// blocks (64 messages of 512 KiB of header, 32 MiB in all), and the
// output is the one the envelopes held in memory give.
func TestFormatListStreams(t *testing.T) {
	q := openTest(t)
	line := "X-Pad: " + strings.Repeat("x", 90) + "\n"
	header := []byte(strings.Repeat(line, (512<<10)/len(line)) + "Subject: a large header\n\n")
	const n = 64
	for range n {
		env := &Envelope{Envelope: message.Envelope{From: "app@example.com", To: []string{"rcpt@example.org"}}, Header: header}
		if err := q.Enqueue(env, strings.NewReader("body\n")); err != nil {
			t.Fatal(err)
		}
	}
	header = nil
	var out bytes.Buffer
	probe, growth := heaptest.GrowthAtFirstWrite(&out)
	w := q.Walk()
	FormatList(probe, w.All(), w.IDWidth(), testNow)
	if err := w.Err(); err != nil {
		t.Fatal(err)
	}
	if grown := growth(); grown > 8<<20 {
		t.Errorf("the live heap grew by %.1f MiB before mailq's first line: it holds the queue's envelopes", float64(grown)/(1<<20))
	}
	envs, err := q.List()
	if err != nil || len(envs) != n {
		t.Fatalf("List = %d envelopes, %v", len(envs), err)
	}
	var held bytes.Buffer
	FormatList(&held, slices.Values(envs), IDWidth(envs), testNow)
	if !bytes.Equal(out.Bytes(), held.Bytes()) {
		t.Errorf("streamed listing differs from the one of the envelopes in memory:\n%s\n---\n%s", out.Bytes(), held.Bytes())
	}
	if !strings.HasSuffix(out.String(), fmt.Sprintf(" in %d Requests.\n", n)) {
		t.Errorf("summary line: %q", out.String()[max(0, out.Len()-60):])
	}
}

// TestWalkFailed: WalkFailed lists failed/ as ListFailed did, a message
// without a body there included.
func TestWalkFailed(t *testing.T) {
	q := openTest(t)
	e := enqueue(t, q, 10)
	it, err := q.Lock(e.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := it.Fail(); err != nil {
		t.Fatal(err)
	}
	it.Unlock()
	os.Remove(filepath.Join(q.Dir(), dirFailedBody, e.ID))
	w := q.WalkFailed()
	var got []string
	for w.Next() {
		got = append(got, w.ID())
	}
	if !slices.Equal(got, []string{e.ID}) || w.Err() != nil || w.IDWidth() != len(e.ID) {
		t.Errorf("WalkFailed = %v, %v, width %d", got, w.Err(), w.IDWidth())
	}
}

// testNow is a fixed now for listings compared with each other.
var testNow = time.Date(2025, 11, 29, 18, 0, 0, 0, time.UTC)
