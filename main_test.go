package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestMainIsThin: package main parses flags into a mode and maps errors to
// exit statuses; what a mode does belongs in package modes (issue 15).
// 200 lines leaves room for a new exit status, not for a mode body.
func TestMainIsThin(t *testing.T) {
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	lines := 0
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		lines += strings.Count(string(b), "\n")
	}
	if lines >= 200 {
		t.Errorf("package main has %d lines outside tests, want under 200: move mode bodies to package modes", lines)
	}
}
