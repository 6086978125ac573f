package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"sync"
	"time"

	"relaymail/config"
	"relaymail/delivery"
	"relaymail/internal/privilege"
	"relaymail/logging"
	"relaymail/queue"
	"relaymail/sendmail"
	"relaymail/smtpd"
	"relaymail/smtpgate"
)

// defaultConfig is the system configuration (SPEC §1).
const defaultConfig = "/etc/relaymail.toml"

// invocation is one run of relaymail: its options, its streams, and what
// it loads on the way.
type invocation struct {
	opts   *sendmail.Options
	stdin  io.Reader
	stdout io.Writer
	stderr io.Writer

	cfg      *config.Config
	log      *slog.Logger
	noticeMu sync.Mutex
	noticed  map[string]bool // what notice already said
}

func (inv *invocation) run(ctx context.Context) error {
	switch inv.opts.Mode {
	case sendmail.ModeVersion:
		fmt.Fprintln(inv.stdout, versionLine())
		return nil
	case sendmail.ModeHelp:
		io.WriteString(inv.stdout, usage)
		return nil
	case sendmail.ModeNewAliases:
		// Aliases are read at each run: there is nothing to rebuild.
		return nil
	}

	cfg, err := loadConfig(inv.opts.ConfigFile)
	if err != nil {
		if inv.opts.Mode == sendmail.ModeDeliver {
			drain(inv.stdin)
		}
		return err
	}
	inv.cfg = cfg
	target := cfg.Log
	if target == "" {
		service := inv.opts.Mode == sendmail.ModeRunQueue || inv.opts.Mode == sendmail.ModeDaemon
		target = logging.Default(service)
	}
	logger, closer, err := logging.Open(target, "relaymail", inv.stderr)
	if err != nil {
		// A log file this caller may not write must not cost the mail,
		// nor break the silence on success: say so in syslog instead.
		logger, closer, _ = logging.Open("syslog", "relaymail", inv.stderr)
		logger.Warn(err.Error())
	}
	defer closer.Close()
	inv.log = logger
	// Documented no-ops (cron's -oem on every mail) are not worth a
	// line; a letter nobody defines may be a caller's mistake.
	for _, flag := range inv.opts.Unknown {
		inv.log.Info("", "unknown_option", flag)
	}

	switch inv.opts.Mode {
	case sendmail.ModeDeliver:
		return inv.deliver(ctx)
	case sendmail.ModeVerify:
		return inv.verify()
	case sendmail.ModeCheck:
		return delivery.Check(ctx, cfg, cleanLines{inv.stdout})
	case sendmail.ModeListQueue:
		return inv.listQueue()
	case sendmail.ModeRunQueue:
		return inv.runQueue(ctx)
	case sendmail.ModeRequeue, sendmail.ModeDelete:
		return inv.administer()
	case sendmail.ModeSMTP:
		return inv.speakSMTP(ctx)
	case sendmail.ModeDaemon:
		return inv.daemon(ctx)
	case sendmail.ModeOAuthLogin:
		return inv.oauth2Login(ctx)
	default:
		return fmt.Errorf("%w: mode %v is not supported", sendmail.ErrUsage, inv.opts.Mode)
	}
}

// openQueue opens the spool named by [queue] dir, creating it when
// missing (SPEC §7).
func (inv *invocation) openQueue() (*queue.Queue, error) {
	return queue.Open(inv.cfg.Queue.Dir)
}

// queueToWorkOn is openQueue for the modes that do nothing without it
// (mailq, -q, --requeue, --delete): no spool is a temporary failure.
func (inv *invocation) queueToWorkOn() (*queue.Queue, error) {
	q, err := inv.openQueue()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", delivery.ErrTemporary, err)
	}
	return q, nil
}

// deliver is the default mode: read the message and relay it, or queue
// it, as [queue] mode says.
func (inv *invocation) deliver(ctx context.Context) error {
	caller := sendmail.LookupCaller()
	o := delivery.Options{Logger: inv.log, Caller: caller, QueueOnly: inv.opts.QueueOnly, Notice: inv.notice}
	o.OpenQueue = inv.openQueue
	if !inv.opts.DryRun && (inv.cfg.Queue.Mode != config.QueueNever || inv.opts.QueueOnly) {
		// With the queue off, it is opened only to keep a refused
		// message in failed/.
		o.Queue, o.QueueErr = inv.openQueue()
	}
	acceptor := delivery.NewAcceptor(inv.cfg, caller, o.Queue)
	msg, err := acceptor.Accept(inv.stdin, inv.opts)
	if err != nil {
		return err
	}
	defer msg.Close()
	for _, w := range msg.Warnings {
		inv.log.Warn(w)
	}
	if inv.opts.DryRun {
		return delivery.Print(inv.stdout, msg)
	}
	if inv.opts.Verbose {
		o.Trace = cleanLines{inv.stderr}
	}
	return delivery.Submit(ctx, inv.cfg, msg, o)
}

// notice tells the administrator, on stderr and in the log, about
// something to mend although the mail is safe (SPEC §6 prints nothing on
// success; an OAuth2 grant that needs a new login is the exception).
// A queue run meets the same cause for every message: it is told once.
func (inv *invocation) notice(msg string) {
	inv.noticeMu.Lock()
	defer inv.noticeMu.Unlock()
	if inv.noticed[msg] {
		return
	}
	if inv.noticed == nil {
		inv.noticed = map[string]bool{}
	}
	inv.noticed[msg] = true
	fmt.Fprintf(inv.stderr, "relaymail: %s\n", msg)
	inv.log.Warn(msg)
}

// listQueue prints the messages waiting (mailq, -bp) or, with --failed,
// the ones kept in failed/.
func (inv *invocation) listQueue() error {
	q, err := inv.queueToWorkOn()
	if err != nil {
		return err
	}
	if inv.opts.ListFailed {
		failed, err := q.ListFailed()
		if err != nil {
			fmt.Fprintf(inv.stderr, "relaymail: %v\n", err)
		}
		queue.FormatFailed(inv.stdout, failed, time.Now())
		return nil
	}
	queued, err := q.List()
	if err != nil {
		fmt.Fprintf(inv.stderr, "relaymail: %v\n", err)
	}
	queue.FormatList(inv.stdout, queued, time.Now())
	return nil
}

// runQueue delivers what is queued: all of it now (-q), or at once and
// then every interval in the foreground (-q30m).
func (inv *invocation) runQueue(ctx context.Context) error {
	q, err := inv.queueToWorkOn()
	if err != nil {
		return err
	}
	r := &delivery.Runner{Config: inv.cfg, Queue: q, Logger: inv.log, Notice: inv.notice}
	if inv.opts.Verbose {
		r.Trace = cleanLines{inv.stderr}
	}
	if inv.opts.QueueInterval > 0 {
		return r.Loop(ctx, inv.opts.QueueInterval)
	}
	return r.Run(ctx, delivery.FullPass)
}

// errNotAllowed is an administrative request from a user who may not
// make it (EX_NOPERM).
var errNotAllowed = errors.New("permission denied")

// administer puts a failed message back in the queue (--requeue ID) or
// deletes one (--delete ID). Only root may: relaymail is setgid, and
// every other caller could otherwise touch everybody's mail.
func (inv *invocation) administer() error {
	id := inv.opts.QueueID
	if !queue.ValidID(id) {
		return fmt.Errorf("%w: %q is not a queue id (mailq shows them)", sendmail.ErrUsage, id)
	}
	if os.Getuid() != 0 {
		return fmt.Errorf("%w: only root may change the queue", errNotAllowed)
	}
	q, err := inv.queueToWorkOn()
	if err != nil {
		return err
	}
	if inv.opts.Mode == sendmail.ModeRequeue {
		err = q.Requeue(id)
	} else {
		err = q.Delete(id)
	}
	if errors.Is(err, queue.ErrNotFound) {
		return fmt.Errorf("%w: %s: no such message", sendmail.ErrUsage, id)
	}
	return err
}

// verify prints how each recipient resolves (-bv) and delivers nothing.
func (inv *invocation) verify() error {
	if len(inv.opts.Recipients) == 0 {
		return fmt.Errorf("%w: -bv needs recipients", sendmail.ErrUsage)
	}
	aliases, warnings := sendmail.LoadAliases(inv.cfg)
	for _, w := range warnings {
		fmt.Fprintf(inv.stdout, "warning: %s\n", w)
	}
	for _, operand := range inv.opts.Recipients {
		addrs, err := sendmail.ParseAddressList(operand, "")
		if err != nil {
			return fmt.Errorf("%w: recipient %q: %v", sendmail.ErrUsage, operand, err)
		}
		for _, addr := range addrs {
			if !sendmail.IsBareName(addr) {
				fmt.Fprintf(inv.stdout, "%s: deliverable via the smarthost\n", addr)
				continue
			}
			for _, step := range aliases.Trace(addr) {
				fmt.Fprintf(inv.stdout, "%s\n", step)
			}
			for _, final := range sendmail.ResolveRecipients([]string{addr}, aliases, inv.cfg.Domain) {
				fmt.Fprintf(inv.stdout, "%s -> %s: deliverable via the smarthost\n", addr, final)
			}
		}
	}
	return nil
}

// speakSMTP is -bs: one SMTP session on stdin and stdout.
func (inv *invocation) speakSMTP(ctx context.Context) error {
	srv := smtpgate.New(inv.cfg, inv.opts, inv.log).Server()
	if err := srv.ServeConn(ctx, inv.stdin, inv.stdout, ""); err != nil && ctx.Err() == nil {
		inv.log.Warn("smtp session: " + err.Error())
	}
	return nil
}

// daemon is -bd: listen on the configured loopback addresses until
// SIGTERM, then let the sessions finish (30 s at most); with -q30m also
// run the queue.
func (inv *invocation) daemon(ctx context.Context) error {
	if err := inv.cfg.CheckListen(); err != nil {
		return err
	}
	srv := smtpgate.New(inv.cfg, inv.opts, inv.log).Server()
	listeners, err := smtpd.Listen(inv.cfg.Listen)
	if err != nil {
		return fmt.Errorf("%w: %v", delivery.ErrTemporary, err)
	}
	inv.log.Info("listening", "addrs", strings.Join(inv.cfg.Listen, ","))
	var runner sync.WaitGroup
	if inv.opts.QueueInterval > 0 {
		if q, err := inv.openQueue(); err == nil {
			r := &delivery.Runner{Config: inv.cfg, Queue: q, Logger: inv.log}
			runner.Go(func() { r.Loop(ctx, inv.opts.QueueInterval) })
		} else {
			inv.log.Warn("queue: " + err.Error())
		}
	}
	srv.ServeUntil(ctx, listeners, 30*time.Second)
	runner.Wait()
	return nil
}

// loadConfig finds and loads the configuration (SPEC §1). A config named
// by -C or $RELAYMAIL_CONFIG is the caller's own, so any privilege the
// binary was installed with is dropped before it is opened (SPEC §9): a
// caller must not be able to make relaymail read, or report errors about,
// a file only its group may read.
func loadConfig(flagPath string) (*config.Config, error) {
	path := flagPath
	if path == "" {
		path = os.Getenv("RELAYMAIL_CONFIG")
	}
	if path == "" {
		path = defaultConfig
	} else if err := privilege.Drop(); err != nil {
		return nil, fmt.Errorf("%w: cannot drop privileges before reading %s: %v", config.ErrConfig, path, err)
	}
	return config.Load(path)
}

const usage = `usage: sendmail [options] [--] [recipient ...]    (relaymail)
       mailq          (sendmail -bp)
       newaliases     (sendmail -bi)

Reads a message on standard input and relays it through the smarthost
configured in /etc/relaymail.toml (or -C FILE, or $RELAYMAIL_CONFIG).

Sending (-bm, the default):
  -t              also take recipients from To:, Cc: and Bcc:
  -i, -oi, -O IgnoreDots
                  a line holding only "." does not end the message
  -f ADDR, -r ADDR
                  envelope sender ('' or '<>': the null sender)
  -F NAME         full name for an added From: header
  -B 7BIT|8BITMIME
                  the body type
  -N never|success,delay,failure
                  DSN NOTIFY (when the smarthost offers DSN)
  -R full|hdrs    DSN RET;  -V ENVID: DSN envelope id
  -odq, -odb      queue only: do not try now
  --dry-run       print the envelope and message as they would be sent
  --              every operand after it is a recipient

The SMTP personality:
  -bs             speak SMTP on stdin/stdout (Symfony Mailer, Laravel)
  -bd             listen on the configured addresses (loopback by default)

The queue:
  -bp, mailq      list the queue
  mailq --failed  list the messages kept in failed/
  -q              deliver what is queued now
  -q30m, -q1h     stay in the foreground and run the queue at that interval
                  (-bd -q30m: listen and run the queue)
  --requeue ID    (root) put a message from failed/ back in the queue
  --delete ID     (root) delete a message from the queue or failed/

Checking:
  --check         connect to the smarthost, show TLS, capabilities, AUTH; quit
  -bv             show how each recipient resolves; deliver nothing
  -v              print the SMTP dialogue on stderr (credentials redacted)
  -C FILE         use FILE as the configuration (drops privileges)
  --oauth2-login  (root) sign in to get the [smarthost.oauth2] refresh token
  --version, -d0.1
                  print the version (any -d: scripts probe the MTA so)
  --help          this text
  -bi, newaliases nothing to do: aliases are read at each run

Accepted and ignored (other sendmails' options): -oem -oep -oee -oeq -oew
-odi -om -o7 -o8 -oA..., any -oXV, -O X=V, -h N, -L TAG, -G, -U, -X FILE,
-Am, -Ac, -c, -m, -n, -s, -x, -e X, -p P; any other letter is ignored
too and logged. Not supported (exit 64): -bD -bt -bh -bH -bP -bl.

Exit status: 0 sent, 64 usage, 65 bad message, 67 recipient refused,
69 message refused, 75 try again later, 76 protocol error,
77 authentication refused, 78 configuration error.
`
