package delivery

import (
	"context"
	"errors"
	"fmt"
	"io"

	"relaymail/config"
	"relaymail/oauth"
	"relaymail/relay"
)

// tokenSource is the OAuth2 token source of smarthost sh: its cache is in
// the queue directory, which only root and relaymail's group can reach.
func tokenSource(cfg *config.Config, sh *config.Smarthost, notice func(string)) *oauth.Source {
	src := oauth.New(sh.OAuth2, sh.Username, cfg.Queue.Dir, sh.Timeout)
	src.Notice = notice
	return src
}

// Microsoft 365's replies to AUTH that need the administrator, with what
// to do (learn.microsoft.com, "Enable or disable SMTP AUTH in Exchange
// Online"; "Deprecation of Basic authentication in Exchange Online").
var authHints = map[string]string{
	"5.7.30":  "Microsoft 365 no longer takes a password for SMTP: configure [smarthost.oauth2] (see the README's Microsoft 365 recipes)",
	"5.7.139": "SMTP AUTH is disabled for this mailbox or tenant, or the token lacks the permission: enable it (Set-CASMailbox -SmtpClientAuthenticationDisabled $false) and, for an app-only token, register the Exchange service principal and give it the mailbox (Add-MailboxPermission)",
}

// authHint is "; hint: …" for a reply that has one, else "".
func authHint(err error) string {
	var e *relay.Error
	if errors.As(err, &e) {
		if h, ok := authHints[e.Enhanced]; ok {
			return "; hint: " + h
		}
	}
	return ""
}

// checkToken prints what --check shows of h's OAuth2 token: the grant,
// the expiry and the scopes, never the token.
func checkToken(ctx context.Context, w io.Writer, h relay.Host) {
	src, ok := h.Token.(*oauth.Source)
	if !ok {
		return
	}
	t, err := src.Current(ctx)
	if err != nil {
		fmt.Fprintf(w, "  oauth2: %v\n", err)
		return
	}
	fmt.Fprintf(w, "  oauth2: %s\n", t)
}
