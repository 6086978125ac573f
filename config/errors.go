package config

import (
	"errors"
	"fmt"
	"strings"
	"unicode"
)

// ErrConfig is wrapped by every error Load and Parse return, and by the
// configuration errors of Password and CheckListen, so that main can map
// them all to EX_CONFIG (78) with one errors.Is test.
var ErrConfig = errors.New("configuration error")

// Problem is one thing wrong with a configuration file. Line and Column are
// 1-based and zero when TOML gives no position (validation problems).
type Problem struct {
	Line, Column int
	Msg          string
}

// Error makes a Problem usable on its own, e.g. from errors.As over the
// Unwrap list of an *Error; it has no "config:" prefix and no path.
func (p Problem) Error() string {
	if p.Line > 0 {
		return fmt.Sprintf("%d:%d: %s", p.Line, p.Column, p.Msg)
	}
	return p.Msg
}

// Error is the type of every error Load and Parse return. It keeps the
// individual problems apart (like errors.Join) for callers and tests that
// want them, while Error() stays a single line for stderr and syslog.
type Error struct {
	Path     string    // the file as given to Load or Parse
	Problems []Problem // at least one
	Err      error     // underlying cause (e.g. an *fs.PathError), may be nil
}

// Error renders all problems on one line:
//
//	config: FILE:LINE:COL: first problem; LINE:COL: second problem
//	config: FILE: first sentence; second sentence
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("config: ")
	b.WriteString(e.Path)
	for i, p := range e.Problems {
		switch {
		case i == 0 && p.Line > 0:
			fmt.Fprintf(&b, ":%d:%d: ", p.Line, p.Column)
		case i == 0:
			b.WriteString(": ")
		case p.Line > 0:
			fmt.Fprintf(&b, "; %d:%d: ", p.Line, p.Column)
		default:
			b.WriteString("; ")
		}
		b.WriteString(p.Msg)
	}
	return oneLine(b.String())
}

// Unwrap exposes ErrConfig, the underlying cause, and each problem.
func (e *Error) Unwrap() []error {
	errs := make([]error, 0, 2+len(e.Problems))
	errs = append(errs, ErrConfig)
	if e.Err != nil {
		errs = append(errs, e.Err)
	}
	for _, p := range e.Problems {
		errs = append(errs, p)
	}
	return errs
}

// problems collects validation sentences in file order.
type problems []Problem

func (ps *problems) add(format string, args ...any) {
	*ps = append(*ps, Problem{Msg: fmt.Sprintf(format, args...)})
}

func (ps *problems) addAt(line, col int, format string, args ...any) {
	*ps = append(*ps, Problem{Line: line, Column: col, Msg: fmt.Sprintf(format, args...)})
}

// oneLine replaces control characters (a path or a value may hold a
// newline) so that an error is always exactly one line.
func oneLine(s string) string {
	if strings.IndexFunc(s, breaksLine) < 0 {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if breaksLine(r) {
			fmt.Fprintf(&b, "\\u%04x", r)
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

func breaksLine(r rune) bool {
	return unicode.IsControl(r) || r == '\u2028' || r == '\u2029'
}
