package sendmail

import (
	"errors"
	"maps"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

// optCapturesDir holds the real caller captures, relative to this package
// (the repository's testdata/clients).
const optCapturesDir = "../testdata/clients"

func rcpts(r ...string) []string { return r }

// optCaptureWant is what ParseArgs must make of every captured argv, keyed
// by "client/NNN". A capture without a row, or a row without a capture,
// fails the test.
var optCaptureWant = map[string]Options{
	"atd-nooutput/001":            {Personality: "sendmail", IgnoreDots: true, Recipients: rcpts("root")},
	"atd/001":                     {Personality: "sendmail", IgnoreDots: true, Recipients: rcpts("root")},
	"bsd-mailx/001":               {Personality: "sendmail", IgnoreDots: true, ExtractRecipients: true},
	"bsd-mailx/002":               {Personality: "sendmail", IgnoreDots: true, ExtractRecipients: true, Sender: "sender@example.com", SenderSet: true},
	"bsd-mailx/003":               {Personality: "sendmail", IgnoreDots: true, ExtractRecipients: true},
	"bsd-mailx/004":               {Personality: "sendmail", IgnoreDots: true, ExtractRecipients: true},
	"cron-debian-nonroot/001":     {Personality: "sendmail", FullName: "CronDaemon", IgnoreDots: true, Body8BitMIME: true, Ignored: rcpts("-oem"), Recipients: rcpts("ops@example.com")},
	"cron-debian/001":             {Personality: "sendmail", FullName: "CronDaemon", IgnoreDots: true, Body8BitMIME: true, Ignored: rcpts("-oem"), Recipients: rcpts("root")},
	"cron-debian/002":             {Personality: "sendmail", FullName: "CronDaemon", IgnoreDots: true, Body8BitMIME: true, Ignored: rcpts("-oem"), Recipients: rcpts("ops@example.com,second@example.com")},
	"cron-debian/003":             {Personality: "sendmail", FullName: "CronDaemon", IgnoreDots: true, Body8BitMIME: true, Ignored: rcpts("-oem"), Recipients: rcpts("ops@example.com")},
	"git-send-email/001":          {Personality: "sendmail", IgnoreDots: true, Recipients: rcpts("list@example.com", "cc@example.com", "dev@example.com", "bcc@example.com")},
	"git-send-email/002":          {Personality: "sendmail", IgnoreDots: true, Recipients: rcpts("list@example.com", "dev@example.com")},
	"git-send-email/003":          {Personality: "sendmail", Verbose: true, Sender: "bounce@example.com", SenderSet: true, IgnoreDots: true, Recipients: rcpts("list@example.com", "dev@example.com")},
	"icinga-notify-bsd-mailx/001": {Personality: "sendmail", IgnoreDots: true, ExtractRecipients: true},
	"icinga-notify-mailutils/001": {Personality: "sendmail", IgnoreDots: true, ExtractRecipients: true, Sender: "icinga@example.com", SenderSet: true},
	"logwatch/001":                {Personality: "sendmail", ExtractRecipients: true},
	"mailutils/001":               {Personality: "sendmail", IgnoreDots: true, ExtractRecipients: true, Sender: "root@vm", SenderSet: true},
	"mailutils/002":               {Personality: "sendmail", IgnoreDots: true, ExtractRecipients: true, Sender: "root@vm", SenderSet: true},
	"mailutils/003":               {Personality: "sendmail", IgnoreDots: true, ExtractRecipients: true, Sender: "root@vm", SenderSet: true},
	"mailutils/004":               {Personality: "sendmail", IgnoreDots: true, ExtractRecipients: true, Sender: "Sender", SenderSet: true},
	"mutt/001":                    {AfterDashDash: true, Personality: "sendmail", Recipients: rcpts("user@example.com")},
	"mutt/002":                    {AfterDashDash: true, Personality: "sendmail", IgnoreDots: true, Sender: "sender@example.com", SenderSet: true, Ignored: rcpts("-oem"), Recipients: rcpts("to1@example.com", "to2@example.com", "cc@example.com", "bcc@example.com")},
	"mutt/003":                    {AfterDashDash: true, Personality: "sendmail", IgnoreDots: true, Ignored: rcpts("-oem"), Recipients: rcpts("root@vm")},
	"mutt/004":                    {AfterDashDash: true, Personality: "sendmail", IgnoreDots: true, Ignored: rcpts("-oem"), Recipients: rcpts("root@vm", "bcc@example.com")},
	"mutt/005":                    {AfterDashDash: true, Personality: "sendmail", IgnoreDots: true, Body8BitMIME: true, Sender: "bounce@example.com", SenderSet: true, Notify: rcpts("FAILURE", "DELAY"), Ret: "HDRS", Ignored: rcpts("-oem"), Recipients: rcpts("ops@example.com")},
	"nodemailer/001":              {Personality: "sendmail", IgnoreDots: true, Sender: "app@example.com", SenderSet: true, Recipients: rcpts("a@example.com", "b@example.com", "c@example.com", "hidden@example.com")},
	"nodemailer/002":              {Personality: "sendmail", IgnoreDots: true, ExtractRecipients: true},
	"nodemailer/003":              {Personality: "sendmail", IgnoreDots: true, Sender: "app@example.com", SenderSet: true, Recipients: rcpts("ops@example.com")},
	"nodemailer/004":              {Personality: "sendmail", IgnoreDots: true, Sender: "app@example.com", SenderSet: true, Recipients: rcpts("ops@example.com")},
	"nodemailer/005":              {Personality: "sendmail", IgnoreDots: true, Sender: "app@example.com", SenderSet: true, Recipients: rcpts("ops@example.com")},
	"nodemailer/006":              {Personality: "sendmail", IgnoreDots: true, ExtractRecipients: true, Recipients: rcpts("ops@example.com", "hidden@example.com")},
	"perl-email-sender/001":       {AfterDashDash: true, Personality: "sendmail", IgnoreDots: true, Sender: "app@example.com", SenderSet: true, Recipients: rcpts("a@example.com")},
	"perl-email-sender/002":       {AfterDashDash: true, Personality: "sendmail", IgnoreDots: true, Sender: "bounce@example.com", SenderSet: true, Recipients: rcpts("x@example.com", "root")},
	"perl-mail-mailer/001":        {Personality: "sendmail", ExtractRecipients: true},
	"perl-mime-lite/001":          {Personality: "sendmail", ExtractRecipients: true, IgnoreDots: true, Sender: "app@example.com", SenderSet: true, Ignored: rcpts("-oem")},
	"perl-mime-lite/002":          {Personality: "sendmail", ExtractRecipients: true, IgnoreDots: true, Ignored: rcpts("-oem")},
	"php-phpmailer/001":           {Personality: "sendmail", ExtractRecipients: true, IgnoreDots: true, Sender: "app@example.com", SenderSet: true},
	"php-phpmailer/002":           {Personality: "sendmail", ExtractRecipients: true, IgnoreDots: true, Sender: "app@example.com", SenderSet: true},
	"php-swiftmailer/001":         {Personality: "sendmail", Mode: ModeSMTP},
	"php-swiftmailer/002":         {Personality: "sendmail", ExtractRecipients: true, Sender: "app@example.com", SenderSet: true},
	"php-swiftmailer/003":         {Personality: "sendmail", ExtractRecipients: true, IgnoreDots: true, Sender: "app@example.com", SenderSet: true},
	"php-symfony-mailer/001":      {Personality: "sendmail", Mode: ModeSMTP},
	"php-symfony-mailer/002":      {AfterDashDash: true, Personality: "sendmail", IgnoreDots: true, Sender: "app@example.com", SenderSet: true, Recipients: rcpts("a@example.com", "c@example.com", "hidden@example.com")},
	"php-symfony-mailer/003":      {AfterDashDash: true, Personality: "sendmail", Sender: "app@example.com", SenderSet: true, Recipients: rcpts("a@example.com", "c@example.com", "hidden@example.com")},
	"php-symfony-mailer/004":      {Personality: "sendmail", Mode: ModeSMTP, IgnoreDots: true},
	"php/001":                     {Personality: "sendmail", ExtractRecipients: true, IgnoreDots: true},
	"php/002":                     {Personality: "sendmail", ExtractRecipients: true, IgnoreDots: true, Sender: "bounce@example.com", SenderSet: true},
	"php/003":                     {Personality: "sendmail", ExtractRecipients: true, IgnoreDots: true, Sender: "bounce2@example.com", SenderSet: true},
	"php/004":                     {Personality: "sendmail", ExtractRecipients: true, IgnoreDots: true, Sender: "envelope@example.com", SenderSet: true},
	"php/005":                     {Personality: "sendmail", ExtractRecipients: true, IgnoreDots: true},
	"ruby-mail/001":               {AfterDashDash: true, Personality: "sendmail", IgnoreDots: true, Sender: "app@example.com", SenderSet: true, Recipients: rcpts("a@example.com", "b@example.com", "c@example.com", "hidden@example.com")},
	// "[-i]" is the first operand, so getopt stops there: -f, its value
	// and "--" are operands too (the caller's bug; it will bounce).
	"ruby-mail/002":           {Personality: "sendmail", Recipients: rcpts("[-i]", "-f", "bounce@example.com", "--", "root")},
	"ruby-mail/003":           {AfterDashDash: true, Personality: "sendmail", IgnoreDots: true, Sender: "app@example.com", SenderSet: true, Recipients: rcpts("root")},
	"s-nail/001":              {AfterDashDash: true, Personality: "sendmail", IgnoreDots: true, Recipients: rcpts("user@example.com")},
	"s-nail/002":              {AfterDashDash: true, Personality: "sendmail", IgnoreDots: true, FullName: "Sender Name", Sender: "sender@example.com", SenderSet: true, Recipients: rcpts("to1@example.com", "to2@example.com", "cc@example.com", "bcc@example.com")},
	"s-nail/003":              {AfterDashDash: true, Personality: "sendmail", IgnoreDots: true, Recipients: rcpts("root")},
	"s-nail/004":              {AfterDashDash: true, Personality: "sendmail", IgnoreDots: true, Recipients: rcpts("root")},
	"s-nail/005":              {AfterDashDash: true, Personality: "sendmail", IgnoreDots: true, Ignored: rcpts("-oem"), Recipients: rcpts("root")},
	"s-nail/006":              {AfterDashDash: true, Personality: "sendmail", IgnoreDots: true, Recipients: rcpts("root")},
	"sudo/001":                {Personality: "sendmail", ExtractRecipients: true},
	"sudo/002":                {Personality: "sendmail", ExtractRecipients: true},
	"systemd-cron-1.15/001":   {Personality: "sendmail", IgnoreDots: true, Body8BitMIME: true, Recipients: rcpts("ops@example.com")},
	"unattended-upgrades/001": {Personality: "sendmail", IgnoreDots: true, ExtractRecipients: true},
}

// optReadCaptures returns every captured argv by "client/NNN".
func optReadCaptures(t testing.TB) map[string][]string {
	t.Helper()
	if _, err := os.Stat(optCapturesDir); err != nil {
		t.Fatalf("captures missing (they are part of the repository): %v", err)
	}
	files, err := filepath.Glob(filepath.Join(optCapturesDir, "*", "*", "argv.nul"))
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string][]string)
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		dir := filepath.Dir(f)
		key := filepath.Base(filepath.Dir(dir)) + "/" + filepath.Base(dir)
		out[key] = strings.Split(strings.TrimSuffix(string(raw), "\x00"), "\x00")
	}
	return out
}

func TestParseArgsCaptures(t *testing.T) {
	captures := optReadCaptures(t)
	if len(captures) == 0 {
		t.Fatalf("no argv.nul under %s", optCapturesDir)
	}
	for key := range optCaptureWant {
		if _, ok := captures[key]; !ok {
			t.Errorf("%s: expected a capture, found none", key)
		}
	}
	for _, key := range slices.Sorted(maps.Keys(captures)) {
		argv := captures[key]
		t.Run(key, func(t *testing.T) {
			want, ok := optCaptureWant[key]
			if !ok {
				t.Fatalf("no expected Options for capture %q (argv %q)", key, argv)
			}
			got, err := ParseArgs(argv)
			if err != nil {
				t.Fatalf("ParseArgs(%q): %v", argv, err)
			}
			if !reflect.DeepEqual(*got, want) {
				t.Errorf("ParseArgs(%q)\n got %+v\nwant %+v", argv, *got, want)
			}
		})
	}
}

func TestParseArgs(t *testing.T) {
	const sm = "/usr/sbin/sendmail"
	base := func(mut func(o *Options)) *Options {
		o := &Options{Personality: "sendmail"}
		if mut != nil {
			mut(o)
		}
		return o
	}
	tests := []struct {
		name    string
		argv    []string
		want    *Options // nil when an error is expected
		wantErr string   // the whole error text
	}{
		// argv[0] and personalities
		{"no args", []string{sm}, base(nil), ""},
		{"empty argv", nil, base(nil), ""},
		{"lib path", []string{"/usr/lib/sendmail", "root"}, base(func(o *Options) { o.Recipients = rcpts("root") }), ""},
		{"other name is sendmail", []string{"/usr/bin/relaymail", "-t"}, base(func(o *Options) { o.ExtractRecipients = true }), ""},
		{"mailq", []string{"/usr/bin/mailq"}, &Options{Personality: "mailq", Mode: ModeListQueue}, ""},
		{"mailq -v", []string{"mailq", "-v"}, &Options{Personality: "mailq", Mode: ModeListQueue, Verbose: true}, ""},
		{"mailq -qR filter stays a listing", []string{"mailq", "-qRexample.com"}, &Options{Personality: "mailq", Mode: ModeListQueue, Ignored: rcpts("-qRexample.com")}, ""},
		{"newaliases", []string{"/usr/bin/newaliases"}, &Options{Personality: "newaliases", Mode: ModeNewAliases}, ""},
		{"mailq dir is not a personality", []string{"/opt/mailq/sendmail"}, base(nil), ""},

		// glued and separate values
		{"-f glued", []string{sm, "-fa@x"}, base(func(o *Options) { o.Sender, o.SenderSet = "a@x", true }), ""},
		{"-f separate", []string{sm, "-f", "a@x"}, base(func(o *Options) { o.Sender, o.SenderSet = "a@x", true }), ""},
		{"-r", []string{sm, "-r", "Name <a@x>"}, base(func(o *Options) { o.Sender, o.SenderSet = "Name <a@x>", true }), ""},
		{"-f empty is the null sender", []string{sm, "-f", "", "root"}, base(func(o *Options) { o.SenderSet = true; o.Recipients = rcpts("root") }), ""},
		{"-f <>", []string{sm, "-f<>"}, base(func(o *Options) { o.Sender, o.SenderSet = "<>", true }), ""},
		{"-f last wins", []string{sm, "-fa@x", "-r", "b@y"}, base(func(o *Options) { o.Sender, o.SenderSet = "b@y", true }), ""},
		{"-f value may look like a flag", []string{sm, "-f", "-t"}, base(func(o *Options) { o.Sender, o.SenderSet = "-t", true }), ""},
		{"-f missing value", []string{sm, "-t", "-f"}, nil, "option -f requires a value"},
		{"-F glued", []string{sm, "-FCronDaemon"}, base(func(o *Options) { o.FullName = "CronDaemon" }), ""},
		{"-F separate", []string{sm, "-F", "Sender Name"}, base(func(o *Options) { o.FullName = "Sender Name" }), ""},
		{"-B glued", []string{sm, "-B8BITMIME"}, base(func(o *Options) { o.Body8BitMIME = true }), ""},
		{"-B separate", []string{sm, "-B", "8BITMIME"}, base(func(o *Options) { o.Body8BitMIME = true }), ""},
		{"-B lower case", []string{sm, "-B", "8bitmime"}, base(func(o *Options) { o.Body8BitMIME = true }), ""},
		{"-B 7BIT after 8BITMIME", []string{sm, "-B8BITMIME", "-B7BIT"}, base(nil), ""},
		{"-B bad", []string{sm, "-B", "binarymime"}, nil, `-B: "binarymime" is not 7BIT or 8BITMIME`},
		{"-C", []string{sm, "-C", "/tmp/r.toml"}, base(func(o *Options) { o.ConfigFile = "/tmp/r.toml" }), ""},
		{"-C glued", []string{sm, "-C/tmp/r.toml"}, base(func(o *Options) { o.ConfigFile = "/tmp/r.toml" }), ""},
		{"-C empty", []string{sm, "-C", ""}, nil, "-C: empty file name"},
		{"-C missing", []string{sm, "-C"}, nil, "option -C requires a value"},

		// clusters and duplicates
		{"-ti", []string{"sendmail", "-ti"}, base(func(o *Options) { o.ExtractRecipients, o.IgnoreDots = true, true }), ""},
		{"-tif addr", []string{sm, "-tif", "a@x", "b@y"}, base(func(o *Options) {
			o.ExtractRecipients, o.IgnoreDots, o.Sender, o.SenderSet = true, true, "a@x", true
			o.Recipients = rcpts("b@y")
		}), ""},
		{"-tifaddr", []string{sm, "-tifa@x"}, base(func(o *Options) { o.ExtractRecipients, o.IgnoreDots, o.Sender, o.SenderSet = true, true, "a@x", true }), ""},
		{"-vvi", []string{sm, "-vvi"}, base(func(o *Options) { o.Verbose, o.IgnoreDots = true, true }), ""},
		{"duplicates", []string{sm, "-t", "-i", "-oi", "-t"}, base(func(o *Options) { o.ExtractRecipients, o.IgnoreDots = true, true }), ""},
		{"-i -t -i", []string{sm, "-i", "-t", "-i"}, base(func(o *Options) { o.ExtractRecipients, o.IgnoreDots = true, true }), ""},
		{"cluster ignored letters", []string{sm, "-xGt"}, base(func(o *Options) { o.ExtractRecipients = true; o.Ignored = rcpts("-x", "-G") }), ""},

		// end of options
		{"-- ends options", []string{sm, "-i", "--", "-t", "a@x"}, base(func(o *Options) { o.IgnoreDots = true; o.Recipients = rcpts("-t", "a@x"); o.AfterDashDash = true }), ""},
		{"--failed lists failed/", []string{sm, "--failed"}, base(func(o *Options) { o.Mode = ModeListQueue; o.ListFailed = true }), ""},
		{"-- alone", []string{sm, "--"}, base(func(o *Options) { o.AfterDashDash = true }), ""},
		{"first operand ends options", []string{sm, "a@x", "-t"}, base(func(o *Options) { o.Recipients = rcpts("a@x", "-t") }), ""},
		{"lone dash is an operand", []string{sm, "-", "-t"}, base(func(o *Options) { o.Recipients = rcpts("-", "-t") }), ""},
		{"empty arg is an operand", []string{sm, "", "-t"}, base(func(o *Options) { o.Recipients = rcpts("", "-t") }), ""},
		{"[-i] is an operand", []string{sm, "[-i]", "-f", "b@x", "--", "root"}, base(func(o *Options) { o.Recipients = rcpts("[-i]", "-f", "b@x", "--", "root") }), ""},
		{"comma list operand", []string{sm, "a@x,b@y", "Name <c@z>"}, base(func(o *Options) { o.Recipients = rcpts("a@x,b@y", "Name <c@z>") }), ""},

		// -b modes
		{"-bm", []string{sm, "-bm", "root"}, base(func(o *Options) { o.Recipients = rcpts("root") }), ""},
		{"-bs", []string{sm, "-bs"}, base(func(o *Options) { o.Mode = ModeSMTP }), ""},
		{"-b s separate", []string{sm, "-b", "s"}, base(func(o *Options) { o.Mode = ModeSMTP }), ""},
		{"-bd", []string{sm, "-bd"}, base(func(o *Options) { o.Mode = ModeDaemon }), ""},
		{"-bp", []string{sm, "-bp"}, base(func(o *Options) { o.Mode = ModeListQueue }), ""},
		{"-bi", []string{sm, "-bi"}, base(func(o *Options) { o.Mode = ModeNewAliases }), ""},
		{"-I", []string{sm, "-I"}, base(func(o *Options) { o.Mode = ModeNewAliases }), ""},
		{"-bv", []string{sm, "-bv", "root"}, base(func(o *Options) { o.Mode = ModeVerify; o.Recipients = rcpts("root") }), ""},
		{"last -b wins", []string{sm, "-bp", "-bs"}, base(func(o *Options) { o.Mode = ModeSMTP }), ""},
		{"-bt", []string{sm, "-bt"}, nil, "-bt is not supported"},
		{"-bD", []string{sm, "-bD"}, nil, "-bD is not supported"},
		{"-bh", []string{sm, "-bh"}, nil, "-bh is not supported"},
		{"-bH", []string{sm, "-bH"}, nil, "-bH is not supported"},
		{"-bP", []string{sm, "-b", "P"}, nil, "-bP is not supported"},
		{"-bl", []string{sm, "-bl"}, nil, "-bl is not supported"},
		{"-bx", []string{sm, "-bx"}, nil, `-b: "x" is not a mode relaymail knows (m, s, d, p, i, v)`},
		{"-bsx", []string{sm, "-bsx"}, nil, `-b: "sx" is not a mode relaymail knows (m, s, d, p, i, v)`},
		{"-b missing", []string{sm, "-b"}, nil, "option -b requires a value"},
		{"-tb cluster", []string{sm, "-tbs"}, base(func(o *Options) { o.ExtractRecipients = true; o.Mode = ModeSMTP }), ""},

		// -q
		{"-q", []string{sm, "-q"}, base(func(o *Options) { o.Mode = ModeRunQueue }), ""},
		{"-q30m", []string{sm, "-q30m"}, base(func(o *Options) { o.Mode = ModeRunQueue; o.QueueInterval = 30 * time.Minute }), ""},
		{"-q1h", []string{sm, "-q1h"}, base(func(o *Options) { o.Mode = ModeRunQueue; o.QueueInterval = time.Hour }), ""},
		{"-q90s", []string{sm, "-q90s"}, base(func(o *Options) { o.Mode = ModeRunQueue; o.QueueInterval = 90 * time.Second }), ""},
		{"-q1h30m", []string{sm, "-q1h30m"}, base(func(o *Options) { o.Mode = ModeRunQueue; o.QueueInterval = 90 * time.Minute }), ""},
		{"-q2d", []string{sm, "-q2d"}, base(func(o *Options) { o.Mode = ModeRunQueue; o.QueueInterval = 48 * time.Hour }), ""},
		{"-q15 bare minutes", []string{sm, "-q15"}, base(func(o *Options) { o.Mode = ModeRunQueue; o.QueueInterval = 15 * time.Minute }), ""},
		{"-q0 runs once", []string{sm, "-q0"}, base(func(o *Options) { o.Mode = ModeRunQueue }), ""},
		{"-qIid", []string{sm, "-qIABC123"}, base(func(o *Options) { o.Mode = ModeRunQueue; o.Ignored = rcpts("-qIABC123") }), ""},
		{"-qRdomain", []string{sm, "-qRexample.com"}, base(func(o *Options) { o.Mode = ModeRunQueue; o.Ignored = rcpts("-qRexample.com") }), ""},
		{"-qSsender", []string{sm, "-qSroot"}, base(func(o *Options) { o.Mode = ModeRunQueue; o.Ignored = rcpts("-qSroot") }), ""},
		{"-q!R", []string{sm, "-q!Rfoo"}, base(func(o *Options) { o.Mode = ModeRunQueue; o.Ignored = rcpts("-q!Rfoo") }), ""},
		{"-qf", []string{sm, "-qf"}, base(func(o *Options) { o.Mode = ModeRunQueue; o.Ignored = rcpts("-qf") }), ""},
		{"-qp5m", []string{sm, "-qp5m"}, base(func(o *Options) { o.Mode = ModeRunQueue; o.Ignored = rcpts("-qp5m") }), ""},
		{"-qG", []string{sm, "-qGgroup"}, base(func(o *Options) { o.Mode = ModeRunQueue; o.Ignored = rcpts("-qGgroup") }), ""},
		{"-q separate value is an operand", []string{sm, "-q", "30m"}, base(func(o *Options) { o.Mode = ModeRunQueue; o.Recipients = rcpts("30m") }), ""},
		{"-vq30m cluster", []string{sm, "-vq30m"}, base(func(o *Options) { o.Verbose = true; o.Mode = ModeRunQueue; o.QueueInterval = 30 * time.Minute }), ""},
		{"-q bad", []string{sm, "-qx"}, nil, `-q: "x" is not a queue interval (30m, 1h, 2d) or filter (I, R, S, f, G, p)`},
		{"-q bad unit", []string{sm, "-q30y"}, nil, `-q: "30y" is not a queue interval (30m, 1h, 2d) or filter (I, R, S, f, G, p)`},
		{"-q overflow", []string{sm, "-q99999999999999999w"}, nil, `-q: "99999999999999999w" is not a queue interval (30m, 1h, 2d) or filter (I, R, S, f, G, p)`},
		{"-bd -q30m", []string{sm, "-bd", "-q30m"}, base(func(o *Options) { o.Mode = ModeDaemon; o.QueueInterval = 30 * time.Minute }), ""},
		{"-q30m -bd", []string{sm, "-q30m", "-bd"}, base(func(o *Options) { o.Mode = ModeDaemon; o.QueueInterval = 30 * time.Minute }), ""},

		// -d and the long options
		{"-d0.1", []string{sm, "-d0.1"}, base(func(o *Options) { o.Mode = ModeVersion }), ""},
		{"-d", []string{sm, "-d"}, base(func(o *Options) { o.Mode = ModeVersion }), ""},
		{"-d0.1 -bv root", []string{sm, "-d0.1", "-bv", "root"}, base(func(o *Options) { o.Mode = ModeVersion; o.Recipients = rcpts("root") }), ""},
		{"-bv -d0.1", []string{sm, "-bv", "-d0.1"}, base(func(o *Options) { o.Mode = ModeVersion }), ""},
		{"--version", []string{sm, "--version"}, base(func(o *Options) { o.Mode = ModeVersion }), ""},
		{"--help", []string{sm, "--help"}, base(func(o *Options) { o.Mode = ModeHelp }), ""},
		{"--help wins", []string{sm, "--version", "-bs", "--help"}, base(func(o *Options) { o.Mode = ModeHelp }), ""},
		{"--check", []string{sm, "--check"}, base(func(o *Options) { o.Mode = ModeCheck }), ""},
		{"--check -C", []string{sm, "-C", "/x.toml", "--check"}, base(func(o *Options) { o.Mode = ModeCheck; o.ConfigFile = "/x.toml" }), ""},
		{"--dry-run", []string{sm, "--dry-run", "-t"}, base(func(o *Options) { o.DryRun, o.ExtractRecipients = true, true }), ""},
		{"long after operand is an operand", []string{sm, "root", "--help"}, base(func(o *Options) { o.Recipients = rcpts("root", "--help") }), ""},
		{"unknown long", []string{sm, "--requeues", "X"}, nil, `unknown option "--requeues"`},
		{"long with value", []string{sm, "--help=yes"}, nil, `unknown option "--help=yes"`},

		// -o and -O
		{"-o i separate", []string{sm, "-o", "i"}, base(func(o *Options) { o.IgnoreDots = true }), ""},
		{"-oiFalse", []string{sm, "-i", "-oiFalse"}, base(nil), ""},
		{"-odq", []string{sm, "-odq"}, base(func(o *Options) { o.QueueOnly = true }), ""},
		{"-odb", []string{sm, "-odb"}, base(func(o *Options) { o.QueueOnly = true }), ""},
		{"-o dq", []string{sm, "-o", "dq"}, base(func(o *Options) { o.QueueOnly = true }), ""},
		{"-odi ignored", []string{sm, "-odi"}, base(func(o *Options) { o.Ignored = rcpts("-odi") }), ""},
		{"-odq -odi last wins", []string{sm, "-odq", "-odi"}, base(func(o *Options) { o.Ignored = rcpts("-odi") }), ""},
		{"-o ignored family", []string{sm, "-oem", "-oep", "-oee", "-oeq", "-oew", "-om", "-o7", "-o8", "-oAfoo", "-o", "Lx"},
			base(func(o *Options) {
				o.Ignored = rcpts("-oem", "-oep", "-oee", "-oeq", "-oew", "-om", "-o7", "-o8", "-oAfoo", "-oLx")
			}), ""},
		{"-o missing", []string{sm, "-o"}, nil, "option -o requires a value"},
		{"-O IgnoreDots", []string{sm, "-O", "IgnoreDots"}, base(func(o *Options) { o.IgnoreDots = true }), ""},
		{"-O IgnoreDots=true", []string{sm, "-OIgnoreDots=true"}, base(func(o *Options) { o.IgnoreDots = true }), ""},
		{"-O ignoredots=T", []string{sm, "-O", "ignoredots=T"}, base(func(o *Options) { o.IgnoreDots = true }), ""},
		{"-O IgnoreDots=yes", []string{sm, "-O", "IgnoreDots=yes"}, base(func(o *Options) { o.IgnoreDots = true }), ""},
		{"-O IgnoreDots=false", []string{sm, "-i", "-O", "IgnoreDots=false"}, base(nil), ""},
		{"-O IgnoreDots=maybe", []string{sm, "-O", "IgnoreDots=maybe"}, base(func(o *Options) { o.Ignored = rcpts("-OIgnoreDots=maybe") }), ""},
		{"-O DeliveryMode=q", []string{sm, "-O", "DeliveryMode=q"}, base(func(o *Options) { o.QueueOnly = true }), ""},
		{"-O DeliveryMode=background", []string{sm, "-O", "deliverymode=background"}, base(func(o *Options) { o.QueueOnly = true }), ""},
		{"-O other", []string{sm, "-O", "LogLevel=9"}, base(func(o *Options) { o.Ignored = rcpts("-OLogLevel=9") }), ""},

		// DSN
		{"-N never", []string{sm, "-N", "never"}, base(func(o *Options) { o.Notify = rcpts("NEVER") }), ""},
		{"-N list", []string{sm, "-Nsuccess,delay,failure"}, base(func(o *Options) { o.Notify = rcpts("SUCCESS", "DELAY", "FAILURE") }), ""},
		{"-N spaces and case", []string{sm, "-N", " Failure, DELAY "}, base(func(o *Options) { o.Notify = rcpts("FAILURE", "DELAY") }), ""},
		{"-N duplicates", []string{sm, "-N", "failure,failure"}, base(func(o *Options) { o.Notify = rcpts("FAILURE") }), ""},
		{"-N bad", []string{sm, "-N", "sometimes"}, nil, `-N: "sometimes" is not never or a list of success, delay, failure`},
		{"-N never and more", []string{sm, "-N", "never,success"}, nil, `-N: "never,success" is not never or a list of success, delay, failure`},
		{"-N empty", []string{sm, "-N", ""}, nil, `-N: "" is not never or a list of success, delay, failure`},
		{"-R full", []string{sm, "-R", "full"}, base(func(o *Options) { o.Ret = "FULL" }), ""},
		{"-RHDRS", []string{sm, "-RHDRS"}, base(func(o *Options) { o.Ret = "HDRS" }), ""},
		{"-R bad", []string{sm, "-R", "body"}, nil, `-R: "body" is not full or hdrs`},
		{"-V", []string{sm, "-V", "QQ314159"}, base(func(o *Options) { o.EnvID = "QQ314159" }), ""},
		{"-V glued", []string{sm, "-Vabc+def=1"}, base(func(o *Options) { o.EnvID = "abc+def=1" }), ""},
		{"-V 8-bit", []string{sm, "-V", "caf\xc3\xa9"}, nil, `-V: "café" is not an envelope ID of 1 to 100 printable ASCII characters`},
		{"-V control", []string{sm, "-V", "a\tb"}, nil, `-V: "a\tb" is not an envelope ID of 1 to 100 printable ASCII characters`},
		{"-V empty", []string{sm, "-V", ""}, nil, `-V: "" is not an envelope ID of 1 to 100 printable ASCII characters`},
		{"-V too long", []string{sm, "-V", strings.Repeat("x", 101)}, nil, `-V: "` + strings.Repeat("x", 101) + `" is not an envelope ID of 1 to 100 printable ASCII characters`},

		// accepted and ignored
		{"ignored with values", []string{sm, "-h", "5", "-Lsm-mta", "-X", "/tmp/t", "-e", "m", "-pESMTP", "-Am", "-Ac", "root"},
			base(func(o *Options) {
				o.Ignored = rcpts("-h5", "-Lsm-mta", "-X/tmp/t", "-em", "-pESMTP", "-Am", "-Ac")
				o.Recipients = rcpts("root")
			}), ""},
		{"ignored letters", []string{sm, "-G", "-U", "-c", "-m", "-n", "-s", "-x", "-T", "-Z", "root"},
			base(func(o *Options) {
				o.Ignored = rcpts("-G", "-U", "-c", "-m", "-n", "-s", "-x", "-T", "-Z")
				o.Unknown = rcpts("-T", "-Z") // the others are documented no-ops
				o.Recipients = rcpts("root")
			}), ""},
		{"sendmail 8 -M takes a value", []string{sm, "-MrESMTP", "-t"}, base(func(o *Options) { o.ExtractRecipients = true; o.Ignored = rcpts("-MrESMTP") }), ""},
		{"sendmail 8 -D takes a value", []string{sm, "-D", "/tmp/log", "root"}, base(func(o *Options) { o.Ignored = rcpts("-D/tmp/log"); o.Recipients = rcpts("root") }), ""},
		{"-h missing", []string{sm, "-h"}, nil, "option -h requires a value"},
		{"non-ASCII letter", []string{sm, "-é", "root"}, base(func(o *Options) { o.Ignored = rcpts("-é"); o.Unknown = rcpts("-é"); o.Recipients = rcpts("root") }), ""},

		// line breaks
		{"LF in operand", []string{sm, "-t", "a@x\nBcc: evil@y"}, nil, "argument 2 contains a line break"},
		{"CR in -f", []string{sm, "-f", "a@x\r"}, nil, "argument 2 contains a line break"},
		{"LF after --", []string{sm, "--", "a", "b\n"}, nil, "argument 3 contains a line break"},
		{"LF in -F glued", []string{sm, "-FName\nX-Evil: 1"}, nil, "argument 1 contains a line break"},
		{"LF in ignored value", []string{sm, "-L", "a\nb"}, nil, "argument 2 contains a line break"},
		{"LF beats -bt", []string{sm, "-bt", "\n"}, nil, "argument 2 contains a line break"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseArgs(tt.argv)
			if tt.want == nil {
				if err == nil {
					t.Fatalf("ParseArgs(%q) = %+v, want error %q", tt.argv, *got, tt.wantErr)
				}
				if !errors.Is(err, ErrUsage) {
					t.Errorf("error %v does not wrap ErrUsage", err)
				}
				if err.Error() != tt.wantErr {
					t.Errorf("error text\n got %q\nwant %q", err.Error(), tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("ParseArgs(%q): %v", tt.argv, err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ParseArgs(%q)\n got %+v\nwant %+v", tt.argv, *got, *tt.want)
			}
		})
	}
}

func TestParseArgsDoesNotAliasArgv(t *testing.T) {
	argv := []string{"sendmail", "a@x", "b@y"}
	o, err := ParseArgs(argv)
	if err != nil {
		t.Fatal(err)
	}
	argv[1] = "changed"
	if o.Recipients[0] != "a@x" {
		t.Errorf("Recipients shares argv's array: %q", o.Recipients)
	}
}

func TestModeString(t *testing.T) {
	seen := map[string]Mode{}
	for m := ModeDeliver; m <= ModeCheck; m++ {
		s := m.String()
		if s == "" || strings.HasPrefix(s, "mode(") {
			t.Errorf("Mode(%d) has no name", m)
		}
		if prev, dup := seen[s]; dup {
			t.Errorf("Mode(%d) and Mode(%d) are both %q", prev, m, s)
		}
		seen[s] = m
	}
	if got := Mode(99).String(); got != "mode(99)" {
		t.Errorf("Mode(99).String() = %q", got)
	}
}

func FuzzParseArgs(f *testing.F) {
	seeds := []string{
		"sendmail\x00-t\x00-i",
		"/usr/sbin/sendmail\x00-tif\x00a@x\x00--\x00b",
		"mailq\x00-qRfoo",
		"sendmail\x00-q1h30m\x00-bd",
		"sendmail\x00-N\x00failure,delay\x00-R\x00hdrs\x00-V\x00id",
		"sendmail\x00-O\x00IgnoreDots=yes\x00-odq",
		"sendmail\x00a\nb",
		"sendmail\x00-d0.1\x00-bv\x00root",
		"sendmail\x00--check\x00--bogus",
	}
	if _, err := os.Stat(optCapturesDir); err == nil {
		files, _ := filepath.Glob(filepath.Join(optCapturesDir, "*", "*", "argv.nul"))
		for _, file := range files {
			if raw, err := os.ReadFile(file); err == nil {
				seeds = append(seeds, strings.TrimSuffix(string(raw), "\x00"))
			}
		}
	}
	for _, s := range seeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, data string) {
		argv := strings.Split(data, "\x00")
		o, err := ParseArgs(argv)
		breaks := false
		for _, a := range argv[1:] {
			breaks = breaks || strings.ContainsAny(a, "\r\n")
		}
		if err != nil {
			if !errors.Is(err, ErrUsage) {
				t.Fatalf("error %v does not wrap ErrUsage", err)
			}
			if strings.ContainsAny(err.Error(), "\r\n") {
				t.Fatalf("error text is more than one line: %q", err.Error())
			}
			return
		}
		if breaks {
			t.Fatalf("ParseArgs(%q) accepted a line break", argv)
		}
		if o.Mode < ModeDeliver || o.Mode > ModeCheck {
			t.Fatalf("mode %d out of range", o.Mode)
		}
		switch o.Personality {
		case "sendmail", "mailq", "newaliases":
		default:
			t.Fatalf("personality %q", o.Personality)
		}
		// The operands are exactly a suffix of argv.
		if n := len(o.Recipients); n > 0 && !slices.Equal(o.Recipients, argv[len(argv)-n:]) {
			t.Fatalf("Recipients %q is not a suffix of %q", o.Recipients, argv)
		}
		if o.Ret != "" && o.Ret != "FULL" && o.Ret != "HDRS" {
			t.Fatalf("Ret %q", o.Ret)
		}
		if o.QueueInterval < 0 {
			t.Fatalf("negative interval %v", o.QueueInterval)
		}
	})
}
