package main

// End-to-end tests of [smarthost.oauth2]: the real binary gets its
// XOAUTH2 token from a fake provider over HTTPS (internal/oauthtest) and
// the fake smarthost accepts only tokens that provider issued and has not
// revoked.

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"relaymail/internal/oauthtest"
	"relaymail/internal/smtptest"
)

const oauthUser = "robot@example.com"

// oauthHarness is a provider, a smarthost that checks its tokens, and a
// config whose [smarthost.oauth2] is table (ca_file and token_url added).
type oauthHarness struct {
	*harness
	p *oauthtest.Provider
}

func newOAuthHarness(t *testing.T, po oauthtest.Options, table string) *oauthHarness {
	t.Helper()
	if po.ClientID == "" {
		po.ClientID = "client-1"
	}
	p := oauthtest.Start(t, po)
	so := smtptest.Options{TLS: smtptest.TLSStartTLS, Users: map[string]string{oauthUser: "unused"},
		Mechanisms: []string{"XOAUTH2", "OAUTHBEARER"}, AuthRequired: true,
		Verify: func(user, token string) bool { return user == oauthUser && p.Valid(token) }}
	dir := t.TempDir()
	os.Chmod(dir, 0o755)
	table = strings.NewReplacer("DIR", dir).Replace(table)
	smarthost := fmt.Sprintf("username = %q\n[smarthost.oauth2]\nclient_id = %q\ntoken_url = %q\nca_file = %q\n%s\n",
		oauthUser, po.ClientID, p.URL()+"/token", p.CAFile(dir), table)
	return &oauthHarness{harness: newHarness(t, so, "", smarthost), p: p}
}

func writeSecretFile(t *testing.T, path, value string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(value+"\n"), 0o640); err != nil {
		t.Fatal(err)
	}
}

// key is the value of a path key of the config (the DIR of the table,
// resolved).
func (h *oauthHarness) key(name string) string {
	cfg, _ := os.ReadFile(h.config)
	m := regexp.MustCompile(name + ` = "([^"]+)"`).FindStringSubmatch(string(cfg))
	if m == nil {
		h.t.Fatalf("no %s in the config", name)
	}
	return m[1]
}

// queued is the number of messages waiting in the harness's queue.
func (h *harness) queued() int {
	ents, _ := os.ReadDir(filepath.Join(h.dir, "spool", "env"))
	return len(ents)
}

// noSecrets fails the test if any of secrets shows in texts.
func noSecrets(t *testing.T, secrets []string, texts ...string) {
	t.Helper()
	for _, s := range secrets {
		for _, text := range texts {
			if s != "" && strings.Contains(text, s) {
				t.Errorf("a secret (%.6s...) shows in output:\n%s", s, text)
			}
		}
	}
}

// TestOAuth2OneTokenForManyProcesses: 100 sends in 100 processes (25 at
// a time) cost one token request; every message arrives authenticated.
func TestOAuth2OneTokenForManyProcesses(t *testing.T) {
	h := newOAuthHarness(t, oauthtest.Options{ClientSecret: "client-secret-value-42"}, `
grant = "client_credentials"
client_secret_file = "DIR/secret"`)
	writeSecretFile(t, h.key("client_secret_file"), "client-secret-value-42")

	const n, parallel = 100, 25
	sem := make(chan struct{}, parallel)
	var wg sync.WaitGroup
	results := make([]result, n)
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			results[i] = h.run([]string{"sendmail", "-i", "someone@example.net"},
				[]byte(fmt.Sprintf("Subject: %d\n\nhello\n", i)), stdinPipe)
		}()
	}
	wg.Wait()
	for i, r := range results {
		if r.code != 0 || r.stderr != "" {
			t.Fatalf("send %d: exit %d, stderr %q", i, r.code, r.stderr)
		}
	}
	msgs := h.srv.WaitMessages(t, n, 60*time.Second)
	for _, m := range msgs {
		if m.AuthUser != oauthUser || m.AuthMech != "XOAUTH2" {
			t.Fatalf("message authenticated as %q with %q", m.AuthUser, m.AuthMech)
		}
	}
	if got := h.p.Requests(); got != 1 {
		t.Errorf("token requests for %d processes = %d, want 1", n, got)
	}
	log, _ := os.ReadFile(h.log)
	noSecrets(t, append(h.p.Issued(), "client-secret-value-42"), string(log))
}

// TestOAuth2ExpiredAndRefused: an expired cached token costs exactly one
// request; a token the smarthost refuses (revoked) gets one fresh token
// in the same session and the mail goes.
func TestOAuth2ExpiredAndRefused(t *testing.T) {
	h := newOAuthHarness(t, oauthtest.Options{RefreshToken: "rt-first-secret-000", ExpiresIn: 1}, `
grant = "refresh_token"
refresh_token_file = "DIR/refresh"`)
	rtPath := h.key("refresh_token_file")
	writeSecretFile(t, rtPath, "rt-first-secret-000")
	send := func(i int) {
		t.Helper()
		r := h.run([]string{"sendmail", "-i", "someone@example.net"}, []byte(fmt.Sprintf("Subject: %d\n\nhi\n", i)), stdinPipe)
		if r.code != 0 || r.stderr != "" {
			t.Fatalf("send %d: exit %d, stderr %q", i, r.code, r.stderr)
		}
	}
	send(1)
	if got := h.p.Requests(); got != 1 {
		t.Fatalf("requests after the first send = %d", got)
	}
	time.Sleep(1500 * time.Millisecond) // the 1 s token is now past its expiry
	send(2)
	if got := h.p.Requests(); got != 2 {
		t.Errorf("requests after an expired token = %d, want exactly 2", got)
	}

	// The provider revokes the cached token; the server answers 334 and
	// 535; relaymail asks for one fresh token and tries AUTH once more.
	h.p.Revoke()
	send(3)
	if got := h.p.Requests(); got != 3 {
		t.Errorf("requests after a refused token = %d, want exactly 3", got)
	}
	h.srv.WaitMessages(t, 3, 30*time.Second)
	if h.queued() != 0 {
		t.Errorf("%d messages queued", h.queued())
	}
}

// TestOAuth2RotationParallel: 20 processes, each with its own queue (so
// each must refresh) and one refresh token file, against a provider that
// revokes each refresh token as it issues the next: every message goes
// and the file holds the provider's current refresh token at the end.
func TestOAuth2RotationParallel(t *testing.T) {
	h := newOAuthHarness(t, oauthtest.Options{RefreshToken: "rt-initial-secret-00", Rotate: true}, `
grant = "refresh_token"
refresh_token_file = "DIR/refresh"`)
	base, _ := os.ReadFile(h.config)
	rtPath := h.key("refresh_token_file")
	writeSecretFile(t, rtPath, "rt-initial-secret-00")
	spool := regexp.MustCompile(`dir = "([^"]+)"`)
	const n = 20
	var wg sync.WaitGroup
	results := make([]result, n)
	for i := range n {
		own := strings.Replace(string(base), spool.FindString(string(base)),
			fmt.Sprintf("dir = %q", filepath.Join(h.dir, fmt.Sprintf("spool%d", i))), 1)
		path := filepath.Join(h.dir, fmt.Sprintf("relaymail%d.toml", i))
		os.WriteFile(path, []byte(own), 0o644)
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = runBinary(t, []string{"sendmail", "-i", "someone@example.net"},
				[]byte(fmt.Sprintf("Subject: %d\n\nhi\n", i)), stdinPipe, nil, "RELAYMAIL_CONFIG="+path)
		}()
	}
	wg.Wait()
	for i, r := range results {
		if r.code != 0 || r.stderr != "" {
			t.Errorf("send %d: exit %d, stderr %q", i, r.code, r.stderr)
		}
	}
	h.srv.WaitMessages(t, n, 60*time.Second)
	b, _ := os.ReadFile(rtPath)
	if got := strings.TrimSpace(string(b)); got != h.p.RefreshToken() {
		t.Errorf("refresh token file holds %q, the provider accepts %q", got, h.p.RefreshToken())
	}
	if got := h.p.Grants("refresh_token"); got != n {
		t.Errorf("refreshes = %d, want %d", got, n)
	}
}

// TestOAuth2InvalidGrant: a revoked grant queues the message (exit 0),
// prints one line saying to run --oauth2-login, and logs it.
func TestOAuth2InvalidGrant(t *testing.T) {
	h := newOAuthHarness(t, oauthtest.Options{RefreshToken: "rt-current-secret-0", ClientSecret: "client-secret-value-7"}, `
grant = "refresh_token"
client_secret_file = "DIR/secret"
refresh_token_file = "DIR/refresh"`)
	writeSecretFile(t, h.key("refresh_token_file"), "rt-revoked-secret-1")
	writeSecretFile(t, h.key("client_secret_file"), "client-secret-value-7")
	r := h.run([]string{"sendmail", "-v", "-i", "someone@example.net"}, []byte(simpleMail), stdinPipe)
	if r.code != 0 {
		t.Fatalf("exit %d, stderr %q", r.code, r.stderr)
	}
	if h.queued() != 1 {
		t.Errorf("%d messages queued, want 1", h.queued())
	}
	hint := regexp.MustCompile(`(?m)^relaymail: oauth2: token endpoint \S+: invalid_grant .*run "relaymail --oauth2-login" as root`)
	if got := hint.FindAllString(r.stderr, -1); len(got) != 1 {
		t.Errorf("stderr has %d hint lines, want 1:\n%s", len(got), r.stderr)
	}
	h.expectLog(`status=queued .*invalid_grant`)
	log, _ := os.ReadFile(h.log)
	if !strings.Contains(string(log), "relaymail --oauth2-login") {
		t.Errorf("log lacks the hint:\n%s", log)
	}
	noSecrets(t, []string{"rt-revoked-secret-1", "rt-current-secret-0", "client-secret-value-7"}, r.stderr, r.stdout, string(log))

	// Another process within the refusal hold does not ask again but
	// still says what to do.
	n := h.p.Requests()
	r = h.run([]string{"sendmail", "-i", "someone@example.net"}, []byte(simpleMail), stdinPipe)
	if r.code != 0 || !hint.MatchString(r.stderr) || h.p.Requests() != n {
		t.Errorf("second send: exit %d, requests %d -> %d, stderr %q", r.code, n, h.p.Requests(), r.stderr)
	}
	// A new refresh token (what --oauth2-login writes) ends the hold:
	// the queue run delivers both.
	time.Sleep(10 * time.Millisecond) // a later mtime than the refusal
	writeSecretFile(t, h.key("refresh_token_file"), "rt-current-secret-0")
	r = h.run([]string{"sendmail", "-q"}, nil, stdinNone)
	if r.code != 0 {
		t.Errorf("-q: exit %d, %q", r.code, r.stderr)
	}
	h.srv.WaitMessages(t, 2, 30*time.Second)
}

// TestOAuth2CheckAndSecrets: --check shows the grant, expiry and scope
// but no token; --dry-run and -v show no secret either.
func TestOAuth2CheckAndSecrets(t *testing.T) {
	h := newOAuthHarness(t, oauthtest.Options{ClientSecret: "client-secret-value-9"}, `
grant = "client_credentials"
client_secret_file = "DIR/secret"
scope = "https://outlook.office365.com/.default"`)
	writeSecretFile(t, h.key("client_secret_file"), "client-secret-value-9")
	check := h.run([]string{"sendmail", "--check"}, nil, stdinNone)
	if check.code != 0 {
		t.Fatalf("--check: exit %d, %s%s", check.code, check.stdout, check.stderr)
	}
	if !regexp.MustCompile(`oauth2: grant client_credentials, expires \d{4}-\d\d-\d\dT.*scope "SMTP.Send"`).MatchString(check.stdout) {
		t.Errorf("--check output lacks grant/expiry/scope:\n%s", check.stdout)
	}
	dry := h.run([]string{"sendmail", "--dry-run", "-i", "someone@example.net"}, []byte(simpleMail), stdinPipe)
	verbose := h.run([]string{"sendmail", "-v", "-i", "someone@example.net"}, []byte(simpleMail), stdinPipe)
	if verbose.code != 0 || !strings.Contains(verbose.stderr, "AUTH XOAUTH2 <redacted>") {
		t.Errorf("-v: exit %d\n%s", verbose.code, verbose.stderr)
	}
	log, _ := os.ReadFile(h.log)
	secrets := append(h.p.Issued(), "client-secret-value-9")
	noSecrets(t, secrets, check.stdout, check.stderr, dry.stdout, dry.stderr, verbose.stdout, verbose.stderr, string(log))
	if len(h.p.Issued()) == 0 {
		t.Error("no token was issued")
	}
}

// TestOAuth2LoginDevice: --oauth2-login with a device endpoint prints the
// code, waits for consent, and writes the refresh token file, which the
// next send uses.
func TestOAuth2LoginDevice(t *testing.T) {
	h := newOAuthHarness(t, oauthtest.Options{}, `
grant = "refresh_token"
refresh_token_file = "DIR/refresh"
device_auth_url = "DEVICE"`)
	cfg, _ := os.ReadFile(h.config)
	os.WriteFile(h.config, []byte(strings.Replace(string(cfg), `"DEVICE"`, fmt.Sprintf("%q", h.p.URL()+"/devicecode"), 1)), 0o644)
	rtPath := h.key("refresh_token_file")

	out, wait := startLogin(t, h.harness)
	line := waitLine(t, out, "enter the code")
	if !strings.Contains(line, "ABCD-EFGH") || !strings.Contains(line, h.p.URL()+"/device") {
		t.Errorf("instructions: %q", line)
	}
	h.p.ApproveDevices()
	if code, rest := wait(); code != 0 {
		t.Fatalf("--oauth2-login: exit %d: %s", code, rest)
	}
	checkLoginFile(t, h, rtPath)
}

// TestOAuth2LoginLoopbackPKCE: --oauth2-login with only an authorization
// endpoint prints a URL; "the browser" opens it, the provider redirects
// to relaymail's loopback listener, and the code is exchanged with the
// PKCE verifier.
func TestOAuth2LoginLoopbackPKCE(t *testing.T) {
	h := newOAuthHarness(t, oauthtest.Options{ClientSecret: "installed-app-secret"}, `
grant = "refresh_token"
client_secret_file = "DIR/secret"
refresh_token_file = "DIR/refresh"
auth_url = "AUTH"`)
	cfg, _ := os.ReadFile(h.config)
	os.WriteFile(h.config, []byte(strings.Replace(string(cfg), `"AUTH"`, fmt.Sprintf("%q", h.p.URL()+"/authorize"), 1)), 0o644)
	writeSecretFile(t, h.key("client_secret_file"), "installed-app-secret")
	rtPath := h.key("refresh_token_file")

	out, wait := startLogin(t, h.harness)
	authURL := waitLine(t, out, h.p.URL()+"/authorize")
	if !strings.Contains(authURL, "code_challenge_method=S256") || !strings.Contains(authURL, "login_hint=") {
		t.Errorf("authorization URL: %q", authURL)
	}
	// The browser: the provider's redirect to 127.0.0.1 is followed.
	resp, err := h.p.Client().Get(strings.TrimSpace(authURL))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "signed in") {
		t.Errorf("redirect page: %d %q", resp.StatusCode, body)
	}
	if code, rest := wait(); code != 0 {
		t.Fatalf("--oauth2-login: exit %d: %s", code, rest)
	}
	checkLoginFile(t, h, rtPath)
}

// startLogin runs --oauth2-login and returns its stdout lines and a
// function that waits for the exit.
func startLogin(t *testing.T, h *harness) (<-chan string, func() (int, string)) {
	t.Helper()
	cmd := exec.Command(binary, "--oauth2-login")
	cmd.Args[0] = "sendmail"
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=/nonexistent-home", noExitSleep, "RELAYMAIL_CONFIG=" + h.config}
	stdout, _ := cmd.StdoutPipe()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 100)
	var all strings.Builder
	done := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			all.WriteString(sc.Text() + "\n")
			lines <- sc.Text()
		}
		close(lines)
		close(done)
	}()
	t.Cleanup(func() { cmd.Process.Kill() })
	return lines, func() (int, string) {
		<-done
		err := cmd.Wait()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		return code, all.String() + stderr.String()
	}
}

func waitLine(t *testing.T, lines <-chan string, substr string) string {
	t.Helper()
	timeout := time.After(60 * time.Second)
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("output ended before a line with %q", substr)
			}
			if strings.Contains(l, substr) {
				return l
			}
		case <-timeout:
			t.Fatalf("no line with %q", substr)
		}
	}
}

// checkLoginFile: the file holds the provider's refresh token, mode 0600
// (the caller is not root), and a send with it works.
func checkLoginFile(t *testing.T, h *oauthHarness, path string) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.TrimSpace(string(b)); got == "" || got != h.p.RefreshToken() {
		t.Errorf("refresh token file %q, provider %q", got, h.p.RefreshToken())
	}
	// Root writes it for relaymail's group (which saves rotated tokens);
	// anyone else for themselves only.
	want := os.FileMode(0o600)
	if os.Getuid() == 0 {
		want = 0o660
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != want {
		t.Errorf("mode %v, want %v", st.Mode(), want)
	}
	r := h.run([]string{"sendmail", "-i", "someone@example.net"}, []byte(simpleMail), stdinPipe)
	if r.code != 0 || r.stderr != "" {
		t.Fatalf("send after login: exit %d, %q", r.code, r.stderr)
	}
	h.srv.WaitMessages(t, 1, 30*time.Second)
}

// TestOAuth2EndpointFailures: a token endpoint that answers 5xx, hangs
// or cannot be reached costs no mail: the message is queued (exit 0) and
// no secret shows; a hung endpoint holds the caller about one timeout.
func TestOAuth2EndpointFailures(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name string
		fail oauthtest.Failure
		dead bool
	}{
		{"503", oauthtest.ServerError, false},
		{"hang", oauthtest.Hang, false},
		{"unreachable", oauthtest.OK, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newOAuthHarness(t, oauthtest.Options{ClientSecret: "client-secret-value-5"}, `
grant = "client_credentials"
client_secret_file = "DIR/secret"`)
			writeSecretFile(t, h.key("client_secret_file"), "client-secret-value-5")
			h.p.SetFailure(tt.fail)
			if tt.dead {
				cfg, _ := os.ReadFile(h.config)
				url := h.key("token_url")
				dead := fmt.Sprintf("https://127.0.0.1:%d/token", smtptest.DeadPort(t))
				os.WriteFile(h.config, []byte(strings.Replace(string(cfg), url, dead, 1)), 0o644)
			}
			start := time.Now()
			r := h.run([]string{"sendmail", "-i", "someone@example.net"}, []byte(simpleMail), stdinPipe)
			took := time.Since(start)
			if r.code != 0 {
				t.Errorf("exit %d, want 0 (queued); stderr %q", r.code, r.stderr)
			}
			if h.queued() != 1 {
				t.Errorf("%d messages queued, want 1", h.queued())
			}
			if n := len(h.srv.Messages()); n != 0 {
				t.Errorf("%d messages sent without a token", n)
			}
			if took > 45*time.Second {
				t.Errorf("the caller waited %v (timeout is 5s)", took)
			}
			log, _ := os.ReadFile(h.log)
			noSecrets(t, []string{"client-secret-value-5"}, r.stderr, r.stdout, string(log))
		})
	}
}
