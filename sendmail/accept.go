package sendmail

import (
	"bytes"
	"fmt"
	"io"
	"strings"
	"time"

	"relaymail/config"
	"relaymail/message"
	"relaymail/relay"
)

// Message is a message relaymail has accepted from its caller: the
// message.Message (id, envelope, content as it will go on the wire:
// rewritten header block, then the body as read; the relay's wire writer
// turns line endings into CRLF and dot-stuffs), and what the intake
// learnt on the way.
type Message struct {
	// Message: To holds the recipients qualified, alias-expanded and
	// de-duplicated; Body is the Spool.
	message.Message
	Invalid  []string // operands that are not addresses, each with the reason
	Header   *Header
	Stats    IntakeStats
	Changes  []string // what Rewrite changed, for -v and the log
	Warnings []string // alias-file problems and the like, for the log

	spool *Spool
}

// Spool is the spooled body as read from the caller.
func (m *Message) Spool() *Spool { return m.spool }

// Close releases the spooled body.
func (m *Message) Close() error { return m.spool.Close() }

// Acceptor turns what a caller hands relaymail into Messages.
type Acceptor struct {
	Config *config.Config
	Caller Caller
	Now    func() time.Time          // nil: time.Now
	Spill  func() (SpillFile, error) // where big bodies go; nil: TempSpill
}

// Accept reads one message from stdin to its end and works out its
// envelope: the sender (SPEC §4), the recipients from the operands and,
// with -t, the headers (aliases applied, bare names qualified,
// duplicates removed), and the header rewrites of SPEC §3.
//
// Errors wrap ErrUsage (no recipients, a bad operand or -f) or ErrData
// (an unparsable message or header address). stdin has been read to its
// end whatever Accept returns.
func (a *Acceptor) Accept(stdin io.Reader, o *Options) (*Message, error) {
	return a.accept(stdin, o, o.IgnoreDots, func(m *Message) error {
		return m.envelope(o, a.Config, a.Caller)
	})
}

// AcceptSMTP is Accept for a message that came in over SMTP (-bs, -bd):
// data is the DATA payload, already dot-unstuffed, and the envelope is
// the session's MAIL FROM and RCPT TO instead of the command line and the
// headers. The sender follows SPEC §4 with MAIL FROM in the place of -f;
// the null sender stays null. Recipients go through aliases and
// qualification as on the command line.
func (a *Acceptor) AcceptSMTP(data io.Reader, o *Options, from string, to []string) (*Message, error) {
	return a.accept(data, o, true, func(m *Message) error {
		sender, err := EnvelopeSender(&Options{Sender: from, SenderSet: true}, a.Config, a.Caller)
		if err != nil {
			return fmt.Errorf("%w: MAIL FROM:<%s>: %v", ErrData, from, err)
		}
		m.From = sender
		aliases, warnings := LoadAliases(a.Config)
		m.Warnings = append(m.Warnings, warnings...)
		m.To = m.carried(ResolveRecipients(to, aliases, a.Config.Domain))
		if len(m.To) == 0 && len(m.Invalid) == 0 {
			return fmt.Errorf("%w: no recipients", ErrUsage)
		}
		return nil
	})
}

// accept reads the message, lets envelope work out the envelope, and
// applies the header rewrites.
func (a *Acceptor) accept(r io.Reader, o *Options, ignoreDots bool, envelope func(*Message) error) (*Message, error) {
	cfg, caller := a.Config, a.Caller
	now := time.Now()
	if a.Now != nil {
		now = a.Now()
	}
	body := NewSpool(DefaultSpoolMemory, a.Spill)
	// The wire size is counted in the pass that spools the body, so that
	// a large body is not read back once more before MAIL for SIZE=.
	wire := relay.NewWireCounter()
	h, stats, err := ReadMessage(r, IntakeOptions{IgnoreDots: ignoreDots}, io.MultiWriter(body, wire))
	if err != nil {
		body.Close()
		return nil, err
	}
	m := &Message{Header: h, Stats: stats, spool: body}
	m.ID = message.NewID(now) // one id scheme: it becomes the queue id
	m.Envelope = message.Envelope{EightBit: stats.EightBit || o.Body8BitMIME, Notify: o.Notify, Ret: o.Ret, EnvID: o.EnvID}
	m.Body = body
	if err := envelope(m); err != nil {
		body.Close()
		return nil, err
	}
	fullName := o.FullName
	if fullName == "" {
		fullName = caller.Name
	}
	m.Changes = Rewrite(h, RewriteOptions{
		Domain:      cfg.Domain,
		Hostname:    cfg.Hostname,
		Sender:      m.From,
		FullName:    fullName,
		RewriteFrom: cfg.RewriteFromHeader,
		Now:         now,
	})
	if n := h.FoldLongLines(); n > 0 {
		m.Changes = append(m.Changes, fmt.Sprintf("folded %d header field(s) with lines over 998 octets", n))
	}
	var head bytes.Buffer
	if _, err := h.WriteTo(&head); err != nil {
		body.Close()
		return nil, err
	}
	m.Head = head.Bytes()
	if n, ok := wire.SizeAfter(m.Head); ok {
		m.Envelope.Size = n // else 0: relay.Deliver measures it
	}
	return m, nil
}

// envelope works out the sender and the recipients.
func (m *Message) envelope(o *Options, cfg *config.Config, caller Caller) error {
	sender, err := EnvelopeSender(o, cfg, caller)
	if err != nil {
		return err
	}
	m.From = sender

	var raw []string
	afterDashDash := o.AfterDashDash
	for _, operand := range o.Recipients {
		if operand == "--" && !afterDashDash {
			afterDashDash = true // "a@x -- -list@x": the rest are recipients
			continue
		}
		addrs, err := operandAddresses(operand, afterDashDash)
		if err != nil {
			m.Invalid = append(m.Invalid, err.Error())
			continue
		}
		raw = append(raw, addrs...)
	}
	if o.ExtractRecipients {
		addrs, err := HeaderRecipients(m.Header)
		if err != nil {
			return err
		}
		raw = append(raw, addrs...)
	}
	aliases, warnings := LoadAliases(cfg)
	m.Warnings = append(m.Warnings, warnings...)
	m.To = m.carried(ResolveRecipients(raw, aliases, cfg.Domain))
	if len(m.To) == 0 && len(m.Invalid) == 0 {
		return fmt.Errorf("%w: no recipients (give them as arguments, or use -t to take them from To:, Cc: and Bcc:)", ErrUsage)
	}
	return nil
}

// carried returns the recipients the wire can carry (relay.CheckAddress,
// the rule Send applies) and files every other one in m.Invalid: it is
// refused alone and the others still get the message (SPEC §3), where
// Send would refuse the whole envelope. The check comes after aliases
// and qualification, which make the address that goes on the wire.
func (m *Message) carried(rcpts []string) []string {
	kept := rcpts[:0]
	for _, r := range rcpts {
		if err := relay.CheckAddress(r); err != nil {
			m.Invalid = append(m.Invalid, fmt.Sprintf("%.80q: %v", r, err))
			continue
		}
		kept = append(kept, r)
	}
	return kept
}

// operandAddresses parses one command-line recipient operand. Before any
// "--", an operand that starts with "-" is an option given after the
// first recipient (Ruby mail 2.7 passes "[-i] -f x -- root"; getopt
// scanning has stopped by then): it is reported, not mailed to. After a
// "--" it is an address like any other ("-list@example.com" is valid).
func operandAddresses(operand string, afterDashDash bool) ([]string, error) {
	if strings.HasPrefix(operand, "-") && !afterDashDash {
		return nil, fmt.Errorf("%q: an option after the first recipient is not an address", operand)
	}
	addrs, err := ParseAddressList(operand, "")
	if err != nil {
		return nil, fmt.Errorf("%q: not an address", operand)
	}
	return addrs, nil
}

// EnvelopeSender applies SPEC §4: -f/-r when given and from_override is
// on, else the configured from, else LOGIN@domain for the calling user.
func EnvelopeSender(o *Options, cfg *config.Config, caller Caller) (string, error) {
	if o.SenderSet && cfg.FromOverride {
		s, err := ParseSender(o.Sender, cfg.Domain)
		if err == nil {
			err = relay.CheckAddress(s)
		}
		if err != nil {
			return "", fmt.Errorf("%w: -f %.80q: %v", ErrUsage, o.Sender, err)
		}
		return s, nil
	}
	if cfg.From != "" {
		return cfg.From, nil
	}
	return caller.Login + "@" + cfg.Domain, nil
}

// LoadAliases builds the alias table from the config's [aliases] and its
// aliases_file, read at each run so that an edit needs no newaliases. A
// missing or broken file costs a warning, never the mail.
func LoadAliases(cfg *config.Config) (*Aliases, []string) {
	var fileTable map[string][]string
	var warnings []string
	if cfg.AliasesFile != "" {
		f, err := config.OpenRegular(cfg.AliasesFile)
		switch {
		case err != nil:
			warnings = append(warnings, fmt.Sprintf("aliases: %v", err))
		default:
			var w []string
			fileTable, w, err = ParseAliases(f, cfg.AliasesFile)
			f.Close()
			warnings = append(warnings, w...)
			if err != nil {
				warnings = append(warnings, fmt.Sprintf("aliases: %v", err))
			}
		}
	}
	return NewAliases(cfg.Aliases, fileTable), warnings
}

// ResolveRecipients expands bare names through the aliases, qualifies
// what is still bare with domain, and removes duplicates (compared without
// regard to case, first spelling kept), keeping the order of first
// appearance.
func ResolveRecipients(raw []string, aliases *Aliases, domain string) []string {
	seen := make(map[string]bool)
	var out []string
	add := func(addr string) {
		key := strings.ToLower(addr)
		if !seen[key] {
			seen[key] = true
			out = append(out, addr)
		}
	}
	for _, addr := range raw {
		if !IsBareName(addr) {
			add(addr)
			continue
		}
		for _, target := range aliases.Expand(addr) {
			if IsBareName(target) {
				target += "@" + domain
			}
			add(target)
		}
	}
	return out
}
