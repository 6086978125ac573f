// Package oauthtest is a fake OAuth 2.0 provider for tests: an HTTPS
// token endpoint (httptest.NewTLSServer) that issues expiring access
// tokens, rotates refresh tokens, can answer invalid_grant, 5xx or hang,
// counts requests, and serves the device authorization (RFC 8628) and
// authorization code with PKCE (RFC 7636) flows. Its access tokens are
// what a fake smarthost checks (Provider.Valid). Import it only from
// _test.go files.
package oauthtest

import (
	"crypto"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Failure is what the token endpoint answers instead of a token.
type Failure int

const (
	OK           Failure = iota
	InvalidGrant         // 400 {"error":"invalid_grant"}
	ServerError          // 503
	Hang                 // no answer until the test ends
)

// Options configures a Provider.
type Options struct {
	ClientID     string // required in every request
	ClientSecret string // when set, required (client_secret) unless an assertion is given
	// ClientCert, when set, is the certificate whose key must sign a
	// client assertion (client_credentials without a secret).
	ClientCert *x509.Certificate
	// RefreshToken is the refresh token the provider accepts at first.
	RefreshToken string
	// Rotate issues a new refresh token with each refresh and revokes
	// the old one at once (the strictest provider behaviour).
	Rotate bool
	// ExpiresIn is the lifetime of access tokens in seconds (default 3600).
	ExpiresIn int
	// Subject, when set, is the sub a JWT bearer assertion must carry.
	Subject string
}

// Provider is a running fake provider.
type Provider struct {
	t    testing.TB
	srv  *httptest.Server
	opts Options
	hang chan struct{}

	mu       sync.Mutex
	fail     Failure
	n        int               // token requests answered or refused
	grants   map[string]int    // requests per grant_type
	access   map[string]bool   // issued access token -> still valid
	refresh  string            // the refresh token currently valid
	devices  map[string]bool   // device_code -> approved
	codes    map[string]string // authorization code -> S256 challenge
	redirect map[string]string // authorization code -> redirect_uri
	seq      int
	lastBody url.Values
}

// Start runs a provider until the test ends.
func Start(t testing.TB, o Options) *Provider {
	if o.ExpiresIn == 0 {
		o.ExpiresIn = 3600
	}
	p := &Provider{t: t, opts: o, hang: make(chan struct{}), grants: map[string]int{},
		access: map[string]bool{}, refresh: o.RefreshToken, devices: map[string]bool{},
		codes: map[string]string{}, redirect: map[string]string{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", p.token)
	mux.HandleFunc("POST /devicecode", p.deviceCode)
	mux.HandleFunc("GET /authorize", p.authorize)
	p.srv = httptest.NewTLSServer(mux)
	t.Cleanup(func() {
		close(p.hang)
		p.srv.CloseClientConnections()
		p.srv.Close()
	})
	return p
}

// URL is the base URL; the endpoints are /token, /devicecode, /authorize.
func (p *Provider) URL() string { return p.srv.URL }

// Client is an HTTP client that trusts the provider (a browser).
func (p *Provider) Client() *http.Client { return p.srv.Client() }

// CAFile writes the provider's certificate to dir/oauth-ca.pem and
// returns the path, for [smarthost.oauth2] ca_file.
func (p *Provider) CAFile(dir string) string {
	path := filepath.Join(dir, "oauth-ca.pem")
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: p.srv.Certificate().Raw})
	if err := os.WriteFile(path, b, 0o644); err != nil {
		p.t.Fatal(err)
	}
	return path
}

// SetFailure makes the token endpoint fail as f from now on.
func (p *Provider) SetFailure(f Failure) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.fail = f
}

// Requests is the number of requests the token endpoint got.
func (p *Provider) Requests() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.n
}

// Grants is the number of token requests per grant_type.
func (p *Provider) Grants(grant string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.grants[grant]
}

// RefreshToken is the refresh token the provider accepts now.
func (p *Provider) RefreshToken() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.refresh
}

// Valid reports whether token is an access token the provider issued and
// has not revoked: what a smarthost checks.
func (p *Provider) Valid(token string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.access[token]
}

// Revoke makes every access token issued so far invalid (the smarthost
// then refuses them), as a password change or an admin revocation does.
func (p *Provider) Revoke() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k := range p.access {
		p.access[k] = false
	}
}

// Issued is every access token issued, and every refresh token ever
// valid: the secrets a test looks for in output.
func (p *Provider) Issued() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for k := range p.access {
		out = append(out, k)
	}
	return out
}

// ApproveDevices lets every pending device code through, as a person who
// entered the code and consented.
func (p *Provider) ApproveDevices() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k := range p.devices {
		p.devices[k] = true
	}
}

// PendingDevices is the number of device codes handed out.
func (p *Provider) PendingDevices() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.devices)
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(v)
}

func oauthError(w http.ResponseWriter, code string) {
	writeJSON(w, http.StatusBadRequest, map[string]string{"error": code, "error_description": "fake provider: " + code})
}

// issue answers with a new access token (and refresh token when rt is
// not ""); the caller holds mu.
func (p *Provider) issue(w http.ResponseWriter, rt string) {
	p.seq++
	at := fmt.Sprintf("at-%d-%x", p.seq, sha256.Sum256([]byte(fmt.Sprint(time.Now().UnixNano(), p.seq))))
	p.access[at] = true
	body := map[string]any{"access_token": at, "token_type": "Bearer", "expires_in": p.opts.ExpiresIn, "scope": "SMTP.Send"}
	if rt != "" {
		body["refresh_token"] = rt
	}
	writeJSON(w, http.StatusOK, body)
}

func (p *Provider) newRefreshToken() string {
	p.seq++
	return fmt.Sprintf("rt-%d-%x", p.seq, sha256.Sum256([]byte(fmt.Sprint("rt", time.Now().UnixNano(), p.seq))))[:40]
}

func (p *Provider) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, "bad form", http.StatusBadRequest)
		return
	}
	p.mu.Lock()
	p.n++
	grant := r.PostForm.Get("grant_type")
	p.grants[grant]++
	p.lastBody = r.PostForm
	fail := p.fail
	p.mu.Unlock()
	switch fail {
	case InvalidGrant:
		oauthError(w, "invalid_grant")
		return
	case ServerError:
		http.Error(w, "temporarily unavailable", http.StatusServiceUnavailable)
		return
	case Hang:
		select {
		case <-p.hang:
		case <-r.Context().Done():
		}
		return
	}
	f := r.PostForm
	if f.Get("client_id") != p.opts.ClientID && grant != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		oauthError(w, "invalid_client")
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	switch grant {
	case "client_credentials":
		if !p.clientOK(f) {
			oauthError(w, "invalid_client")
			return
		}
		p.issue(w, "")
	case "refresh_token":
		if p.opts.ClientSecret != "" && f.Get("client_secret") != p.opts.ClientSecret {
			oauthError(w, "invalid_client")
			return
		}
		if p.refresh == "" || f.Get("refresh_token") != p.refresh {
			oauthError(w, "invalid_grant")
			return
		}
		rt := ""
		if p.opts.Rotate {
			rt = p.newRefreshToken()
			p.refresh = rt
		}
		p.issue(w, rt)
	case "urn:ietf:params:oauth:grant-type:device_code":
		approved, ok := p.devices[f.Get("device_code")]
		switch {
		case !ok:
			oauthError(w, "invalid_grant")
		case !approved:
			oauthError(w, "authorization_pending")
		default:
			delete(p.devices, f.Get("device_code"))
			p.refresh = p.newRefreshToken()
			p.issue(w, p.refresh)
		}
	case "authorization_code":
		code := f.Get("code")
		challenge, ok := p.codes[code]
		sum := sha256.Sum256([]byte(f.Get("code_verifier")))
		if !ok || p.redirect[code] != f.Get("redirect_uri") ||
			base64.RawURLEncoding.EncodeToString(sum[:]) != challenge {
			oauthError(w, "invalid_grant")
			return
		}
		if p.opts.ClientSecret != "" && f.Get("client_secret") != p.opts.ClientSecret {
			oauthError(w, "invalid_client")
			return
		}
		delete(p.codes, code)
		p.refresh = p.newRefreshToken()
		p.issue(w, p.refresh)
	case "urn:ietf:params:oauth:grant-type:jwt-bearer":
		claims, ok := jwtClaims(f.Get("assertion"))
		if !ok || (p.opts.Subject != "" && claims["sub"] != p.opts.Subject) {
			oauthError(w, "invalid_grant")
			return
		}
		p.issue(w, "")
	default:
		oauthError(w, "unsupported_grant_type")
	}
}

// clientOK checks the client secret or the signed client assertion.
func (p *Provider) clientOK(f url.Values) bool {
	if a := f.Get("client_assertion"); a != "" {
		if p.opts.ClientCert == nil || f.Get("client_assertion_type") != "urn:ietf:params:oauth:client-assertion-type:jwt-bearer" {
			return false
		}
		parts := strings.Split(a, ".")
		if len(parts) != 3 {
			return false
		}
		sig, err := base64.RawURLEncoding.DecodeString(parts[2])
		if err != nil {
			return false
		}
		digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
		pub, ok := p.opts.ClientCert.PublicKey.(*rsa.PublicKey)
		if !ok || rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig) != nil {
			return false
		}
		claims, ok := jwtClaims(a)
		return ok && claims["iss"] == p.opts.ClientID && claims["aud"] == p.srv.URL+"/token"
	}
	return p.opts.ClientSecret == "" || f.Get("client_secret") == p.opts.ClientSecret
}

func jwtClaims(a string) (map[string]any, bool) {
	parts := strings.Split(a, ".")
	if len(parts) != 3 {
		return nil, false
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, false
	}
	var m map[string]any
	return m, json.Unmarshal(b, &m) == nil
}

func (p *Provider) deviceCode(w http.ResponseWriter, r *http.Request) {
	r.ParseForm()
	if r.PostForm.Get("client_id") != p.opts.ClientID {
		oauthError(w, "invalid_client")
		return
	}
	p.mu.Lock()
	p.seq++
	dc := fmt.Sprintf("dc-%d", p.seq)
	p.devices[dc] = false
	p.mu.Unlock()
	writeJSON(w, http.StatusOK, map[string]any{"device_code": dc, "user_code": "ABCD-EFGH",
		"verification_uri": p.srv.URL + "/device", "expires_in": 600, "interval": 1})
}

// authorize is the consent page: it consents at once and redirects with
// a code bound to the PKCE challenge and the redirect URI.
func (p *Provider) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	redirect := q.Get("redirect_uri")
	u, err := url.Parse(redirect)
	if err != nil || u.Hostname() != "127.0.0.1" || q.Get("client_id") != p.opts.ClientID ||
		q.Get("code_challenge_method") != "S256" || q.Get("code_challenge") == "" || q.Get("response_type") != "code" {
		http.Error(w, "bad authorization request", http.StatusBadRequest)
		return
	}
	p.mu.Lock()
	p.seq++
	code := fmt.Sprintf("code-%d", p.seq)
	p.codes[code] = q.Get("code_challenge")
	p.redirect[code] = redirect
	p.mu.Unlock()
	v := u.Query()
	v.Set("code", code)
	v.Set("state", q.Get("state"))
	u.RawQuery = v.Encode()
	http.Redirect(w, r, u.String(), http.StatusFound)
}
