// Command relaymail is a sendmail for hosts that should not run a mail
// server: it reads a message on standard input with sendmail's flags and
// relays it through one smarthost with its own SMTP client.
//
// main parses the command line into a mode (package sendmail), has
// package modes run it, and maps what went wrong to a sysexits status
// through one table.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"relaymail/config"
	"relaymail/delivery"
	"relaymail/internal/privilege"
	"relaymail/logging"
	"relaymail/modes"
	"relaymail/queue"
	"relaymail/sendmail"
)

// version is the release this source is; a build may set it with
// -ldflags "-X main.version=…" (make build, packaging/build-deb do).
var version = "0.1.0-dev"

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
	{modes.ErrNotAllowed, exitNoPerm},
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
		modes.Drain(stdin)
		return fail(stderr, err)
	}
	inv := &modes.Invocation{Options: opts, Stdin: stdin, Stdout: stdout, Stderr: stderr, Version: version}
	if err := inv.Run(ctx); err != nil {
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
