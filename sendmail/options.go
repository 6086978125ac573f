package sendmail

import (
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// Mode is what one run of relaymail has been asked to do. It comes from
// -b, -q, -d, the long options and argv[0]; sendmail has no other way of
// saying it, so callers and tests switch on this one value.
type Mode int

// The modes, one per sendmail operation relaymail performs (SPEC §2).
const (
	ModeDeliver    Mode = iota // -bm (default): read a message on stdin and deliver it
	ModeSMTP                   // -bs
	ModeDaemon                 // -bd
	ModeListQueue              // -bp, and argv[0] basename "mailq"
	ModeNewAliases             // -bi, -I, and argv[0] basename "newaliases"
	ModeVerify                 // -bv
	ModeRunQueue               // -q, -q30m, -qI..., -qR..., -qS... (filters accepted and ignored)
	ModeVersion                // --version, and any -d (e.g. -d0.1)
	ModeHelp                   // --help
	ModeCheck                  // --check
	ModeRequeue                // --requeue ID: put a failed message back in the queue
	ModeDelete                 // --delete ID: remove a message from the queue or failed/
	ModeOAuthLogin             // --oauth2-login: obtain the first OAuth2 refresh token
)

var optModeNames = [...]string{
	ModeDeliver:    "deliver",
	ModeSMTP:       "smtp",
	ModeDaemon:     "daemon",
	ModeListQueue:  "list-queue",
	ModeNewAliases: "newaliases",
	ModeVerify:     "verify",
	ModeRunQueue:   "run-queue",
	ModeVersion:    "version",
	ModeHelp:       "help",
	ModeCheck:      "check",
	ModeRequeue:    "requeue",
	ModeDelete:     "delete",
	ModeOAuthLogin: "oauth2-login",
}

// String names the mode for log lines and test failures.
func (m Mode) String() string {
	if m >= 0 && int(m) < len(optModeNames) {
		return optModeNames[m]
	}
	return "mode(" + strconv.Itoa(int(m)) + ")"
}

// Options is the command line of one run, scanned but not yet
// interpreted: addresses are kept raw so that qualification, aliases and
// the -f policy of SPEC §4 stay with the code that knows the config.
type Options struct {
	Mode              Mode
	Personality       string        // "sendmail", "mailq" or "newaliases" (argv[0] basename, never full path)
	ExtractRecipients bool          // -t
	IgnoreDots        bool          // -i, -oi, -O IgnoreDots[=true]
	Sender            string        // -f/-r value as given (raw; parsed later)
	SenderSet         bool          // -f or -r was given (even with "" or "<>")
	FullName          string        // -F
	Notify            []string      // -N: nil, {"NEVER"} or a subset of SUCCESS, DELAY, FAILURE (upper-cased)
	Ret               string        // -R: "FULL" | "HDRS" | ""
	EnvID             string        // -V
	Body8BitMIME      bool          // -B 8BITMIME (-B 7BIT: false)
	Verbose           bool          // -v (any count)
	QueueOnly         bool          // -odq, -odb, -odd (also -o dq / -O DeliveryMode=q|b)
	ConfigFile        string        // -C
	QueueInterval     time.Duration // -q30m; 0 = run once
	DryRun            bool          // --dry-run
	QueueID           string        // --requeue ID, --delete ID
	Recipients        []string      // operands, raw
	Ignored           []string      // flags accepted and ignored, one per flag: "-" letter value, e.g. "-oem", "-h5", "-x"
	Unknown           []string      // of those, letters sendmail does not define either (worth a log line), e.g. "-y"

	// AfterDashDash: scanning stopped at "--", so every operand is a
	// recipient even when it starts with "-" (SPEC §2).
	AfterDashDash bool
	// ListFailed: --failed, list the messages kept in failed/ instead
	// of the ones waiting (mailq's own listing stays Postfix's).
	ListFailed bool
}

// ErrUsage marks a command line relaymail cannot act on. Every error
// ParseArgs returns wraps it, so that main can map them all to EX_USAGE
// (64) with one errors.Is.
var ErrUsage = errors.New("usage error")

func optUsagef(format string, args ...any) error { return classErrorf(ErrUsage, format, args...) }

// classError is an error of a class (ErrUsage, ErrData) whose text is
// only the problem, without the class's own words (main adds its
// prefix), still matching the class with errors.Is.
//
// This package's errors carry no package prefix, unlike the others':
// they are about the caller's own input and reach the caller as they
// are, where "sendmail:" would read as a second program
// ("relaymail: sendmail: header field To: ...").
type classError struct {
	class error
	msg   string
}

func (e *classError) Error() string { return e.msg }
func (e *classError) Unwrap() error { return e.class }

func classErrorf(class error, format string, args ...any) error {
	return &classError{class: class, msg: fmt.Sprintf(format, args...)}
}

// optValueLetters are the letters that take a value, glued to the flag
// (-fX) or in the next argument (-f X), as in Postfix's getopt string
// plus sendmail 8's -D, -M and -Q (so that -MrESMTP cannot turn into
// "-r ESMTP"). -b is handled with them; -q and -d take an optional value
// that must be glued.
const optValueLetters = "ABCDFLMNOQRVXbefhopr"

// optNoOpLetters are the flags without a value that sendmail 8 and
// Postfix define and relaymail accepts as documented no-ops (SPEC §2):
// only a letter outside them and optValueLetters is unknown, and logged.
const optNoOpLetters = "GUcmnsx"

// optEnvIDMax is the longest ENVID RFC 3461 §4.4 allows.
const optEnvIDMax = 100

// ParseArgs scans argv (argv[0] included) the way Postfix's sendmail does:
// getopt-style with values glued or separate, clusters (-ti, -tif addr),
// duplicates tolerated, unknown letters accepted and noted in Ignored, and
// scanning stopped at "--" or at the first operand (an argument that does
// not start with '-', or is exactly "-"). Everything after that is an
// operand, even when it looks like a flag.
//
// The mode is decided as follows: argv[0]'s basename gives the default
// (mailq, newaliases); -b, -I, -q and --check override it, the last one
// winning, except that -q never takes -bd's place (-bd -q30m is a daemon
// that also runs the queue) and, under the mailq personality, -q is a
// listing filter; --version and any -d win over all of those (scripts run
// `sendmail -d0.1 -bv root` to learn the version), and --help over
// everything.
//
// A CR or LF in any argument after argv[0] is an error: no address,
// name or ENVID may contain one, and it would end up in a header or an
// SMTP command. Every error wraps ErrUsage and reads as one line.
func ParseArgs(argv []string) (*Options, error) {
	o := &Options{Personality: "sendmail"}
	if len(argv) > 0 {
		switch filepath.Base(argv[0]) {
		case "mailq":
			o.Personality = "mailq"
			o.Mode = ModeListQueue
		case "newaliases":
			o.Personality = "newaliases"
			o.Mode = ModeNewAliases
		}
		argv = argv[1:]
	}
	for i, arg := range argv {
		if strings.ContainsAny(arg, "\r\n") {
			return nil, optUsagef("argument %d contains a line break", i+1)
		}
	}

	s := optScanner{o: o, args: argv}
	if err := s.scan(); err != nil {
		return nil, err
	}
	switch {
	case s.help:
		o.Mode = ModeHelp
	case s.version:
		o.Mode = ModeVersion
	}
	if s.next < len(argv) {
		o.Recipients = append([]string(nil), argv[s.next:]...)
	}
	return o, nil
}

// optScanner holds the state of one ParseArgs call.
type optScanner struct {
	o       *Options
	args    []string // argv[1:]
	next    int      // index in args of the next argument to look at
	help    bool     // --help seen
	version bool     // --version or -d seen
}

func (s *optScanner) scan() error {
	for s.next < len(s.args) {
		arg := s.args[s.next]
		if arg == "--" {
			s.next++
			s.o.AfterDashDash = true
			return nil
		}
		if len(arg) < 2 || arg[0] != '-' {
			return nil // first operand ("", "-", "root", "[-i]", ...)
		}
		s.next++
		if strings.HasPrefix(arg, "--") {
			if err := s.long(arg); err != nil {
				return err
			}
			continue
		}
		if err := s.cluster(arg); err != nil {
			return err
		}
	}
	return nil
}

// long handles one "--name" argument. Only exact names are known; the
// queue administration options take the next argument (or "=ID") as the
// message id.
func (s *optScanner) long(arg string) error {
	name, value, glued := strings.Cut(arg, "=")
	switch name {
	case "--requeue", "--delete":
		if !glued {
			if s.next >= len(s.args) {
				return optUsagef("option %s requires a message id", name)
			}
			value = s.args[s.next]
			s.next++
		}
		if value == "" {
			return optUsagef("option %s requires a message id", name)
		}
		s.o.Mode, s.o.QueueID = ModeRequeue, value
		if name == "--delete" {
			s.o.Mode = ModeDelete
		}
		return nil
	}
	switch arg {
	case "--check":
		s.o.Mode = ModeCheck
	case "--oauth2-login":
		s.o.Mode = ModeOAuthLogin
	case "--dry-run":
		s.o.DryRun = true
	case "--failed":
		s.o.Mode, s.o.ListFailed = ModeListQueue, true
	case "--help":
		s.help = true
	case "--version":
		s.version = true
	default:
		return optUsagef("unknown option %q", arg)
	}
	return nil
}

// cluster handles one argument of single-letter flags such as "-ti",
// "-oi" or "-tif" (the value of -f then being the next argument).
func (s *optScanner) cluster(arg string) error {
	for j := 1; j < len(arg); {
		c, size := utf8.DecodeRuneInString(arg[j:])
		j += size
		rest := arg[j:]
		flag := "-" + string(c)

		switch c {
		case 'q': // optional value, glued only
			return s.queue(rest)
		case 'd': // -d0.1 and friends: a version probe
			s.version = true
			return nil
		}
		if c < utf8.RuneSelf && strings.IndexByte(optValueLetters, byte(c)) >= 0 {
			value := rest
			if value == "" {
				if s.next >= len(s.args) {
					return optUsagef("option %s requires a value", flag)
				}
				value = s.args[s.next]
				s.next++
			}
			return s.valued(c, value)
		}

		switch c {
		case 't':
			s.o.ExtractRecipients = true
		case 'i':
			s.o.IgnoreDots = true
		case 'v':
			s.o.Verbose = true
		case 'I': // sendmail 8 and Postfix: same as newaliases
			s.o.Mode = ModeNewAliases
		default: // G U c m n s x and any other letter
			s.o.Ignored = append(s.o.Ignored, flag)
			if c >= utf8.RuneSelf || strings.IndexByte(optNoOpLetters, byte(c)) < 0 {
				s.o.Unknown = append(s.o.Unknown, flag)
			}
		}
	}
	return nil
}

// valued applies a flag that took a value.
func (s *optScanner) valued(c rune, value string) error {
	o := s.o
	switch c {
	case 'b':
		return s.mode(value)
	case 'f', 'r':
		o.Sender = value
		o.SenderSet = true
	case 'F':
		o.FullName = value
	case 'C':
		if value == "" {
			return optUsagef("-C: empty file name")
		}
		o.ConfigFile = value
	case 'N':
		notify, ok := optParseNotify(value)
		if !ok {
			return optUsagef("-N: %q is not never or a list of success, delay, failure", value)
		}
		o.Notify = notify
	case 'R':
		switch strings.ToUpper(strings.TrimSpace(value)) {
		case "FULL":
			o.Ret = "FULL"
		case "HDRS":
			o.Ret = "HDRS"
		default:
			return optUsagef("-R: %q is not full or hdrs", value)
		}
	case 'V':
		if !optValidEnvID(value) {
			return optUsagef("-V: %q is not an envelope ID of 1 to %d printable ASCII characters", value, optEnvIDMax)
		}
		o.EnvID = value
	case 'B':
		switch strings.ToUpper(strings.TrimSpace(value)) {
		case "7BIT":
			o.Body8BitMIME = false
		case "8BITMIME":
			o.Body8BitMIME = true
		default:
			return optUsagef("-B: %q is not 7BIT or 8BITMIME", value)
		}
	case 'o':
		if !s.shortOption(value) {
			o.Ignored = append(o.Ignored, "-o"+value)
		}
	case 'O':
		if !s.longOption(value) {
			o.Ignored = append(o.Ignored, "-O"+value)
		}
	default: // A D L M Q X e h p: accepted, value ignored
		o.Ignored = append(o.Ignored, "-"+string(c)+value)
	}
	return nil
}

// mode applies -b's value.
func (s *optScanner) mode(value string) error {
	switch value {
	case "m":
		s.o.Mode = ModeDeliver
	case "s":
		s.o.Mode = ModeSMTP
	case "d":
		s.o.Mode = ModeDaemon
	case "p":
		s.o.Mode = ModeListQueue
	case "i":
		s.o.Mode = ModeNewAliases
	case "v":
		s.o.Mode = ModeVerify
	case "D", "t", "h", "H", "P", "l":
		return optUsagef("-b%s is not supported", value)
	default:
		return optUsagef("-b: %q is not a mode relaymail knows (m, s, d, p, i, v)", value)
	}
	return nil
}

// queue applies -q with its glued value: nothing (run once), an interval
// (30m, 1h30m, 2d, a bare number of minutes), or one of sendmail's queue
// filters and variants (-qI, -qR, -qS, -qf, -qG, -qp, -qQ, -qL, each
// optionally negated with '!'), which run the whole queue once.
func (s *optScanner) queue(value string) error {
	var interval time.Duration
	switch {
	case value == "":
	case optIsQueueFilter(value):
		s.o.Ignored = append(s.o.Ignored, "-q"+value)
	default:
		d, ok := optParseInterval(value)
		if !ok {
			return optUsagef("-q: %q is not a queue interval (30m, 1h, 2d) or filter (I, R, S, f, G, p)", value)
		}
		interval = d
	}
	if s.o.Personality == "mailq" {
		// mailq -qR... filters the listing; relaymail lists everything.
		return nil
	}
	s.o.QueueInterval = interval
	if s.o.Mode != ModeDaemon {
		s.o.Mode = ModeRunQueue
	}
	return nil
}

// shortOption applies a sendmail "-o" option (letter then value) and
// reports whether it meant something to relaymail.
func (s *optScanner) shortOption(value string) bool {
	if value == "" {
		return false
	}
	switch value[0] {
	case 'i': // IgnoreDots: -oi, -oiTrue, -oiFalse
		b, ok := optBool(value[1:])
		if ok {
			s.o.IgnoreDots = b
		}
		return ok
	case 'd': // DeliveryMode
		return s.deliveryMode(value[1:])
	}
	return false
}

// longOption applies a sendmail "-O Name=value" option (names are case
// insensitive) and reports whether it meant something to relaymail.
func (s *optScanner) longOption(value string) bool {
	name, val, hasVal := strings.Cut(value, "=")
	name, val = strings.TrimSpace(name), strings.TrimSpace(val)
	switch {
	case strings.EqualFold(name, "IgnoreDots"):
		if !hasVal {
			s.o.IgnoreDots = true
			return true
		}
		b, ok := optBool(val)
		if ok {
			s.o.IgnoreDots = b
		}
		return ok
	case strings.EqualFold(name, "DeliveryMode") && hasVal:
		return s.deliveryMode(val)
	}
	return false
}

// deliveryMode applies sendmail's DeliveryMode: queue, background and
// deferred all mean "do not try now, return at once"; interactive (what
// relaymail does anyway) cancels an earlier one and is reported as
// ignored. It reports whether the value made QueueOnly true.
func (s *optScanner) deliveryMode(v string) bool {
	switch strings.ToLower(v) {
	case "q", "queue", "b", "background", "d", "deferred":
		s.o.QueueOnly = true
		return true
	case "i", "interactive":
		s.o.QueueOnly = false
	}
	return false
}

// optBool reads a sendmail boolean option value, in any case: empty,
// true, t, yes or y; false, f, no or n.
func optBool(v string) (value, ok bool) {
	switch strings.ToLower(v) {
	case "", "true", "t", "yes", "y":
		return true, true
	case "false", "f", "no", "n":
		return false, true
	}
	return false, false
}

// optParseNotify parses -N: "never", or a list of success, delay and
// failure separated by commas or white space (as Postfix does), in any
// case. NEVER cannot be combined with the others (RFC 3461 §4.1).
func optParseNotify(v string) ([]string, bool) {
	words := strings.FieldsFunc(v, func(r rune) bool {
		return r == ',' || r == ' ' || r == '\t'
	})
	if len(words) == 0 {
		return nil, false
	}
	var out []string
	never := false
	for _, w := range words {
		w = strings.ToUpper(w)
		switch w {
		case "NEVER":
			never = true
			continue
		case "SUCCESS", "DELAY", "FAILURE":
		default:
			return nil, false
		}
		dup := false
		for _, seen := range out {
			dup = dup || seen == w
		}
		if !dup {
			out = append(out, w)
		}
	}
	switch {
	case never && len(out) > 0:
		return nil, false
	case never:
		return []string{"NEVER"}, true
	}
	return out, true
}

// optValidEnvID reports whether v can be an ENVID: 1 to 100 printable
// US-ASCII characters (RFC 3461 §4.4; the SMTP client xtext-encodes it).
func optValidEnvID(v string) bool {
	if v == "" || len(v) > optEnvIDMax {
		return false
	}
	for i := 0; i < len(v); i++ {
		if v[i] < 0x20 || v[i] > 0x7e {
			return false
		}
	}
	return true
}

// optIsQueueFilter reports whether a -q value is one of sendmail 8's
// queue-run filters or variants rather than an interval.
func optIsQueueFilter(v string) bool {
	v = strings.TrimPrefix(v, "!")
	return v != "" && strings.IndexByte("IRSfGpQL", v[0]) >= 0
}

// optParseInterval reads a -q interval the way sendmail 8 does: one or
// more numbers, each followed by a unit (s, m, h, d, w), a number without
// a unit counting minutes. "30m", "1h30m", "2d", "90s" and "15" all work;
// zero means run once.
func optParseInterval(v string) (time.Duration, bool) {
	if v == "" {
		return 0, false
	}
	var total time.Duration
	for v != "" {
		n := 0
		for n < len(v) && v[n] >= '0' && v[n] <= '9' {
			n++
		}
		if n == 0 {
			return 0, false
		}
		num, err := strconv.ParseInt(v[:n], 10, 64)
		if err != nil {
			return 0, false
		}
		v = v[n:]
		unit := time.Minute
		if v != "" && (v[0] < '0' || v[0] > '9') {
			switch v[0] {
			case 's':
				unit = time.Second
			case 'm':
				unit = time.Minute
			case 'h':
				unit = time.Hour
			case 'd':
				unit = 24 * time.Hour
			case 'w':
				unit = 7 * 24 * time.Hour
			default:
				return 0, false
			}
			v = v[1:]
		}
		if num > int64(math.MaxInt64/unit) {
			return 0, false
		}
		part := time.Duration(num) * unit
		if total > math.MaxInt64-part {
			return 0, false
		}
		total += part
	}
	return total, true
}
