package relay

import (
	"context"
	"crypto/hmac"
	"crypto/md5"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
)

// AuthMechanism names a SASL mechanism as written in the config:
// "auto", "plain", "login", "cram-md5", "xoauth2", "oauthbearer", "none".
// The empty value means "auto".
type AuthMechanism string

// The mechanisms the config may name.
const (
	AuthAuto        AuthMechanism = "auto"
	AuthPlain       AuthMechanism = "plain"
	AuthLogin       AuthMechanism = "login"
	AuthCRAMMD5     AuthMechanism = "cram-md5"
	AuthXOAuth2     AuthMechanism = "xoauth2"
	AuthOAuthBearer AuthMechanism = "oauthbearer"
	AuthNone        AuthMechanism = "none"
)

// saslName maps a configured mechanism to its SASL name; "" for auto/none
// and for names we do not know.
func (m AuthMechanism) saslName() string {
	switch AuthMechanism(strings.ToLower(string(m))) {
	case AuthPlain:
		return "PLAIN"
	case AuthLogin:
		return "LOGIN"
	case AuthCRAMMD5:
		return "CRAM-MD5"
	case AuthXOAuth2:
		return "XOAUTH2"
	case AuthOAuthBearer:
		return "OAUTHBEARER"
	}
	return ""
}

// chooseMechanism picks the SASL mechanism for want among the server's
// offer (the AUTH keyword's parameters). "" with a nil error means: no
// AUTH at all.
//
// The auto choice: over TLS the password is protected by the channel, so
// PLAIN (then LOGIN) is preferred: it works with every server-side password
// store, while CRAM-MD5 needs the server to keep a plaintext-equivalent
// secret and is historic (RFC 8314 §4 prefers TLS + PLAIN). Over cleartext,
// which only a loopback smarthost is allowed, CRAM-MD5 comes first so the
// password itself never crosses. The OAuth mechanisms take a token, not a
// password, so auto never picks them.
func chooseMechanism(want AuthMechanism, offered string, encrypted bool) (string, error) {
	have := map[string]bool{}
	for _, f := range strings.Fields(strings.ToUpper(offered)) {
		have[f] = true
	}
	switch AuthMechanism(strings.ToLower(string(want))) {
	case AuthNone:
		return "", nil
	case "", AuthAuto:
		order := []string{"PLAIN", "LOGIN", "CRAM-MD5"}
		if !encrypted {
			order = []string{"CRAM-MD5", "PLAIN", "LOGIN"}
		}
		for _, m := range order {
			if have[m] {
				return m, nil
			}
		}
		if len(have) == 0 {
			return "", clientError("AUTH", "", ErrUnsupported, "server does not offer AUTH")
		}
		return "", clientError("AUTH", "", ErrUnsupported, "no usable mechanism among those offered: "+strings.Join(strings.Fields(offered), " "))
	}
	name := want.saslName()
	if name == "" {
		return "", clientError("AUTH", "", ErrUnsupported, "unknown mechanism "+strconv.Quote(string(want)))
	}
	if len(have) == 0 {
		return "", clientError("AUTH", name, ErrUnsupported, "server does not offer AUTH")
	}
	if !have[name] {
		return "", clientError("AUTH", name, ErrUnsupported, "server does not offer "+name+" (it offers "+strings.Join(strings.Fields(offered), " ")+")")
	}
	return name, nil
}

// saslClient is one client side of a SASL exchange, in the shape of
// go-sasl's Client: start gives the initial response (nil: none, empty:
// an empty one), next answers each server challenge.
type saslClient interface {
	start() (ir []byte, err error)
	next(challenge []byte) ([]byte, error)
}

// errUnexpectedChallenge: the server sent a challenge the mechanism has no
// answer for; the client aborts the exchange with "*".
var errUnexpectedChallenge = errors.New("unexpected challenge")

func newSASL(name, user, secret, host string, port int) saslClient {
	switch name {
	case "PLAIN":
		return &plainAuth{user: user, pass: secret}
	case "LOGIN":
		return &loginAuth{user: user, pass: secret}
	case "CRAM-MD5":
		return &cramMD5Auth{user: user, secret: secret}
	case "XOAUTH2":
		return &xoauth2Auth{user: user, token: secret}
	case "OAUTHBEARER":
		return &oauthBearerAuth{user: user, token: secret, host: host, port: port}
	}
	return nil
}

// plainAuth is RFC 4616 PLAIN with an empty authorization identity, sent as
// the initial response.
type plainAuth struct{ user, pass string }

func (a *plainAuth) start() ([]byte, error) {
	return []byte("\x00" + a.user + "\x00" + a.pass), nil
}

func (a *plainAuth) next([]byte) ([]byte, error) { return nil, errUnexpectedChallenge }

// loginAuth is the LOGIN mechanism (draft-murchison-sasl-login): the
// username answers the first prompt, the password the second, whatever
// their wording.
type loginAuth struct {
	user, pass string
	step       int
}

func (a *loginAuth) start() ([]byte, error) { return nil, nil }

func (a *loginAuth) next([]byte) ([]byte, error) {
	a.step++
	switch a.step {
	case 1:
		return []byte(a.user), nil
	case 2:
		return []byte(a.pass), nil
	}
	return nil, errUnexpectedChallenge
}

// cramMD5Auth is RFC 2195 CRAM-MD5: "user hex(HMAC-MD5(secret, challenge))".
type cramMD5Auth struct {
	user, secret string
	done         bool
}

func (a *cramMD5Auth) start() ([]byte, error) { return nil, nil }

func (a *cramMD5Auth) next(challenge []byte) ([]byte, error) {
	if a.done {
		return nil, errUnexpectedChallenge
	}
	a.done = true
	m := hmac.New(md5.New, []byte(a.secret))
	m.Write(challenge)
	return []byte(a.user + " " + hex.EncodeToString(m.Sum(nil))), nil
}

// xoauth2Auth is Google/Microsoft XOAUTH2. On failure the server sends a
// 334 with a JSON error; the client answers with an empty line and gets
// the final 5xx.
type xoauth2Auth struct {
	user, token string
	failed      bool
}

func (a *xoauth2Auth) start() ([]byte, error) {
	return []byte("user=" + a.user + "\x01auth=Bearer " + a.token + "\x01\x01"), nil
}

func (a *xoauth2Auth) next([]byte) ([]byte, error) {
	if a.failed {
		return nil, errUnexpectedChallenge
	}
	a.failed = true
	return []byte{}, nil
}

// oauthBearerAuth is RFC 7628 OAUTHBEARER. On failure the server sends a
// 334 with a JSON error and the client answers with a single %x01
// (§3.2.3).
type oauthBearerAuth struct {
	user, token, host string
	port              int
	failed            bool
}

func (a *oauthBearerAuth) start() ([]byte, error) {
	var b strings.Builder
	b.WriteString("n,")
	if a.user != "" {
		// RFC 5801 §4 saslname: "," and "=" are escaped.
		b.WriteString("a=" + strings.NewReplacer("=", "=3D", ",", "=2C").Replace(a.user))
	}
	b.WriteString(",\x01")
	if a.host != "" {
		b.WriteString("host=" + a.host + "\x01")
	}
	if a.port != 0 {
		b.WriteString("port=" + strconv.Itoa(a.port) + "\x01")
	}
	b.WriteString("auth=Bearer " + a.token + "\x01\x01")
	return []byte(b.String()), nil
}

func (a *oauthBearerAuth) next([]byte) ([]byte, error) {
	if a.failed {
		return nil, errUnexpectedChallenge
	}
	a.failed = true
	return []byte{0x01}, nil
}

// isLoopback reports whether host names the local machine: "localhost" or
// an address in 127/8 or ::1. Only such a host may get credentials over a
// connection without TLS.
func isLoopback(host string) bool {
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return true
	}
	if i := strings.IndexByte(host, '%'); i >= 0 { // zone, as in ::1%lo
		host = host[:i]
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// TokenSource gives OAuth 2.0 access tokens (RFC 6749) for XOAUTH2 and
// OAUTHBEARER. Implementations cache the token; relay asks once per
// session, and once more when the server refused the token (it may have
// been revoked or have expired early).
type TokenSource interface {
	// Token returns a valid access token, from a cache when it has one.
	Token(ctx context.Context) (string, error)
	// Fresh returns an access token other than stale, which the server
	// refused: one another process got meanwhile, or a new one from the
	// token endpoint.
	Fresh(ctx context.Context, stale string) (string, error)
}

// secret returns what AUTH name proves identity with: the access token
// from h.Token (a fresh one other than stale when stale is set), else the
// password.
func (s *Session) secret(ctx context.Context, name, stale string) (string, error) {
	h := s.host
	var secret string
	var err error
	switch {
	case h.Token != nil && isOAuthMech(name) && stale != "":
		secret, err = h.Token.Fresh(ctx, stale)
	case h.Token != nil && isOAuthMech(name):
		secret, err = h.Token.Token(ctx)
	case h.Password == nil:
		return "", fmt.Errorf("relay: AUTH %s: no password configured", name)
	default:
		secret, err = h.Password(ctx)
	}
	if err != nil {
		what := "the password"
		if h.Token != nil && isOAuthMech(name) {
			what = "the access token"
		}
		return "", fmt.Errorf("relay: AUTH %s: getting %s: %w", name, what, err)
	}
	return secret, nil
}

// freshTokenChance reports whether an AUTH that ended in err deserves one
// more try with a fresh token: the server refused the credentials (535
// and the other authentication replies, after the 334 error challenge of
// XOAUTH2/OAUTHBEARER) and the session is still in sync.
func (s *Session) freshTokenChance(name string, err error) bool {
	return err != nil && s.host.Token != nil && isOAuthMech(name) && s.broken == nil && errors.Is(err, ErrAuth)
}

func isOAuthMech(name string) bool { return name == "XOAUTH2" || name == "OAUTHBEARER" }
