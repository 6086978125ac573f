package main

import (
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"testing"
)

// TestInitCheap: relaymail's own packages do next to nothing at start-up.
// Every sendmail call pays package initialisation before it reads a
// byte, so a table or regexp built there is paid by each cron job and
// each PHP mail() (issue 13). The runtime's inittrace counts each
// package's allocations, which, unlike time, do not depend on the
// machine's load.
func TestInitCheap(t *testing.T) {
	cmd := exec.Command(binary, "--version")
	cmd.Env = append(os.Environ(), "GODEBUG=inittrace=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("relaymail --version: %v\n%s", err, out)
	}
	// init relaymail/config @3.8 ms, 0.21 ms clock, 17136 bytes, 129 allocs
	line := regexp.MustCompile(`(?m)^init (relaymail(?:/\S+)?) @.*, (\d+) bytes, (\d+) allocs$`)
	const maxBytes, maxAllocs = 8 << 10, 40
	seen := 0
	for _, m := range line.FindAllStringSubmatch(string(out), -1) {
		seen++
		bytes, _ := strconv.Atoi(m[2])
		allocs, _ := strconv.Atoi(m[3])
		if bytes > maxBytes || allocs > maxAllocs {
			t.Errorf("init %s: %d bytes in %d allocs, want at most %d bytes and %d allocs (compile on first use instead)",
				m[1], bytes, allocs, maxBytes, maxAllocs)
		}
	}
	if seen == 0 {
		t.Fatalf("no init lines for relaymail's packages in:\n%s", out)
	}
}
