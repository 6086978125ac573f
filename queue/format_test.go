package queue

import (
	"bytes"
	"flag"
	"math/rand/v2"
	"os"
	"path/filepath"
	"regexp"
	"relaymail/message"
	"slices"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func TestBackoff(t *testing.T) {
	tests := []struct {
		attempts int
		base     time.Duration
	}{
		{-1, 0},
		{0, 0},
		{1, time.Minute},
		{2, 2 * time.Minute},
		{3, 4 * time.Minute},
		{4, 8 * time.Minute},
		{5, 16 * time.Minute},
		{6, 32 * time.Minute},
		{7, time.Hour},
		{8, time.Hour},
		{100, time.Hour},
		{1 << 30, time.Hour},
	}
	r := rand.New(rand.NewPCG(7, 7))
	for _, tt := range tests {
		lo, hi := tt.base*8/10, tt.base*12/10
		var sum time.Duration
		const n = 2000
		seenLow, seenHigh := false, false
		for range n {
			d := Backoff(tt.attempts, r)
			if d < lo || d > hi {
				t.Fatalf("Backoff(%d) = %v, want within [%v, %v]", tt.attempts, d, lo, hi)
			}
			sum += d
			seenLow = seenLow || d < tt.base*85/100
			seenHigh = seenHigh || d > tt.base*115/100
		}
		if tt.base == 0 {
			continue
		}
		// The jitter is spread over the whole ±20%, centred on the base.
		if mean := sum / n; mean < tt.base*97/100 || mean > tt.base*103/100 {
			t.Errorf("Backoff(%d): mean %v, want about %v", tt.attempts, mean, tt.base)
		}
		if !seenLow || !seenHigh {
			t.Errorf("Backoff(%d): jitter does not reach both ends of ±20%%", tt.attempts)
		}
	}
	// The same source gives the same schedule; nil uses the global one.
	a, b := rand.New(rand.NewPCG(1, 1)), rand.New(rand.NewPCG(1, 1))
	for i := 1; i < 10; i++ {
		if x, y := Backoff(i, a), Backoff(i, b); x != y {
			t.Errorf("Backoff(%d) differs with equal sources: %v, %v", i, x, y)
		}
	}
	if d := Backoff(3, nil); d < 192*time.Second || d > 288*time.Second {
		t.Errorf("Backoff(3, nil) = %v", d)
	}
}

func TestFormatList(t *testing.T) {
	now := time.Date(2025, 11, 29, 18, 0, 0, 0, time.UTC)
	hdr := bytes.Repeat([]byte("h"), 300)
	queued := []*Envelope{
		{
			ID: "0SGPW8A4QG30ABCDEFGH", Envelope: message.Envelope{From: "cron@host.example.com",
				To: []string{"root@example.com"}}, Created: now.Add(-45 * time.Second),
			Header: hdr, BodySize: 200,
		},
		{
			ID: "0SGPW8A4QG31ZYXWVTSR", Envelope: message.Envelope{From: "www-data@host.example.com",
				To: []string{"alice@example.com", "bob@example.org"}}, Delivered: []string{"carol@example.net"},
			Created: now.Add(-2*time.Hour - 5*time.Minute), Attempts: 4, NextAttempt: now.Add(12 * time.Minute),
			LastError: "smtp.example.com: 421 4.3.2 try again later\r\n(second line)", Header: hdr, BodySize: 5000,
		},
	}
	failed := []*Envelope{
		{
			ID: "0SGPW8A4QG32FAILEDXX", Envelope: message.Envelope{From: "",
				To: []string{"nobody@example.com"}}, Created: now.Add(-5*24*time.Hour - 3*time.Hour),
			Attempts: 31, LastError: "smtp.example.com: 550 5.1.1 <nobody@example.com>: no such user",
			Header: hdr, BodySize: 1,
		},
	}
	tests := []struct {
		name   string
		envs   []*Envelope
		failed bool // FormatFailed, else FormatList
	}{
		{"empty", nil, false},
		{"queued", queued, false},
		{"failed-none", nil, true},
		{"failed", failed, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			if tt.failed {
				FormatFailed(&buf, slices.Values(tt.envs), IDWidth(tt.envs), now)
			} else {
				FormatList(&buf, slices.Values(tt.envs), IDWidth(tt.envs), now)
			}
			golden := filepath.Join("testdata", "mailq-"+tt.name+".txt")
			if *update {
				if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(buf.Bytes(), want) {
				t.Errorf("FormatList output differs from %s (rerun with -update):\n%s", golden, buf.Bytes())
			}
			out := buf.String()
			lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
			last := lines[len(lines)-1]
			// The lines monitoring parses, exactly as Postfix writes them.
			switch {
			case len(tt.envs) == 0 && !tt.failed:
				if out != "Mail queue is empty\n" {
					t.Errorf("empty queue: %q", out)
				}
			case len(tt.envs) > 0:
				want := regexp.MustCompile(`^-- \d+ Kbytes in \d+ Requests?\.$`)
				if !want.MatchString(last) || lines[len(lines)-2] != "" {
					t.Errorf("summary %q, want it after an empty line, matching %v", last, want)
				}
			}
			if strings.Contains(out, "next try") == tt.failed && len(tt.envs) > 0 {
				t.Errorf("next try shown=%v for failed=%v:\n%s", !tt.failed, tt.failed, out)
			}
			if (tt.failed && len(tt.envs) > 0) != strings.Contains(out, "--requeue ID") {
				t.Errorf("how to requeue shown for failed=%v:\n%s", tt.failed, out)
			}
			for _, e := range tt.envs {
				for _, s := range append([]string{e.ID}, e.To...) {
					if !strings.Contains(out, s) {
						t.Errorf("output lacks %q", s)
					}
				}
			}
			if strings.Contains(out, "\r") {
				t.Error("a control character from the last error reached the output")
			}
		})
	}
}

func TestFormatAge(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{-time.Second, "0s"},
		{0, "0s"},
		{59 * time.Second, "59s"},
		{time.Minute, "1m"},
		{59*time.Minute + 59*time.Second, "59m"},
		{time.Hour, "1h00m"},
		{2*time.Hour + 5*time.Minute, "2h05m"},
		{24 * time.Hour, "1d00h"},
		{5*24*time.Hour + 3*time.Hour + 59*time.Minute, "5d03h"},
	}
	for _, tt := range tests {
		if got := formatAge(tt.d); got != tt.want {
			t.Errorf("formatAge(%v) = %q, want %q", tt.d, got, tt.want)
		}
	}
}
