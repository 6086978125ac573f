package config

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// CleanPath is the whole environment of a password_command (SPEC §9):
// none of the caller's variables reach it, and the command name is looked
// up only in these directories, never in the caller's $PATH.
const CleanPath = "/usr/local/bin:/usr/bin:/bin"

// maxSecret bounds what is read from a password_file or a command's
// stdout; a password is one short line.
const maxSecret = 64 << 10

// passwordSource is a smarthost's secret or where to get it; exactly one
// field is set. It lives behind an unexported pointer so fmt never prints
// it (Smarthost also formats itself).
type passwordSource struct {
	inline string
	file   string
	argv   []string
}

// HasPassword reports whether the smarthost has a password source, which
// the relay needs to know before it decides whether to authenticate.
func (s *Smarthost) HasPassword() bool { return s.pw != nil }

// Password returns the smarthost's password: the inline value, the first
// line of password_file (read now, so a rotated secret is picked up), or
// the first line of password_command's stdout. The command runs without a
// shell, with stdin /dev/null, stderr discarded and the environment
// reduced to PATH=CleanPath, bounded by ctx and s.Timeout. It is an error
// when there is no source, when the file is readable by all users, and
// when the line is empty; errors wrap ErrConfig (and the cause, e.g.
// fs.ErrNotExist, *exec.ExitError or context.DeadlineExceeded) and never
// include the secret or the command's output.
func (s *Smarthost) Password(ctx context.Context) (string, error) {
	switch {
	case s.pw == nil:
		return "", s.pwError(nil, "no password, password_file or password_command is set")
	case s.pw.inline != "":
		return s.pw.inline, nil
	case s.pw.file != "":
		return s.passwordFromFile()
	case len(s.pw.argv) > 0:
		return s.passwordFromCommand(ctx)
	}
	return "", s.pwError(nil, "password is empty")
}

// passwordFunc is Password as relay.Host.Password wants it: called only
// when AUTH is about to run. It reads a copy of s, so the Smarthost may be
// moved (returned, appended) afterwards.
func (s *Smarthost) passwordFunc() func(context.Context) (string, error) {
	sh := *s
	return sh.Password
}

// CheckPassword reports whether the password source can work at all,
// without running anything: a password_file must be a private regular
// file whose first line is not empty, a password_command must name an
// executable. --check calls it before it dials, so that a config that
// cannot work is a config error naming the file (exit 78), not a
// temporary failure, also when the smarthost is down. The error is
// Password's; the secret is read but never returned.
func (s *Smarthost) CheckPassword() error {
	switch {
	case s.pw == nil || s.pw.inline != "":
		return nil
	case s.pw.file != "":
		_, err := s.passwordFromFile()
		return err
	case len(s.pw.argv) > 0:
		argv0 := s.pw.argv[0]
		// lookCleanPath has checked a name it found; an absolute path
		// it returns as is.
		_, err := lookCleanPath(argv0)
		if err == nil && filepath.IsAbs(argv0) {
			err = executableFile(argv0)
		}
		if err != nil {
			return s.pwError(err, "password_command %q: %s", argv0, errText(err))
		}
	}
	return nil
}

func (s *Smarthost) passwordFromFile() (string, error) {
	name := s.pw.file
	f, err := OpenRegular(name)
	if err != nil {
		return "", s.pwError(err, "password_file %s: %s", name, errText(err))
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", s.pwError(err, "password_file %s: %s", name, errText(err))
	}
	if err := secretModeError(name, "password_file "+name, st.Mode()); err != nil {
		return "", s.pwError(nil, "%s", err)
	}
	line, err := firstLine(f)
	if err != nil {
		return "", s.pwError(err, "password_file %s: cannot read it: %s", name, errText(err))
	}
	if line == "" {
		return "", s.pwError(nil, "password_file %s: the first line is empty", name)
	}
	return line, nil
}

func (s *Smarthost) passwordFromCommand(ctx context.Context) (string, error) {
	argv0 := s.pw.argv[0]
	bin, err := lookCleanPath(argv0)
	if err != nil {
		return "", s.pwError(err, "password_command %q: %s", argv0, errText(err))
	}
	if s.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.Timeout)
		defer cancel()
	}
	var out limitedBuffer
	cmd := exec.CommandContext(ctx, bin)
	cmd.Args = append([]string(nil), s.pw.argv...)
	cmd.Env = []string{"PATH=" + CleanPath}
	cmd.Dir = "/"
	cmd.Stdin = nil  // /dev/null
	cmd.Stderr = nil // discarded: it might echo the secret
	cmd.Stdout = &out
	// A grandchild that keeps stdout open must not hold us past the
	// deadline.
	cmd.WaitDelay = time.Second
	err = cmd.Run()
	if ctxErr := ctx.Err(); ctxErr != nil {
		return "", s.pwError(ctxErr, "password_command %q: %s", argv0, ctxMessage(ctxErr, s.Timeout))
	}
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return "", s.pwError(err, "password_command %q: %s", argv0, ee.ProcessState.String())
		}
		// Start errors and I/O errors carry no output.
		return "", s.pwError(err, "password_command %q: %s", argv0, errText(err))
	}
	line, _ := firstLine(bytes.NewReader(out.Bytes()))
	if line == "" {
		return "", s.pwError(nil, "password_command %q: %s, but its first line of output is empty", argv0, cmd.ProcessState.String())
	}
	return line, nil
}

func ctxMessage(err error, timeout time.Duration) string {
	if errors.Is(err, context.DeadlineExceeded) {
		return "did not finish in time (timeout " + timeout.String() + ")"
	}
	return "canceled"
}

func (s *Smarthost) pwError(cause error, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	return &passwordError{msg: oneLine(fmt.Sprintf("config: smarthost %s: %s", s.Name, msg)), cause: cause}
}

// passwordError is the error of Password: one line, wrapping ErrConfig
// and the cause.
type passwordError struct {
	msg   string
	cause error
}

func (e *passwordError) Error() string { return e.msg }

func (e *passwordError) Unwrap() []error {
	if e.cause == nil {
		return []error{ErrConfig}
	}
	return []error{ErrConfig, e.cause}
}

// lookCleanPath resolves a command name in CleanPath only; an absolute
// path is used as is.
func lookCleanPath(name string) (string, error) {
	if filepath.IsAbs(name) {
		return name, nil
	}
	if strings.Contains(name, "/") {
		return "", errors.New("must be a command name or an absolute path")
	}
	for _, dir := range filepath.SplitList(CleanPath) {
		p := filepath.Join(dir, name)
		if executableFile(p) == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("not found in %s", CleanPath)
}

// executableFile reports why path is not a regular file with an execute
// bit, or nil.
func executableFile(path string) error {
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() || st.Mode().Perm()&0o111 == 0 {
		return errors.New("not an executable file")
	}
	return nil
}

// firstLine returns the first line of r without its CR/LF, reading at
// most maxSecret bytes.
func firstLine(r io.Reader) (string, error) {
	br := bufio.NewReader(io.LimitReader(r, maxSecret))
	line, err := br.ReadString('\n')
	if err != nil && err != io.EOF {
		return "", err
	}
	return strings.TrimRight(line, "\r\n"), nil
}

// limitedBuffer keeps the first maxSecret bytes written to it and
// discards the rest, so a runaway command cannot exhaust memory.
type limitedBuffer struct{ bytes.Buffer }

func (b *limitedBuffer) Write(p []byte) (int, error) {
	if room := maxSecret - b.Len(); room > 0 {
		if len(p) > room {
			b.Buffer.Write(p[:room])
		} else {
			b.Buffer.Write(p)
		}
	}
	return len(p), nil
}

// secretModeError refuses a file that holds a secret and that every user
// may read (SPEC §9).
func secretModeError(path, what string, mode fs.FileMode) error {
	if mode.Perm()&0o004 == 0 {
		return nil
	}
	return fmt.Errorf("%s holds a password but is readable by all users (mode %04o); chmod 640 %s",
		what, mode.Perm(), path)
}

// checkPermissions applies the secret rules of SPEC §9 to a loaded file
// whose mode is mode. password_file is checked only when it exists: its
// content is read when a password is needed, and a missing file is an
// error then.
func (c *Config) checkPermissions(mode fs.FileMode) error {
	var ps problems
	if mode.Perm()&0o002 != 0 {
		// Whoever may write the config may point the smarthost (and the
		// password) anywhere, or set password_command.
		ps.add("is writable by all users (mode %04o); chmod 640 it", mode.Perm())
	}
	inline := false
	for i := range c.Smarthosts {
		pw := c.Smarthosts[i].pw
		if pw == nil {
			continue
		}
		if pw.inline != "" {
			inline = true
		}
		if pw.file != "" {
			if st, err := os.Stat(pw.file); err == nil {
				if err := secretModeError(pw.file, "password_file "+pw.file, st.Mode()); err != nil {
					ps.add("%s", err)
				}
			}
		}
	}
	for i := range c.Smarthosts {
		if o := c.Smarthosts[i].OAuth2; o != nil {
			o.checkPermissions(&ps)
		}
	}
	if inline && mode.Perm()&0o004 != 0 {
		ps = append([]Problem{{Msg: fmt.Sprintf("holds a password but is readable by all users (mode %04o); chmod 640 it", mode.Perm())}}, ps...)
	}
	if len(ps) > 0 {
		return &Error{Path: c.Path, Problems: ps}
	}
	return nil
}
