package delivery

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	"relaymail/config"
	"relaymail/relay"
	"relaymail/sendmail"
)

// Print writes the envelope and the message exactly as they would be sent
// (--dry-run): the SMTP commands of the transaction, then the data as it
// would cross the wire, dot-stuffed, with CRLF line endings. Its error is
// the outcome the real run would have for what is decided before it
// connects: the recipients refused at intake (67), so that a script that
// tries --dry-run first learns the status it will get.
func Print(w io.Writer, msg *sendmail.Message) error {
	fmt.Fprintf(w, "MAIL FROM:<%s>\r\n", msg.From)
	for _, rcpt := range msg.To {
		fmt.Fprintf(w, "RCPT TO:<%s>\r\n", rcpt)
	}
	for _, bad := range msg.Invalid {
		fmt.Fprintf(w, "# not a recipient: %s\r\n", bad)
	}
	io.WriteString(w, "DATA\r\n")
	if err := relay.WriteData(w, io.NewSectionReader(msg.Content(), 0, msg.Size())); err != nil {
		return err
	}
	if len(msg.Invalid) > 0 {
		return &Failure{Class: ErrRecipientsRefused, Text: "refused " + strings.Join(msg.Invalid, "; ") + " (dry run: nothing was sent)"}
	}
	return nil
}

// Check connects to every configured host the way a delivery would
// (EHLO, TLS, AUTH), prints what it learnt, and says QUIT (--check). It
// returns the first host's error, classified like a delivery's, except
// that a password source that cannot work (a missing or unreadable
// password_file, a password_command that is not there) is the config
// error it is: a delivery queues the message until it is mended, but
// the administrator running --check wants to hear of the file.
func Check(ctx context.Context, cfg *config.Config, w io.Writer) error {
	var first error
	for i, h := range Hosts(cfg) {
		fmt.Fprintf(w, "%s (tls %s)\n", hostName(h), h.TLS)
		if err := cfg.Smarthosts[i].CheckPassword(); err != nil {
			fmt.Fprintf(w, "  failed: %s\n", err)
			if first == nil {
				first = err
			}
			continue
		}
		s, err := relay.Dial(ctx, h, relay.Options{LocalName: cfg.Hostname})
		if err != nil {
			fmt.Fprintf(w, "  failed: %s\n", strings.TrimPrefix(err.Error(), "relay: "))
			if first == nil {
				never := *cfg
				never.Queue.Mode = config.QueueNever
				first = classify(&never, err)
			}
			continue
		}
		fmt.Fprintf(w, "  greeting: %s\n", s.Greeting())
		ext := s.Extensions()
		for _, k := range slices.Sorted(maps.Keys(ext)) {
			fmt.Fprintf(w, "  capability: %s\n", strings.TrimSpace(k+" "+ext[k]))
		}
		if st, ok := s.TLSState(); ok {
			fmt.Fprintf(w, "  tls: %s %s\n", tls.VersionName(st.Version), tls.CipherSuiteName(st.CipherSuite))
			if len(st.PeerCertificates) > 0 {
				c := st.PeerCertificates[0]
				fmt.Fprintf(w, "  certificate: %s (issuer %s, expires %s)\n", c.Subject, c.Issuer, c.NotAfter.Format("2006-01-02"))
				fmt.Fprintf(w, "  sha256: %X\n", sha256.Sum256(c.Raw))
			}
		} else {
			fmt.Fprintf(w, "  tls: none\n")
		}
		if h.Username != "" {
			fmt.Fprintf(w, "  auth: accepted for %s\n", h.Username)
		}
		checkToken(ctx, w, h)
		if err := s.Quit(); err != nil {
			fmt.Fprintf(w, "  quit: %s\n", strings.TrimPrefix(err.Error(), "relay: "))
		}
	}
	return first
}
