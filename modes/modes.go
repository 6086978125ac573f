package modes

import (
	"bufio"
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

// Invocation is one run of relaymail: its options, its streams, and what
// it loads on the way.
type Invocation struct {
	Options *sendmail.Options
	Stdin   io.Reader
	Stdout  io.Writer
	Stderr  io.Writer
	Version string // the release --version names (main.version)

	cfg      *config.Config
	log      *slog.Logger
	noticeMu sync.Mutex
	noticed  map[string]bool // what notice already said
}

// Run does what inv.Options.Mode asks. Its error wraps the class
// sentinel (sendmail.ErrUsage, config.ErrConfig, delivery's classes,
// ErrNotAllowed) that main turns into the exit status.
func (inv *Invocation) Run(ctx context.Context) error {
	switch inv.Options.Mode {
	case sendmail.ModeVersion:
		fmt.Fprintln(inv.Stdout, versionLine(inv.Version))
		return nil
	case sendmail.ModeHelp:
		io.WriteString(inv.Stdout, sendmail.Usage)
		return nil
	case sendmail.ModeNewAliases:
		// Aliases are read at each run: there is nothing to rebuild.
		return nil
	}

	cfg, err := loadConfig(inv.Options.ConfigFile)
	if err != nil {
		if inv.Options.Mode == sendmail.ModeDeliver {
			Drain(inv.Stdin)
		}
		return err
	}
	inv.cfg = cfg
	target := cfg.Log
	if target == "" {
		service := inv.Options.Mode == sendmail.ModeRunQueue || inv.Options.Mode == sendmail.ModeDaemon
		target = logging.Default(service)
	}
	logger, closer, err := logging.Open(target, "relaymail", inv.Stderr)
	if err != nil {
		// A log file this caller may not write must not cost the mail,
		// nor break the silence on success: say so in syslog instead.
		logger, closer, _ = logging.Open("syslog", "relaymail", inv.Stderr)
		logger.Warn(err.Error())
	}
	defer closer.Close()
	inv.log = logger
	// Documented no-ops (cron's -oem on every mail) are not worth a
	// line; a letter nobody defines may be a caller's mistake.
	for _, flag := range inv.Options.Unknown {
		inv.log.Info("", "unknown_option", flag)
	}

	switch inv.Options.Mode {
	case sendmail.ModeDeliver:
		return inv.deliver(ctx)
	case sendmail.ModeVerify:
		return inv.verify()
	case sendmail.ModeCheck:
		return delivery.Check(ctx, cfg, cleanLines{inv.Stdout})
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
		return fmt.Errorf("%w: mode %v is not supported", sendmail.ErrUsage, inv.Options.Mode)
	}
}

// openQueue opens the spool named by [queue] dir, creating it when
// missing (SPEC §7).
func (inv *Invocation) openQueue() (*queue.Queue, error) {
	return queue.Open(inv.cfg.Queue.Dir)
}

// queueToWorkOn is openQueue for the modes that do nothing without it
// (mailq, -q, --requeue, --delete): no spool is a temporary failure.
func (inv *Invocation) queueToWorkOn() (*queue.Queue, error) {
	q, err := inv.openQueue()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", delivery.ErrTemporary, err)
	}
	return q, nil
}

// deliver is the default mode: read the message and relay it, or queue
// it, as [queue] mode says.
func (inv *Invocation) deliver(ctx context.Context) error {
	caller := sendmail.LookupCaller()
	o := delivery.Options{Logger: inv.log, Caller: caller, QueueOnly: inv.Options.QueueOnly, Notice: inv.notice}
	o.OpenQueue = inv.openQueue
	if !inv.Options.DryRun && (inv.cfg.Queue.Mode != config.QueueNever || inv.Options.QueueOnly) {
		// With the queue off, it is opened only to keep a refused
		// message in failed/.
		o.Queue, o.QueueErr = inv.openQueue()
	}
	acceptor := delivery.NewAcceptor(inv.cfg, caller, o.Queue)
	msg, err := acceptor.Accept(inv.Stdin, inv.Options)
	if err != nil {
		return err
	}
	defer msg.Close()
	for _, w := range msg.Warnings {
		inv.log.Warn(w)
	}
	if inv.Options.DryRun {
		return delivery.Print(inv.Stdout, msg)
	}
	if inv.Options.Verbose {
		o.Trace = cleanLines{inv.Stderr}
	}
	return delivery.Submit(ctx, inv.cfg, msg, o)
}

// notice tells the administrator, on stderr and in the log, about
// something to mend although the mail is safe (SPEC §6 prints nothing on
// success; an OAuth2 grant that needs a new login is the exception).
// A queue run meets the same cause for every message: it is told once.
func (inv *Invocation) notice(msg string) {
	inv.noticeMu.Lock()
	defer inv.noticeMu.Unlock()
	if inv.noticed[msg] {
		return
	}
	if inv.noticed == nil {
		inv.noticed = map[string]bool{}
	}
	inv.noticed[msg] = true
	fmt.Fprintf(inv.Stderr, "relaymail: %s\n", msg)
	inv.log.Warn(msg)
}

// listQueue prints the messages waiting (mailq, -bp) or, with --failed,
// the ones kept in failed/.
func (inv *Invocation) listQueue() error {
	q, err := inv.queueToWorkOn()
	if err != nil {
		return err
	}
	// One message at a time (queue.Walk), whatever the queue's size;
	// the lines are buffered, then the files it could not read named.
	out := bufio.NewWriter(inv.Stdout)
	var w *queue.Walk
	if inv.Options.ListFailed {
		w = q.WalkFailed()
		queue.FormatFailed(out, w.All(), w.IDWidth(), time.Now())
	} else {
		w = q.Walk()
		queue.FormatList(out, w.All(), w.IDWidth(), time.Now())
	}
	out.Flush()
	if err := w.Err(); err != nil {
		fmt.Fprintf(inv.Stderr, "relaymail: %v\n", err)
	}
	return nil
}

// runQueue delivers what is queued: all of it now (-q), or at once and
// then every interval in the foreground (-q30m).
func (inv *Invocation) runQueue(ctx context.Context) error {
	q, err := inv.queueToWorkOn()
	if err != nil {
		return err
	}
	r := &delivery.Runner{Config: inv.cfg, Queue: q, Logger: inv.log, Notice: inv.notice}
	if inv.Options.Verbose {
		r.Trace = cleanLines{inv.Stderr}
	}
	if inv.Options.QueueInterval > 0 {
		return r.Loop(ctx, inv.Options.QueueInterval)
	}
	return r.Run(ctx, delivery.FullPass)
}

// ErrNotAllowed is an administrative request from a user who may not
// make it (EX_NOPERM): --requeue and --delete by anyone but root, an
// --oauth2-login whose token file cannot be written.
var ErrNotAllowed = errors.New("permission denied")

// administer puts a failed message back in the queue (--requeue ID) or
// deletes one (--delete ID). Only root may: relaymail is setgid, and
// every other caller could otherwise touch everybody's mail.
func (inv *Invocation) administer() error {
	id := inv.Options.QueueID
	if !queue.ValidID(id) {
		return fmt.Errorf("%w: %q is not a queue id (mailq shows them)", sendmail.ErrUsage, id)
	}
	if os.Getuid() != 0 {
		return fmt.Errorf("%w: only root may change the queue", ErrNotAllowed)
	}
	q, err := inv.queueToWorkOn()
	if err != nil {
		return err
	}
	if inv.Options.Mode == sendmail.ModeRequeue {
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
func (inv *Invocation) verify() error {
	if len(inv.Options.Recipients) == 0 {
		return fmt.Errorf("%w: -bv needs recipients", sendmail.ErrUsage)
	}
	aliases, warnings := sendmail.LoadAliases(inv.cfg)
	for _, w := range warnings {
		fmt.Fprintf(inv.Stdout, "warning: %s\n", w)
	}
	for _, operand := range inv.Options.Recipients {
		addrs, err := sendmail.ParseAddressList(operand, "")
		if err != nil {
			return fmt.Errorf("%w: recipient %q: %v", sendmail.ErrUsage, operand, err)
		}
		for _, addr := range addrs {
			if !sendmail.IsBareName(addr) {
				fmt.Fprintf(inv.Stdout, "%s: deliverable via the smarthost\n", addr)
				continue
			}
			for _, step := range aliases.Trace(addr) {
				fmt.Fprintf(inv.Stdout, "%s\n", step)
			}
			for _, final := range sendmail.ResolveRecipients([]string{addr}, aliases, inv.cfg.Domain) {
				fmt.Fprintf(inv.Stdout, "%s -> %s: deliverable via the smarthost\n", addr, final)
			}
		}
	}
	return nil
}

// speakSMTP is -bs: one SMTP session on stdin and stdout.
func (inv *Invocation) speakSMTP(ctx context.Context) error {
	srv := smtpgate.New(inv.cfg, inv.Options, inv.log).Server()
	if err := srv.ServeConn(ctx, inv.Stdin, inv.Stdout, ""); err != nil && ctx.Err() == nil {
		inv.log.Warn("smtp session: " + err.Error())
	}
	return nil
}

// daemon is -bd: listen on the configured loopback addresses until
// SIGTERM, then let the sessions finish (30 s at most); with -q30m also
// run the queue.
func (inv *Invocation) daemon(ctx context.Context) error {
	if err := inv.cfg.CheckListen(); err != nil {
		return err
	}
	srv := smtpgate.New(inv.cfg, inv.Options, inv.log).Server()
	listeners, err := smtpd.Listen(inv.cfg.Listen)
	if err != nil {
		return fmt.Errorf("%w: %v", delivery.ErrTemporary, err)
	}
	inv.log.Info("listening", "addrs", strings.Join(inv.cfg.Listen, ","))
	var runner sync.WaitGroup
	if inv.Options.QueueInterval > 0 {
		if q, err := inv.openQueue(); err == nil {
			r := &delivery.Runner{Config: inv.cfg, Queue: q, Logger: inv.log}
			runner.Go(func() { r.Loop(ctx, inv.Options.QueueInterval) })
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
		path = config.DefaultPath
	} else if err := privilege.Drop(); err != nil {
		return nil, fmt.Errorf("%w: cannot drop privileges before reading %s: %v", config.ErrConfig, path, err)
	}
	return config.Load(path)
}

// Drain reads stdin to its end unless it is a terminal (nobody is piping
// a message then, and reading would wait for the user): a caller that
// piped a message in must not die of SIGPIPE because relaymail stopped
// early (a usage or config error).
func Drain(stdin io.Reader) {
	if f, ok := stdin.(*os.File); ok && isTerminal(f) {
		return
	}
	io.Copy(io.Discard, stdin)
}

func isTerminal(f *os.File) bool {
	_, err := unixIoctlGetTermios(f.Fd())
	return err == nil
}
