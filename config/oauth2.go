package config

import (
	"crypto/x509"
	"net/url"
	"os"
	"strings"

	"relaymail/relay"
)

// The OAuth 2.0 grants relaymail can use to get an access token for
// XOAUTH2 and OAUTHBEARER ([smarthost.oauth2] grant).
const (
	// GrantClientCredentials is RFC 6749 §4.4 with a client secret or a
	// signed client assertion (RFC 7523 §2.2): Microsoft 365 app-only SMTP.
	GrantClientCredentials = "client_credentials"
	// GrantRefreshToken is RFC 6749 §6 with a refresh token that
	// "relaymail --oauth2-login" obtained: delegated access (Microsoft 365,
	// Gmail).
	GrantRefreshToken = "refresh_token"
	// GrantJWTBearer is RFC 7523 §2.1: a Google service account with
	// domain-wide delegation acting as the mailbox in username.
	GrantJWTBearer = "jwt_bearer"
)

// OAuth2 is a resolved [smarthost.oauth2] table: the provider's defaults
// are filled in, paths are absolute, and the combination of keys fits the
// grant. It holds paths only, never a secret: the secrets are read when a
// token is needed, so that they can be rotated without a reload.
type OAuth2 struct {
	Grant    string // GrantClientCredentials, GrantRefreshToken or GrantJWTBearer
	Provider string // "microsoft", "google" or "" (token_url given)
	Tenant   string // Microsoft tenant (id or domain); "" for other providers

	ClientID          string
	ClientSecretFile  string // first line is the client secret
	ClientCertFile    string // PEM certificate whose key signs the client assertion
	ClientKeyFile     string // PEM private key for ClientCertFile; defaults to ClientCertFile
	RefreshTokenFile  string // first line is the refresh token; rotated tokens are saved back
	ServiceAccountKey string // Google service account JSON key file

	TokenURL      string   // the token endpoint (https)
	DeviceAuthURL string   // RFC 8628 device authorization endpoint for --oauth2-login; "" = none
	AuthURL       string   // authorization endpoint for the loopback login (RFC 8252, RFC 7636)
	Scopes        []string // requested scopes

	CAFile  string         // trust these roots for the endpoints instead of the system's
	RootCAs *x509.CertPool // parsed from CAFile; nil = system roots
}

type fileOAuth2 struct {
	Grant              string `toml:"grant"`
	Provider           string `toml:"provider"`
	Tenant             string `toml:"tenant"`
	ClientID           string `toml:"client_id"`
	ClientSecretFile   string `toml:"client_secret_file"`
	ClientCertFile     string `toml:"client_certificate_file"`
	ClientKeyFile      string `toml:"client_key_file"`
	RefreshTokenFile   string `toml:"refresh_token_file"`
	ServiceAccountFile string `toml:"service_account_file"`
	TokenURL           string `toml:"token_url"`
	DeviceAuthURL      string `toml:"device_auth_url"`
	AuthURL            string `toml:"auth_url"`
	Scope              string `toml:"scope"`
	CAFile             string `toml:"ca_file"`
}

var oauth2Schema = map[string]keySpec{
	"grant":                   {want: `a string ("client_credentials", "refresh_token" or "jwt_bearer")`},
	"provider":                {want: `a string ("microsoft" or "google")`},
	"tenant":                  {want: "a string"},
	"client_id":               {want: "a string"},
	"client_secret_file":      {want: "a string (a path)"},
	"client_certificate_file": {want: "a string (a path)"},
	"client_key_file":         {want: "a string (a path)"},
	"refresh_token_file":      {want: "a string (a path)"},
	"service_account_file":    {want: "a string (a path)"},
	"token_url":               {want: "a string (an https URL)"},
	"device_auth_url":         {want: "a string (an https URL)"},
	"auth_url":                {want: "a string (an https URL)"},
	"scope":                   {want: "a string (space-separated scopes)"},
	"ca_file":                 {want: "a string (a path)"},
}

// Provider endpoints and scopes. Microsoft's SMTP scopes: app-only tokens
// carry the resource's .default scope, delegated ones SMTP.Send
// (learn.microsoft.com, "Authenticate an IMAP, POP or SMTP connection
// using OAuth"). Google's only scope for SMTP is the full-mail one.
const (
	msLogin            = "https://login.microsoftonline.com/"
	msScopeAppOnly     = "https://outlook.office365.com/.default"
	msScopeDelegated   = "https://outlook.office365.com/SMTP.Send offline_access"
	googleTokenURL     = "https://oauth2.googleapis.com/token"
	googleAuthURL      = "https://accounts.google.com/o/oauth2/v2/auth"
	googleMailScope    = "https://mail.google.com/"
	defaultMSTenantDel = "organizations"
)

// oauth2 resolves [smarthost.oauth2]; pre is "smarthost.oauth2." or the
// fallback's prefix.
func (env sysEnv) oauth2(f *fileOAuth2, pre string, ps *problems) *OAuth2 {
	o := &OAuth2{
		Grant:    f.Grant,
		Provider: f.Provider,
		Tenant:   f.Tenant,
		ClientID: f.ClientID,
	}
	switch f.Grant {
	case GrantClientCredentials, GrantRefreshToken, GrantJWTBearer:
	case "":
		ps.add("%sgrant is required (client_credentials, refresh_token or jwt_bearer)", pre)
	default:
		ps.add("%sgrant must be client_credentials, refresh_token or jwt_bearer, not %q", pre, f.Grant)
	}
	if strings.ContainsFunc(f.ClientID, func(r rune) bool { return r <= ' ' || r == 0x7f }) {
		ps.add("%sclient_id must not hold spaces or control characters", pre)
	}
	if f.Tenant != "" && (f.Provider != "microsoft" || !validTenant(f.Tenant)) {
		if f.Provider != "microsoft" {
			ps.add("%stenant is only for provider = \"microsoft\"", pre)
		} else {
			ps.add("%stenant must be a tenant id or domain such as contoso.onmicrosoft.com, not %q", pre, f.Tenant)
		}
	}

	var scope string
	switch f.Provider {
	case "microsoft":
		switch {
		case o.Tenant != "":
		case f.Grant == GrantClientCredentials:
			ps.add("%stenant is required for an app-only (client_credentials) Microsoft token", pre)
		default:
			o.Tenant = defaultMSTenantDel
		}
		base := msLogin + url.PathEscape(o.Tenant) + "/oauth2/v2.0/"
		o.TokenURL, o.DeviceAuthURL, o.AuthURL = base+"token", base+"devicecode", base+"authorize"
		scope = msScopeDelegated
		if f.Grant == GrantClientCredentials {
			scope = msScopeAppOnly
		}
		if f.Grant == GrantJWTBearer {
			ps.add("%sgrant = \"jwt_bearer\" is for Google service accounts, not provider = \"microsoft\"", pre)
		}
	case "google":
		o.TokenURL, o.AuthURL, scope = googleTokenURL, googleAuthURL, googleMailScope
		// Google's device flow does not allow the mail scope: the login
		// uses the loopback redirect.
	case "":
		if f.TokenURL == "" {
			ps.add("%stoken_url is required without provider = \"microsoft\" or \"google\"", pre)
		}
	default:
		ps.add("%sprovider must be microsoft or google, not %q (or leave it out and set token_url and scope)", pre, f.Provider)
	}
	if f.TokenURL != "" {
		o.TokenURL = httpsURL(f.TokenURL, pre+"token_url", ps)
	}
	if f.DeviceAuthURL != "" {
		o.DeviceAuthURL = httpsURL(f.DeviceAuthURL, pre+"device_auth_url", ps)
	}
	if f.AuthURL != "" {
		o.AuthURL = httpsURL(f.AuthURL, pre+"auth_url", ps)
	}
	if f.Scope != "" {
		scope = f.Scope
	}
	if strings.ContainsFunc(scope, func(r rune) bool { return r < ' ' || r == 0x7f }) {
		ps.add("%sscope must not hold control characters", pre)
	}
	o.Scopes = strings.Fields(scope)

	o.ClientSecretFile = absPath(f.ClientSecretFile, pre+"client_secret_file", ps)
	o.ClientCertFile = absPath(f.ClientCertFile, pre+"client_certificate_file", ps)
	o.ClientKeyFile = absPath(f.ClientKeyFile, pre+"client_key_file", ps)
	o.RefreshTokenFile = absPath(f.RefreshTokenFile, pre+"refresh_token_file", ps)
	o.ServiceAccountKey = absPath(f.ServiceAccountFile, pre+"service_account_file", ps)
	if o.ClientKeyFile == "" {
		o.ClientKeyFile = o.ClientCertFile
	}
	if f.ClientKeyFile != "" && f.ClientCertFile == "" {
		ps.add("%sclient_key_file is set but client_certificate_file is not", pre)
	}

	// What each grant needs, and nothing it would silently ignore.
	switch f.Grant {
	case GrantClientCredentials:
		if f.ClientID == "" {
			ps.add("%sclient_id is required for grant = \"client_credentials\"", pre)
		}
		switch {
		case f.ClientSecretFile == "" && f.ClientCertFile == "":
			ps.add("%sgrant = \"client_credentials\" needs client_secret_file or client_certificate_file", pre)
		case f.ClientSecretFile != "" && f.ClientCertFile != "":
			ps.add("%sclient_secret_file and client_certificate_file are set but only one client credential may be", pre)
		}
		unused(f.RefreshTokenFile, "refresh_token_file", f.Grant, pre, ps)
		unused(f.ServiceAccountFile, "service_account_file", f.Grant, pre, ps)
	case GrantRefreshToken:
		if f.ClientID == "" {
			ps.add("%sclient_id is required for grant = \"refresh_token\"", pre)
		}
		if f.RefreshTokenFile == "" {
			ps.add("%srefresh_token_file is required for grant = \"refresh_token\" (relaymail --oauth2-login writes it)", pre)
		}
		unused(f.ClientCertFile, "client_certificate_file", f.Grant, pre, ps)
		unused(f.ServiceAccountFile, "service_account_file", f.Grant, pre, ps)
	case GrantJWTBearer:
		if f.ServiceAccountFile == "" {
			ps.add("%sservice_account_file is required for grant = \"jwt_bearer\"", pre)
		}
		unused(f.ClientSecretFile, "client_secret_file", f.Grant, pre, ps)
		unused(f.ClientCertFile, "client_certificate_file", f.Grant, pre, ps)
		unused(f.RefreshTokenFile, "refresh_token_file", f.Grant, pre, ps)
	}

	if f.CAFile != "" {
		o.CAFile = absPath(f.CAFile, pre+"ca_file", ps)
		if o.CAFile != "" {
			o.RootCAs = env.certPool(o.CAFile, pre, ps)
		}
	}
	return o
}

func unused(val, key, grant, pre string, ps *problems) {
	if val != "" {
		ps.add("%s%s is not used with grant = %q; remove it", pre, key, grant)
	}
}

// httpsURL accepts an absolute https URL without user information: a
// client secret or refresh token must not cross the network in clear.
func httpsURL(s, key string, ps *problems) string {
	u, err := url.Parse(s)
	switch {
	case err != nil || u.Host == "" || u.Opaque != "":
		ps.add("%s must be an absolute https URL, not %q", key, s)
	case u.Scheme != "https":
		ps.add("%s must be an https URL (secrets are sent to it), not %q", key, s)
	case u.User != nil:
		ps.add("%s must not hold user information", key)
	default:
		return u.String()
	}
	return ""
}

// validTenant accepts a GUID or a domain name, what Microsoft's login URL
// takes in its first path segment.
func validTenant(s string) bool { return validDomain(s) }

// checkPermissions refuses a secret file of [smarthost.oauth2] that
// exists and is readable by all users, as password_file (SPEC §9).
func (o *OAuth2) checkPermissions(ps *problems) {
	for _, f := range []struct{ key, path string }{
		{"client_secret_file", o.ClientSecretFile},
		{"client_key_file", o.ClientKeyFile},
		{"refresh_token_file", o.RefreshTokenFile},
		{"service_account_file", o.ServiceAccountKey},
	} {
		if f.path == "" {
			continue
		}
		if st, err := os.Stat(f.path); err == nil {
			if err := secretModeError(f.path, "oauth2 "+f.key+" "+f.path, st.Mode()); err != nil {
				ps.add("%s", err)
			}
		}
	}
}

// oauth2Auth checks the rest of a smarthost against its [oauth2] table:
// the token is the only credential, it needs the mailbox's name, and it
// is used with an OAuth SASL mechanism (auto picks XOAUTH2, which both
// Microsoft and Google take).
func (s *Smarthost) oauth2Auth(f *fileSmarthost, sources []string, pre string, ps *problems) {
	if len(sources) > 0 {
		ps.add("%s%s and [%soauth2] are set but only one credential may be", pre, sources[0], pre)
	}
	if f.Username == "" {
		ps.add("%susername (the mailbox) is required with [%soauth2]", pre, pre)
	}
	switch s.Auth {
	case relay.AuthAuto:
		s.Auth = relay.AuthXOAuth2
	case relay.AuthXOAuth2, relay.AuthOAuthBearer:
	default:
		ps.add("%sauth must be xoauth2 or oauthbearer with [%soauth2], not %q", pre, pre, f.Auth)
	}
}
