// Command relaymail is a sendmail for hosts that should not run a mail
// server: it reads a message on standard input with sendmail's flags and
// relays it through one smarthost with its own SMTP client.
//
// main only wires the packages together: sendmail (the command line and
// the message), config, delivery (relay, dead.letter) and logging, and
// maps what went wrong to a sysexits status through one table. What each
// mode does is in modes.go.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"

	"relaymail/config"
	"relaymail/delivery"
	"relaymail/internal/privilege"
	"relaymail/logging"
	"relaymail/queue"
	"relaymail/sendmail"
)

// version is the release this source is; a build may set it with
// -ldflags "-X main.version=…" (make build, packaging/build-deb do).
var version = "0.1.0-dev"

// versionLine is what --version prints: the version, then the commit the
// binary was built from as the Go toolchain recorded it (vcs.revision,
// vcs.modified, vcs.time), so a bug report names the exact source even
// when -X was not set. A build without VCS information (a tarball,
// -buildvcs=false) prints the version alone.
func versionLine() string {
	info, _ := debug.ReadBuildInfo()
	return versionFrom(version, info)
}

// versionFrom is versionLine for a given version and build info (nil:
// none).
func versionFrom(version string, info *debug.BuildInfo) string {
	line := "relaymail " + version
	if info == nil {
		return line
	}
	var rev, when string
	modified := false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			when = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if rev == "" {
		return line
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if modified {
		rev += "+modified"
	}
	if when != "" {
		rev += " " + when
	}
	return line + " (" + rev + ")"
}

func main() {
	os.Exit(run(os.Args, os.Stdin, os.Stdout, os.Stderr))
}

// Exit statuses from sysexits.h, as SPEC §6 assigns them.
const (
	exitOK          = 0
	exitUsage       = 64
	exitDataErr     = 65
	exitNoUser      = 67
	exitUnavailable = 69
	exitSoftware    = 70
	exitTempFail    = 75
	exitProtocol    = 76
	exitNoPerm      = 77
	exitConfig      = 78
)

// exitCodes is the one place where an error's class becomes an exit
// status. The first row whose sentinel the error wraps wins.
var exitCodes = []struct {
	class error
	code  int
}{
	{sendmail.ErrUsage, exitUsage},
	{config.ErrConfig, exitConfig},
	{sendmail.ErrData, exitDataErr},
	{delivery.ErrRecipientsRefused, exitNoUser},
	{delivery.ErrRejected, exitUnavailable},
	{delivery.ErrTemporary, exitTempFail},
	{sendmail.ErrStorage, exitTempFail},
	{delivery.ErrProtocol, exitProtocol},
	{delivery.ErrAuth, exitNoPerm},
	{errNotAllowed, exitNoPerm},
}

func exitCode(err error) int {
	if err == nil {
		return exitOK
	}
	for _, row := range exitCodes {
		if errors.Is(err, row.class) {
			return row.code
		}
	}
	return exitSoftware
}

// run is relaymail without the process around it: tests call it with
// their own arguments and streams.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	privilege.ScrubEnvironment()
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()

	if p := os.Getenv("RELAYMAIL_SYSLOG_SOCKET"); p != "" && !privilege.Elevated() {
		// Where syslog listens, for tests and for a chroot. Only a caller
		// who could as well pass its own config (-C) may choose it.
		logging.SetSyslogSocket(p)
	}
	opts, err := sendmail.ParseArgs(args)
	if err != nil {
		// The mode is unknown, but a caller that piped a message in must
		// not die of SIGPIPE because we stopped early.
		drain(stdin)
		return fail(stderr, err)
	}
	inv := &invocation{opts: opts, stdin: stdin, stdout: stdout, stderr: stderr}
	if err := inv.run(ctx); err != nil {
		return fail(stderr, err)
	}
	return exitOK
}

// fail prints err as the one line SPEC §6 promises and returns its status.
// The text may hold a server's reply: control characters go (as in mailq).
func fail(stderr io.Writer, err error) int {
	fmt.Fprintf(stderr, "relaymail: %s\n", queue.OneLine(err.Error()))
	return exitCode(err)
}

// drain reads stdin to its end unless it is a terminal (nobody is piping
// a message then, and reading would wait for the user).
func drain(stdin io.Reader) {
	if f, ok := stdin.(*os.File); ok && isTerminal(f) {
		return
	}
	io.Copy(io.Discard, stdin)
}

func isTerminal(f *os.File) bool {
	_, err := unixIoctlGetTermios(f.Fd())
	return err == nil
}
