package oauth

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/oauth2"

	"relaymail/config"
)

// LoginTimeout bounds the whole interactive login: a person has this long
// to open the page and consent.
const LoginTimeout = 15 * time.Minute

// Login obtains the first refresh token for a refresh_token grant
// interactively and returns it; out gets what the person must do. It uses
// the device authorization grant (RFC 8628) when cfg has a device
// endpoint (Microsoft), else the authorization code grant with PKCE
// (RFC 7636, S256) and a redirect to a one-shot listener on 127.0.0.1
// (RFC 8252 §7.3) (Google, whose device flow does not allow the mail
// scope). user is the mailbox, passed as a login hint.
func Login(ctx context.Context, cfg *config.OAuth2, user string, out io.Writer) (string, error) {
	if cfg.Grant != config.GrantRefreshToken {
		return "", tokenError(nil, "--oauth2-login is for grant = \"refresh_token\"; grant = %q needs no login", cfg.Grant)
	}
	ctx, cancel := context.WithTimeout(ctx, LoginTimeout)
	defer cancel()
	s := &Source{cfg: cfg, user: user, timeout: 30 * time.Second}
	ctx = context.WithValue(ctx, oauth2.HTTPClient, s.httpClient())
	conf := &oauth2.Config{
		ClientID: cfg.ClientID,
		Endpoint: oauth2.Endpoint{TokenURL: cfg.TokenURL, DeviceAuthURL: cfg.DeviceAuthURL,
			AuthURL: cfg.AuthURL, AuthStyle: oauth2.AuthStyleInParams},
		Scopes: cfg.Scopes,
	}
	var secrets []string
	if cfg.ClientSecretFile != "" {
		var err error
		if conf.ClientSecret, err = readSecretLine("client_secret_file", cfg.ClientSecretFile); err != nil {
			return "", err
		}
		secrets = append(secrets, conf.ClientSecret)
	}
	var tok *oauth2.Token
	var err error
	switch {
	case cfg.DeviceAuthURL != "":
		tok, err = deviceLogin(ctx, conf, out)
	case cfg.AuthURL != "":
		tok, err = loopbackLogin(ctx, conf, user, out)
	default:
		return "", tokenError(nil, "set device_auth_url or auth_url in [smarthost.oauth2] (or a provider) to sign in")
	}
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			return "", e
		}
		return "", s.endpointError(ctx, err, secrets)
	}
	if tok.RefreshToken == "" {
		return "", tokenError(nil, "the provider signed in but returned no refresh token (ask for offline access: scope offline_access for Microsoft)")
	}
	return tok.RefreshToken, nil
}

// deviceLogin is RFC 8628: show the code and where to enter it, then poll
// the token endpoint until the person has consented.
func deviceLogin(ctx context.Context, conf *oauth2.Config, out io.Writer) (*oauth2.Token, error) {
	da, err := conf.DeviceAuth(ctx)
	if err != nil {
		return nil, err
	}
	fmt.Fprintf(out, "To sign in, open %s on any device and enter the code %s\n", clean(da.VerificationURI), clean(da.UserCode))
	if da.VerificationURIComplete != "" {
		fmt.Fprintf(out, "(or open %s)\n", clean(da.VerificationURIComplete))
	}
	fmt.Fprintf(out, "Waiting for the sign-in...\n")
	return conf.DeviceAccessToken(ctx, da)
}

// loopbackLogin is the authorization code grant with PKCE and a redirect
// to 127.0.0.1: print the URL to open, take the one redirect that carries
// our state, and exchange its code with the verifier.
func loopbackLogin(ctx context.Context, conf *oauth2.Config, user string, out io.Writer) (*oauth2.Token, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, tokenError(err, "cannot listen on 127.0.0.1 for the sign-in redirect: %v", err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	conf.RedirectURL = fmt.Sprintf("http://127.0.0.1:%d/", port)
	verifier := oauth2.GenerateVerifier()
	state := randomString()
	opts := []oauth2.AuthCodeOption{oauth2.AccessTypeOffline, oauth2.S256ChallengeOption(verifier),
		oauth2.SetAuthURLParam("prompt", "consent")}
	if user != "" {
		opts = append(opts, oauth2.SetAuthURLParam("login_hint", user))
	}
	fmt.Fprintf(out, "To sign in, open this address in a browser on this machine\n"+
		"(from elsewhere, first: ssh -L %d:127.0.0.1:%d THIS-HOST):\n\n%s\n\nWaiting for the sign-in...\n",
		port, port, conf.AuthCodeURL(state, opts...))

	type result struct {
		code string
		err  error
	}
	got := make(chan result, 1)
	srv := &http.Server{
		ReadHeaderTimeout: 10 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			q := r.URL.Query()
			if q.Get("state") != state {
				http.Error(w, "relaymail: not the sign-in this listener waits for", http.StatusBadRequest)
				return
			}
			var res result
			if e := q.Get("error"); e != "" {
				res.err = tokenError(nil, "the sign-in was refused: %s %s", clean(e), clean(q.Get("error_description")))
				fmt.Fprintf(w, "relaymail: the sign-in was refused (%s).\n", html.EscapeString(clean(e)))
			} else if res.code = q.Get("code"); res.code == "" {
				res.err = tokenError(nil, "the sign-in redirect carried no code")
				http.Error(w, "relaymail: no code", http.StatusBadRequest)
			} else {
				fmt.Fprintf(w, "relaymail: signed in; you may close this window.\n")
			}
			select {
			case got <- res:
			default:
			}
		}),
	}
	go srv.Serve(ln)
	defer srv.Close()
	select {
	case <-ctx.Done():
		return nil, tokenError(ctx.Err(), "no sign-in within %s", LoginTimeout)
	case res := <-got:
		if res.err != nil {
			return nil, res.err
		}
		return conf.Exchange(ctx, res.code, oauth2.VerifierOption(verifier))
	}
}

func randomString() string {
	b := make([]byte, 24)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// SaveLogin writes the refresh token file from --oauth2-login: a new file
// renamed into place, mode 0660 with group gid when gid >= 0 (root
// writing for the relaymail group, which must be able to save rotated
// tokens), else 0600. The caller has given up any setgid group first:
// the path comes from a config the caller may control.
func SaveLogin(path, rt string, gid int) error {
	mode := os.FileMode(0o600)
	if gid >= 0 {
		mode = 0o660
	}
	if err := writeAtomic(path, []byte(rt+"\n"), mode, gid, true); err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return tokenError(err, "cannot write refresh_token_file %s: %v (write it as root, in a directory of group relaymail such as %s)",
			path, err, filepath.Join("/var/spool/relaymail", CacheSubdir))
	}
	return nil
}
