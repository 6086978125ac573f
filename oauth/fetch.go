package oauth

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"time"
	"unicode"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"
	"golang.org/x/oauth2/jwt"

	"relaymail/config"
)

// ErrToken is wrapped by every error of this package: no access token
// could be had. Delivery treats it as temporary (SPEC §6): the message
// waits in the queue until the administrator mends the cause.
var ErrToken = errors.New("oauth2: no access token")

// ErrInvalidGrant additionally marks the provider's invalid_grant: the
// refresh token was revoked or expired, the consent withdrawn, or the
// service account lost its delegation. Only a person can mend that.
var ErrInvalidGrant = errors.New("oauth2: grant refused")

// Error is this package's error: one line, no secret, wrapping ErrToken
// (and ErrInvalidGrant, and the cause where there is one).
type Error struct {
	msg     string
	invalid bool
	cause   error
}

func (e *Error) Error() string { return e.msg }

func (e *Error) Unwrap() []error {
	errs := []error{ErrToken}
	if e.invalid {
		errs = append(errs, ErrInvalidGrant)
	}
	if e.cause != nil {
		errs = append(errs, e.cause)
	}
	return errs
}

func tokenError(cause error, format string, args ...any) *Error {
	return &Error{msg: "oauth2: " + fmt.Sprintf(format, args...), cause: cause}
}

// LoginHint is what the administrator is told to do after invalid_grant.
const LoginHint = "run \"relaymail --oauth2-login\" as root to sign in again"

// fetch asks the token endpoint for a new access token with the
// configured grant, and saves a rotated refresh token. The caller holds
// the cache lock.
func (s *Source) fetch(ctx context.Context) (*Token, error) {
	ctx = context.WithValue(ctx, oauth2.HTTPClient, s.httpClient())
	var secrets []string // what the request carried, scrubbed from errors
	var tok *oauth2.Token
	var err error
	switch s.cfg.Grant {
	case config.GrantClientCredentials:
		cc := &clientcredentials.Config{ClientID: s.cfg.ClientID, TokenURL: s.cfg.TokenURL,
			Scopes: s.cfg.Scopes, AuthStyle: oauth2.AuthStyleInParams}
		if s.cfg.ClientSecretFile != "" {
			if cc.ClientSecret, err = readSecretLine("client_secret_file", s.cfg.ClientSecretFile); err != nil {
				return nil, err
			}
			secrets = append(secrets, cc.ClientSecret)
		} else {
			assertion, err := s.clientAssertion()
			if err != nil {
				return nil, err
			}
			secrets = append(secrets, assertion)
			cc.EndpointParams = url.Values{
				"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"},
				"client_assertion":      {assertion},
			}
		}
		tok, err = cc.Token(ctx)
	case config.GrantRefreshToken:
		// Processes with other configs (another queue, -C) may share the
		// refresh token file: its own lock keeps a rotation from being
		// lost between reading the token and saving the next. Without it
		// (a directory this process may not write) the save fails too,
		// and says so.
		if unlock, err := s.lockFile(ctx, s.cfg.RefreshTokenFile+".lock"); err == nil {
			defer unlock()
		} else if ctx.Err() != nil {
			return nil, tokenError(ctx.Err(), "waiting for the lock of %s: %v", s.cfg.RefreshTokenFile, ctx.Err())
		}
		var rt string
		if rt, err = readSecretLine("refresh_token_file", s.cfg.RefreshTokenFile); err != nil {
			if errors.Is(err, os.ErrNotExist) {
				err.(*Error).msg += "; " + LoginHint
				s.notice(err.Error())
			}
			return nil, err
		}
		secrets = append(secrets, rt)
		// clientcredentials, with the grant type overridden (which it
		// allows), sends the scope along: Microsoft's v2.0 endpoint wants
		// it on refresh too; oauth2.Config's refresher would not.
		cc := &clientcredentials.Config{ClientID: s.cfg.ClientID, TokenURL: s.cfg.TokenURL,
			Scopes: s.cfg.Scopes, AuthStyle: oauth2.AuthStyleInParams,
			EndpointParams: url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt}}}
		if s.cfg.ClientSecretFile != "" {
			if cc.ClientSecret, err = readSecretLine("client_secret_file", s.cfg.ClientSecretFile); err != nil {
				return nil, err
			}
			secrets = append(secrets, cc.ClientSecret)
		}
		tok, err = cc.Token(ctx)
		if err == nil && tok.RefreshToken != "" && tok.RefreshToken != rt {
			secrets = append(secrets, tok.RefreshToken)
			if serr := saveRefreshToken(s.cfg.RefreshTokenFile, tok.RefreshToken); serr != nil {
				// The new token is in hand; the old one may still work
				// (Microsoft and Google keep it valid for a while).
				s.notice(fmt.Sprintf("oauth2: the provider rotated the refresh token but it could not be saved to %s: %v",
					s.cfg.RefreshTokenFile, scrub(serr.Error(), secrets)))
			}
		}
	case config.GrantJWTBearer:
		var jc *jwt.Config
		if jc, err = s.jwtConfig(); err != nil {
			return nil, err
		}
		secrets = append(secrets, string(jc.PrivateKey))
		tok, err = jc.TokenSource(ctx).Token()
	default:
		return nil, tokenError(nil, "unknown grant %q", s.cfg.Grant)
	}
	if err != nil {
		e := s.endpointError(ctx, err, secrets)
		if e.invalid {
			s.notice(e.msg)
		}
		return nil, e
	}
	if tok.AccessToken == "" {
		return nil, tokenError(nil, "token endpoint %s: the reply holds no access_token", s.cfg.TokenURL)
	}
	now := s.now()
	t := &Token{AccessToken: tok.AccessToken, Expiry: tok.Expiry, Obtained: now, Grant: s.cfg.Grant}
	if !tok.Expiry.IsZero() {
		// x/oauth2 computed Expiry from the wall clock; keep it, but a
		// test clock (Now) needs the lifetime on its own scale.
		t.Expiry = now.Add(time.Until(tok.Expiry))
	} else {
		t.Expiry = now.Add(defaultLifetime)
	}
	if sc, ok := tok.Extra("scope").(string); ok {
		t.Scope = sc
	} else {
		t.Scope = strings.Join(s.cfg.Scopes, " ")
	}
	return t, nil
}

func (s *Source) notice(msg string) {
	if s.Notice != nil {
		s.Notice(msg)
	}
}

// endpointError turns an error of x/oauth2 into one line naming the
// endpoint and what went wrong: the OAuth error code and description, an
// HTTP status, a timeout or a network error. Nothing the request carried
// (client secret, assertion, refresh token) is in it, nor the reply's
// body beyond the description.
func (s *Source) endpointError(ctx context.Context, err error, secrets []string) *Error {
	where := "token endpoint " + s.cfg.TokenURL
	var re *oauth2.RetrieveError
	if errors.As(err, &re) {
		code := re.ErrorCode
		if code == "" && len(re.Body) > 0 {
			// jwt's errors carry the body only.
			var body struct {
				Error string `json:"error"`
				Desc  string `json:"error_description"`
			}
			if json.Unmarshal(re.Body, &body) == nil {
				code, re.ErrorDescription = body.Error, body.Desc
			}
		}
		desc := clean(scrub(re.ErrorDescription, secrets))
		if code != "" {
			msg := where + ": " + clean(code)
			if desc != "" {
				msg += " (" + desc + ")"
			}
			e := tokenError(nil, "%s", msg)
			if code == "invalid_grant" {
				e.invalid = true
				e.msg += "; the grant was revoked or has expired: " + s.invalidGrantHint()
			}
			return e
		}
		if re.Response != nil {
			return tokenError(nil, "%s: HTTP %s", where, clean(re.Response.Status))
		}
		return tokenError(nil, "%s: failed", where)
	}
	var ne net.Error
	switch {
	case errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout():
		return tokenError(context.DeadlineExceeded, "%s: no answer within %s", where, s.timeout)
	case ctx.Err() != nil:
		return tokenError(ctx.Err(), "%s: %v", where, ctx.Err())
	}
	// url.Error and friends: keep the innermost cause; its text holds the
	// URL (no secret: the secrets are in the body) and the network error.
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	return tokenError(nil, "%s: %s", where, clean(scrub(strings.TrimPrefix(err.Error(), "oauth2: "), secrets)))
}

func (s *Source) invalidGrantHint() string {
	switch s.cfg.Grant {
	case config.GrantRefreshToken:
		return LoginHint
	case config.GrantJWTBearer:
		return "check the service account's domain-wide delegation (client id and scope " + strings.Join(s.cfg.Scopes, " ") + ") and that " + s.user + " exists"
	}
	return "check the client's credentials and its permission at the provider"
}

// scrub replaces every secret in s.
func scrub(s string, secrets []string) string {
	for _, sec := range secrets {
		if len(sec) >= 4 {
			s = strings.ReplaceAll(s, sec, "<redacted>")
		}
	}
	return s
}

// clean makes text from the network one short printable line.
func clean(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return ' '
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// saveRefreshToken replaces the refresh token file atomically, keeping
// its group and mode (at most 0660), and fsyncs it: a rotated token that
// is lost cannot be had again without a person.
func saveRefreshToken(path, rt string) error {
	mode, gid := os.FileMode(0o600), -1
	if st, err := os.Stat(path); err == nil {
		mode = st.Mode().Perm() & 0o660
		gid = statGid(st)
	}
	return writeAtomic(path, []byte(rt+"\n"), mode, gid, true)
}

// clientAssertion is the signed JWT (RFC 7523 §2.2) with which a
// certificate authenticates the client, in the form Microsoft's identity
// platform takes: RS256, the certificate's SHA-1 thumbprint in x5t and
// its SHA-256 thumbprint in x5t#S256, aud the token endpoint, valid for
// ten minutes.
func (s *Source) clientAssertion() (string, error) {
	certPEM, _, err := readSmall(s.cfg.ClientCertFile)
	if err != nil {
		return "", fileError("client_certificate_file", s.cfg.ClientCertFile, err)
	}
	keyPEM := certPEM
	if s.cfg.ClientKeyFile != s.cfg.ClientCertFile {
		if keyPEM, _, err = readSmall(s.cfg.ClientKeyFile); err != nil {
			return "", fileError("client_key_file", s.cfg.ClientKeyFile, err)
		}
	}
	var certDER []byte
	var key *rsa.PrivateKey
	for rest := certPEM; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if b.Type == "CERTIFICATE" && certDER == nil {
			certDER = b.Bytes
		}
	}
	for rest := keyPEM; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if strings.HasSuffix(b.Type, "PRIVATE KEY") && key == nil {
			key = parseRSAKey(b.Bytes)
		}
	}
	if certDER == nil {
		return "", tokenError(nil, "client_certificate_file %s holds no PEM certificate", s.cfg.ClientCertFile)
	}
	if key == nil {
		return "", tokenError(nil, "client_key_file %s holds no unencrypted RSA private key", s.cfg.ClientKeyFile)
	}
	if _, err := x509.ParseCertificate(certDER); err != nil {
		return "", tokenError(nil, "client_certificate_file %s: %v", s.cfg.ClientCertFile, err)
	}
	sha1sum := sha1.Sum(certDER)
	sha256sum := sha256.Sum256(certDER)
	b64 := base64.RawURLEncoding
	header, _ := json.Marshal(map[string]string{
		"alg": "RS256", "typ": "JWT",
		"x5t": b64.EncodeToString(sha1sum[:]), "x5t#S256": b64.EncodeToString(sha256sum[:]),
	})
	now := time.Now()
	jti := make([]byte, 16)
	rand.Read(jti)
	claims, _ := json.Marshal(map[string]any{
		"aud": s.cfg.TokenURL, "iss": s.cfg.ClientID, "sub": s.cfg.ClientID,
		"jti": hex.EncodeToString(jti), "nbf": now.Unix(), "iat": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(),
	})
	signing := b64.EncodeToString(header) + "." + b64.EncodeToString(claims)
	digest := sha256.Sum256([]byte(signing))
	sig, err := rsa.SignPKCS1v15(rand.Reader, key, crypto.SHA256, digest[:])
	if err != nil {
		return "", tokenError(nil, "signing the client assertion: %v", err)
	}
	return signing + "." + b64.EncodeToString(sig), nil
}

func parseRSAKey(der []byte) *rsa.PrivateKey {
	if k, err := x509.ParsePKCS1PrivateKey(der); err == nil {
		return k
	}
	if k, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		if rk, ok := k.(*rsa.PrivateKey); ok {
			return rk
		}
	}
	return nil
}

// serviceAccount is the part of a Google service account JSON key that
// the JWT bearer grant needs.
type serviceAccount struct {
	Type         string `json:"type"`
	ClientEmail  string `json:"client_email"`
	PrivateKey   string `json:"private_key"`
	PrivateKeyID string `json:"private_key_id"`
	TokenURI     string `json:"token_uri"`
}

// jwtConfig reads the service account key for the JWT bearer grant
// (RFC 7523 §2.1), acting as the smarthost's username (domain-wide
// delegation).
func (s *Source) jwtConfig() (*jwt.Config, error) {
	path := s.cfg.ServiceAccountKey
	b, mode, err := readSmall(path)
	if err != nil {
		return nil, fileError("service_account_file", path, err)
	}
	if mode.Perm()&0o004 != 0 {
		return nil, tokenError(nil, "service_account_file %s is readable by all users (mode %04o); chmod 640 it", path, mode.Perm())
	}
	var sa serviceAccount
	if err := json.Unmarshal(b, &sa); err != nil || sa.ClientEmail == "" || sa.PrivateKey == "" {
		return nil, tokenError(nil, "service_account_file %s is not a service account JSON key (client_email, private_key)", path)
	}
	tokenURL := s.cfg.TokenURL
	if tokenURL == "" {
		tokenURL = sa.TokenURI
	}
	return &jwt.Config{
		Email:        sa.ClientEmail,
		PrivateKey:   []byte(sa.PrivateKey),
		PrivateKeyID: sa.PrivateKeyID,
		Subject:      s.user,
		Scopes:       s.cfg.Scopes,
		TokenURL:     tokenURL,
	}, nil
}
