package main

import (
	"regexp"
	"testing"

	"relaymail/internal/smtptest"
)

// helpFlags is every option of SPEC §2, the modes it refuses, and
// relaymail's own: --help names each (packaging/packaging_test.go holds
// the same list for the manual page).
var helpFlags = []string{
	"-bm", "-bs", "-bd", "-bp", "-bi", "-bv", "-q", "-q30m", "-t", "-i", "-oi", "-O IgnoreDots",
	"-f", "-r", "-F", "-N", "-R", "-V", "-B", "-v", "-odq", "-odb", "-d0.1", "-C",
	"--check", "--dry-run", "--help", "--version", "--requeue", "--delete", "--", "mailq", "newaliases",
	"-oem", "-oep", "-oee", "-oeq", "-oew", "-odi", "-om", "-o7", "-o8", "-oA", "-O", "-h", "-L",
	"-G", "-U", "-X", "-Am", "-Ac", "-c", "-m", "-n", "-s", "-x", "-e", "-p",
	"-bD", "-bt", "-bh", "-bH", "-bP", "-bl",
}

// TestHelp: --help lists every flag, in lines a terminal shows whole.
func TestHelp(t *testing.T) {
	t.Parallel()
	h := newHarness(t, smtptest.Options{}, "", "")
	res := h.run([]string{"sendmail", "--help"}, nil, stdinNone)
	if res.code != 0 || res.stderr != "" {
		t.Fatalf("exit %d, stderr %q", res.code, res.stderr)
	}
	for _, flag := range helpFlags {
		// A flag is a word of its own: not a prefix of a longer one.
		re := regexp.MustCompile(`(^|[\s,(\[|])` + regexp.QuoteMeta(flag) + `($|[\s,.:)\[\]|'A-Z])`)
		if !re.MatchString(res.stdout) {
			t.Errorf("--help does not name %s", flag)
		}
	}
	for _, line := range regexp.MustCompile(`\n`).Split(res.stdout, -1) {
		if len(line) > 79 {
			t.Errorf("--help line over 79 columns: %q", line)
		}
	}
}
