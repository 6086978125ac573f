package smtptest

import (
	"bytes"
	"crypto/hmac"
	"crypto/md5"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// Mechanism names go-sasl has no server-side constant for.
const (
	mechLogin   = "LOGIN"
	mechCRAMMD5 = "CRAM-MD5"
	mechXOAUTH2 = "XOAUTH2"
)

// errMalformed answers a SASL response that does not parse, as a permanent
// syntax error rather than go-smtp's default 454.
var errMalformed = &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 5, 2}, Message: "Malformed authentication response"}

// errUnexpected answers a response sent after the exchange ended, or an
// initial response to a mechanism that takes none.
var errUnexpected = &smtp.SMTPError{Code: 501, EnhancedCode: smtp.EnhancedCode{5, 5, 2}, Message: "Unexpected authentication response"}

// loginServer is the server side of the LOGIN mechanism
// (draft-murchison-sasl-login): prompts "Username:" and "Password:", and
// accepts the username as an initial response.
type loginServer struct {
	check    func(username, password string) error
	step     int // 0 start, 1 want username, 2 want password, 3 done
	username string
}

func newLoginServer(check func(username, password string) error) sasl.Server {
	return &loginServer{check: check}
}

func (a *loginServer) Next(response []byte) ([]byte, bool, error) {
	switch a.step {
	case 0:
		if response == nil {
			a.step = 1
			return []byte("Username:"), false, nil
		}
		a.username = string(response)
		a.step = 2
		return []byte("Password:"), false, nil
	case 1:
		a.username = string(response)
		a.step = 2
		return []byte("Password:"), false, nil
	case 2:
		a.step = 3
		return nil, true, a.check(a.username, string(response))
	}
	return nil, true, errUnexpected
}

// cramMD5Server is the server side of CRAM-MD5 (RFC 2195): one challenge
// "<random.timestamp@domain>", answered by "username hex(HMAC-MD5(secret,
// challenge))".
type cramMD5Server struct {
	domain    string
	lookup    func(username string) (secret string, ok bool)
	ok        func(username string) error
	challenge []byte
	done      bool
}

func newCRAMMD5Server(domain string, lookup func(string) (string, bool), ok func(string) error) sasl.Server {
	return &cramMD5Server{domain: domain, lookup: lookup, ok: ok}
}

func (a *cramMD5Server) Next(response []byte) ([]byte, bool, error) {
	if a.done {
		return nil, true, errUnexpected
	}
	if a.challenge == nil {
		if response != nil {
			a.done = true
			return nil, true, errUnexpected
		}
		var nonce [8]byte
		rand.Read(nonce[:])
		a.challenge = fmt.Appendf(nil, "<%s.%d@%s>", hex.EncodeToString(nonce[:]), time.Now().UnixNano(), a.domain)
		return a.challenge, false, nil
	}
	a.done = true
	i := bytes.LastIndexByte(response, ' ')
	if i <= 0 {
		return nil, true, errMalformed
	}
	username, digest := string(response[:i]), response[i+1:]
	got := make([]byte, hex.DecodedLen(len(digest)))
	if _, err := hex.Decode(got, digest); err != nil || len(got) != md5.Size {
		return nil, true, errMalformed
	}
	secret, ok := a.lookup(username)
	if !ok {
		return nil, true, smtp.ErrAuthFailed
	}
	h := hmac.New(md5.New, []byte(secret))
	h.Write(a.challenge)
	if !hmac.Equal(h.Sum(nil), got) {
		return nil, true, smtp.ErrAuthFailed
	}
	return nil, true, a.ok(username)
}

// CRAMMD5Response computes a client's CRAM-MD5 answer to challenge, for tests
// that drive the exchange by hand.
func CRAMMD5Response(username, secret string, challenge []byte) string {
	h := hmac.New(md5.New, []byte(secret))
	h.Write(challenge)
	return username + " " + hex.EncodeToString(h.Sum(nil))
}

// bearerServer is the server side of XOAUTH2 (Google's format:
// "user=U^Aauth=Bearer T^A^A") and OAUTHBEARER (RFC 7628:
// "n,a=U,^Ahost=H^Aport=P^Aauth=Bearer T^A^A"). A refused token gets the JSON
// error challenge both define; the client's dummy reply then ends the
// exchange with 535 5.7.8.
type bearerServer struct {
	oauthBearer bool
	check       func(username, token string) error
	step        int // 0 start, 1 error sent, 2 done
}

func newXOAUTH2Server(check func(username, token string) error) sasl.Server {
	return &bearerServer{check: check}
}

func newOAuthBearerServer(check func(username, token string) error) sasl.Server {
	return &bearerServer{check: check, oauthBearer: true}
}

func (a *bearerServer) Next(response []byte) ([]byte, bool, error) {
	switch a.step {
	case 0:
		if response == nil {
			return []byte{}, false, nil
		}
		username, token, err := a.parse(response)
		if err != nil {
			a.step = 2
			return nil, true, err
		}
		if err := a.check(username, token); err != nil {
			if se, ok := err.(*smtp.SMTPError); ok && se == smtp.ErrAuthFailed {
				a.step = 1
				if a.oauthBearer {
					return []byte(`{"status":"invalid_token","schemes":"bearer"}`), false, nil
				}
				return []byte(`{"status":"401","schemes":"bearer","scope":"https://mail.google.com/"}`), false, nil
			}
			a.step = 2
			return nil, true, err // an injected error is sent as is
		}
		a.step = 2
		return nil, true, nil
	case 1:
		a.step = 2
		return nil, true, smtp.ErrAuthFailed
	}
	return nil, true, errUnexpected
}

func (a *bearerServer) parse(response []byte) (username, token string, err error) {
	s := string(response)
	if a.oauthBearer {
		// gs2-header "n,a=user," then the key=value list.
		header, rest, ok := strings.Cut(s, "\x01")
		if !ok || !strings.HasPrefix(header, "n,") || !strings.HasSuffix(header, ",") {
			return "", "", errMalformed
		}
		authzid := strings.TrimSuffix(strings.TrimPrefix(header, "n,"), ",")
		if authzid != "" {
			u, ok := strings.CutPrefix(authzid, "a=")
			if !ok {
				return "", "", errMalformed
			}
			username = u
		}
		s = rest
	}
	if !strings.HasSuffix(s, "\x01\x01") {
		return "", "", errMalformed
	}
	for _, kv := range strings.Split(strings.TrimSuffix(s, "\x01\x01"), "\x01") {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			return "", "", errMalformed
		}
		switch k {
		case "user":
			if !a.oauthBearer {
				username = v
			}
		case "auth":
			scheme, t, ok := strings.Cut(v, " ")
			if !ok || !strings.EqualFold(scheme, "Bearer") {
				return "", "", errMalformed
			}
			token = t
		case "host":
		case "port":
			if _, err := strconv.ParseUint(v, 10, 16); err != nil {
				return "", "", errMalformed
			}
		}
	}
	if username == "" || token == "" {
		return "", "", errMalformed
	}
	return username, token, nil
}
