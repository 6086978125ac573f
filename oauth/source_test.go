package oauth

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"relaymail/config"
	"relaymail/internal/oauthtest"
)

// setup is a provider, a queue directory and the [oauth2] settings
// pointing at the provider.
func setup(t *testing.T, po oauthtest.Options, grant string) (*oauthtest.Provider, string, *config.OAuth2) {
	t.Helper()
	if po.ClientID == "" {
		po.ClientID = "client-1"
	}
	p := oauthtest.Start(t, po)
	dir := t.TempDir()
	pool := x509.NewCertPool()
	pemBytes, _ := os.ReadFile(p.CAFile(dir))
	pool.AppendCertsFromPEM(pemBytes)
	cfg := &config.OAuth2{Grant: grant, ClientID: po.ClientID, TokenURL: p.URL() + "/token",
		Scopes: []string{"https://outlook.office365.com/.default"}, RootCAs: pool}
	if po.ClientSecret != "" {
		cfg.ClientSecretFile = writeSecret(t, dir, "client-secret", po.ClientSecret)
	}
	if po.RefreshToken != "" {
		cfg.RefreshTokenFile = writeSecret(t, dir, "refresh-token", po.RefreshToken)
	}
	q := filepath.Join(dir, "spool")
	os.Mkdir(q, 0o770)
	os.Chmod(q, 0o770) // whatever the umask, as the queue makes it
	return p, q, cfg
}

func writeSecret(t *testing.T, dir, name, value string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(value+"\n"), 0o640); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCacheOneRequestPerLifetime(t *testing.T) {
	p, q, cfg := setup(t, oauthtest.Options{ClientSecret: "s3cret-client"}, config.GrantClientCredentials)
	ctx := context.Background()
	// 20 processes' worth of sources at once: one request.
	var wg sync.WaitGroup
	toks := make([]string, 20)
	errs := make([]error, 20)
	for i := range toks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			toks[i], errs[i] = New(cfg, "robot@example.com", q, 10*time.Second).Token(ctx)
		}()
	}
	wg.Wait()
	for i := range toks {
		if errs[i] != nil || toks[i] != toks[0] || !p.Valid(toks[i]) {
			t.Fatalf("source %d: %q, %v (first %q)", i, toks[i], errs[i], toks[0])
		}
	}
	if n := p.Requests(); n != 1 {
		t.Errorf("token requests = %d, want 1", n)
	}
	// The cache is group-readable only, in a directory like the queue's.
	st, err := os.Stat(filepath.Join(q, CacheSubdir))
	if err != nil || st.Mode().Perm() != 0o770 {
		t.Errorf("cache dir: %v, %v", st.Mode(), err)
	}
	files, _ := filepath.Glob(filepath.Join(q, CacheSubdir, "*.json"))
	if len(files) != 1 {
		t.Fatalf("cache files %v", files)
	}
	if st, _ := os.Stat(files[0]); st.Mode().Perm() != 0o640 {
		t.Errorf("cache file mode %v", st.Mode())
	}
}

func TestExpiryAndFresh(t *testing.T) {
	p, q, cfg := setup(t, oauthtest.Options{ClientSecret: "s3cret-client", ExpiresIn: 3600}, config.GrantClientCredentials)
	ctx := context.Background()
	now := time.Now()
	s := New(cfg, "robot@example.com", q, 10*time.Second)
	s.Now = func() time.Time { return now }
	a, err := s.Token(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Shortly before expiry (inside the margin): exactly one refresh, and
	// another process sees the new token without asking.
	now = now.Add(time.Hour - refreshMargin + time.Second)
	b, err := s.Token(ctx)
	if err != nil || b == a {
		t.Fatalf("after expiry: %q, %v", b, err)
	}
	other := New(cfg, "robot@example.com", q, 10*time.Second)
	other.Now = s.Now
	if c, _ := other.Token(ctx); c != b {
		t.Errorf("other process got %q, want the cached %q", c, b)
	}
	if n := p.Requests(); n != 2 {
		t.Errorf("requests = %d, want 2", n)
	}
	// Refused by the server: Fresh asks once more, unless another
	// process already did.
	c, err := s.Fresh(ctx, b)
	if err != nil || c == b {
		t.Fatalf("fresh: %q, %v", c, err)
	}
	if d, _ := other.Fresh(ctx, b); d != c {
		t.Errorf("second Fresh for the same stale token made its own: %q vs %q", d, c)
	}
	if n := p.Requests(); n != 3 {
		t.Errorf("requests = %d, want 3", n)
	}
}

func TestRefreshTokenRotation(t *testing.T) {
	p, q, cfg := setup(t, oauthtest.Options{RefreshToken: "rt-initial-value", Rotate: true}, config.GrantRefreshToken)
	ctx := context.Background()
	os.Chmod(cfg.RefreshTokenFile, 0o660)
	// Every process its own cache (own queue), one refresh token file:
	// each refreshes, and the rotations must chain.
	var wg sync.WaitGroup
	errs := make([]error, 20)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			own := filepath.Join(q, "q"+string(rune('a'+i)))
			os.Mkdir(own, 0o770)
			_, errs[i] = New(cfg, "robot@example.com", own, 10*time.Second).Token(ctx)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("source %d: %v", i, err)
		}
	}
	b, _ := os.ReadFile(cfg.RefreshTokenFile)
	if got := strings.TrimSpace(string(b)); got != p.RefreshToken() {
		t.Errorf("refresh token file %q, provider's %q", got, p.RefreshToken())
	}
	if st, _ := os.Stat(cfg.RefreshTokenFile); st.Mode().Perm() != 0o660 {
		t.Errorf("refresh token file mode %v, want 0660 kept", st.Mode())
	}
	if n := p.Grants("refresh_token"); n != 20 {
		t.Errorf("refreshes = %d, want 20", n)
	}
}

func TestFailures(t *testing.T) {
	dead, _ := net.Listen("tcp", "127.0.0.1:0")
	deadURL := "https://" + dead.Addr().String() + "/token"
	dead.Close()
	for _, tc := range []struct {
		name    string
		fail    oauthtest.Failure
		url     string
		want    string
		invalid bool
	}{
		{"invalid_grant", oauthtest.InvalidGrant, "", "invalid_grant (fake provider: invalid_grant); the grant was revoked or has expired: " + LoginHint, true},
		{"5xx", oauthtest.ServerError, "", "HTTP 503 Service Unavailable", false},
		{"hang", oauthtest.Hang, "", "no answer within 1s", false},
		{"unreachable", oauthtest.OK, deadURL, "connection refused", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, q, cfg := setup(t, oauthtest.Options{RefreshToken: "rt-secret-value-1", ClientSecret: "client-secret-value"}, config.GrantRefreshToken)
			p.SetFailure(tc.fail)
			if tc.url != "" {
				cfg.TokenURL = tc.url
			}
			var notices []string
			s := New(cfg, "robot@example.com", q, time.Second)
			s.Notice = func(m string) { notices = append(notices, m) }
			_, err := s.Token(context.Background())
			if err == nil || !errors.Is(err, ErrToken) || errors.Is(err, ErrInvalidGrant) != tc.invalid {
				t.Fatalf("err = %v", err)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %q, want it to hold %q", err, tc.want)
			}
			for _, sec := range []string{"rt-secret-value-1", "client-secret-value"} {
				if strings.Contains(err.Error(), sec) {
					t.Errorf("error shows a secret: %v", err)
				}
			}
			if tc.invalid != (len(notices) == 1) {
				t.Errorf("notices %q", notices)
			}
			if tc.invalid {
				// A burst of processes does not ask again for a while,
				// and each tells the administrator.
				n := p.Requests()
				_, err := New(cfg, "robot@example.com", q, time.Second).Token(context.Background())
				if !errors.Is(err, ErrInvalidGrant) || p.Requests() != n {
					t.Errorf("second process: %v, requests %d -> %d", err, n, p.Requests())
				}
			}
		})
	}
}

// selfSigned is an RSA certificate and its key in PEM.
func selfSigned(t *testing.T) (*x509.Certificate, []byte) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "relaymail app"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	pemBytes = append(pemBytes, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})...)
	return cert, pemBytes
}

func TestClientCertificateAssertion(t *testing.T) {
	cert, pemBytes := selfSigned(t)
	p, q, cfg := setup(t, oauthtest.Options{ClientCert: cert}, config.GrantClientCredentials)
	path := filepath.Join(t.TempDir(), "app.pem")
	os.WriteFile(path, pemBytes, 0o640)
	cfg.ClientCertFile, cfg.ClientKeyFile = path, path
	tok, err := New(cfg, "robot@example.com", q, 10*time.Second).Token(context.Background())
	if err != nil || !p.Valid(tok) {
		t.Fatalf("%q, %v", tok, err)
	}
}

func TestJWTBearerServiceAccount(t *testing.T) {
	_, pemBytes := selfSigned(t)
	key := pemBytes[strings.Index(string(pemBytes), "-----BEGIN RSA PRIVATE KEY"):]
	p, q, cfg := setup(t, oauthtest.Options{Subject: "robot@example.com"}, config.GrantJWTBearer)
	b, _ := json.Marshal(map[string]string{"type": "service_account", "client_email": "relay@project.iam.gserviceaccount.com",
		"private_key": string(key), "private_key_id": "k1", "token_uri": "https://unused.invalid/token"})
	cfg.ServiceAccountKey = filepath.Join(t.TempDir(), "sa.json")
	os.WriteFile(cfg.ServiceAccountKey, b, 0o640)
	tok, err := New(cfg, "robot@example.com", q, 10*time.Second).Token(context.Background())
	if err != nil || !p.Valid(tok) {
		t.Fatalf("%q, %v", tok, err)
	}
	// Acting as another mailbox is refused by the provider: invalid_grant
	// with the delegation hint.
	_, err = New(cfg, "other@example.com", q, 10*time.Second).Token(context.Background())
	if !errors.Is(err, ErrInvalidGrant) || !strings.Contains(err.Error(), "domain-wide delegation") {
		t.Errorf("other subject: %v", err)
	}
	if strings.Contains(err.Error(), "PRIVATE KEY") {
		t.Errorf("error shows the key: %v", err)
	}
}

func TestSecretFileReadableByAll(t *testing.T) {
	_, q, cfg := setup(t, oauthtest.Options{ClientSecret: "s3cret-client"}, config.GrantClientCredentials)
	os.Chmod(cfg.ClientSecretFile, 0o644)
	_, err := New(cfg, "robot@example.com", q, time.Second).Token(context.Background())
	if err == nil || !strings.Contains(err.Error(), "readable by all users") {
		t.Errorf("err = %v", err)
	}

	// The service account key: the mode checked is the opened file's.
	_, q, cfg = setup(t, oauthtest.Options{Subject: "robot@example.com"}, config.GrantJWTBearer)
	cfg.ServiceAccountKey = filepath.Join(t.TempDir(), "sa.json")
	os.WriteFile(cfg.ServiceAccountKey, []byte("{}"), 0o644)
	os.Chmod(cfg.ServiceAccountKey, 0o644)
	_, err = New(cfg, "robot@example.com", q, time.Second).Token(context.Background())
	if err == nil || !strings.Contains(err.Error(), "service_account_file "+cfg.ServiceAccountKey+" is readable by all users (mode 0644)") {
		t.Errorf("service account: err = %v", err)
	}
}
