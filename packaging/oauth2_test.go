package packaging

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"relaymail/internal/oauthtest"
	"relaymail/internal/smtptest"
)

// TestOAuth2CachePrivate: with [smarthost.oauth2] (refresh_token grant,
// a provider that rotates), www-data sends through the installed setgid
// binary: the token is fetched, cached in the spool's oauth2/ and the
// rotated refresh token saved back, yet www-data (and nobody) can read
// neither the cache nor the refresh token file, and no output shows a
// token.
func TestOAuth2CachePrivate(t *testing.T) {
	gid := installed(t)
	www := lookupAccount(t, "www-data")
	nobody := lookupAccount(t, "nobody")
	first := newSecret(t)
	p := oauthtest.Start(t, oauthtest.Options{ClientID: "pkg-client", RefreshToken: first, Rotate: true})
	s := smtptest.Start(t, smtptest.Options{Users: map[string]string{smarthostUser: "unused"}, AuthRequired: true,
		Mechanisms: []string{"XOAUTH2"}, Verify: func(u, tok string) bool { return u == smarthostUser && p.Valid(tok) }})

	ca := "/etc/relaymail-pkgtest-oauth-ca.pem"
	caDir := t.TempDir()
	pem, _ := os.ReadFile(p.CAFile(caDir))
	writeFile(t, ca, string(pem), 0, 0o644)
	dir := filepath.Join(spoolDir, "oauth2")
	existed := true
	if _, err := os.Stat(dir); err != nil {
		existed = false
		if err := os.Mkdir(dir, 0o700); err != nil {
			t.Fatal(err)
		}
		os.Chown(dir, 0, int(gid))
		os.Chmod(dir, 0o770|os.ModeSetgid)
	}
	rt := filepath.Join(dir, "pkgtest-refresh-token")
	t.Cleanup(func() {
		os.Remove(rt)
		os.Remove(rt + ".lock")
		if !existed {
			os.RemoveAll(dir)
		}
	})
	setFile(t, rt, first+"\n", gid, 0o660)
	cfg := strings.Replace(configFor(s, "", "xoauth2"), "[queue]", fmt.Sprintf(`[smarthost.oauth2]
grant = "refresh_token"
client_id = "pkg-client"
token_url = %q
ca_file = %q

[queue]`, p.URL()+"/token", ca), 1)
	cfg = strings.Replace(cfg, "[smarthost.oauth2]\n", "[smarthost.oauth2]\nrefresh_token_file = \""+rt+"\"\n", 1)
	writeFile(t, systemConfig, cfg, gid, 0o640)

	for i := range 3 {
		r := runAs(t, www, nil, testMessage, sendmailPath, "-v", "-i", "someone@example.org")
		if r.code != 0 {
			t.Fatalf("send %d as www-data: %s", i, r)
		}
		for _, tok := range append(p.Issued(), first, p.RefreshToken()) {
			assertNoSecret(t, "sendmail -v as www-data", r.stdout+r.stderr, tok)
		}
	}
	msgs := s.WaitMessages(t, 3, 10*time.Second)
	if msgs[0].AuthUser != smarthostUser || msgs[0].AuthMech != "XOAUTH2" {
		t.Errorf("authenticated as %q with %q", msgs[0].AuthUser, msgs[0].AuthMech)
	}
	if n := p.Requests(); n != 1 {
		t.Errorf("token requests for 3 sends = %d, want 1 (the cache)", n)
	}
	// The rotated refresh token was saved back, with the group's rights.
	b, _ := os.ReadFile(rt)
	if got := strings.TrimSpace(string(b)); got != p.RefreshToken() || got == first {
		t.Errorf("refresh token file holds %q, the provider %q", got, p.RefreshToken())
	}
	files := walkFiles(t, dir)
	if len(files) < 2 {
		t.Fatalf("oauth2/ holds %v, want the cache and the refresh token", files)
	}
	for _, f := range append(files, dir) {
		st, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if g := st.Sys().(*syscall.Stat_t).Gid; g != gid || st.Mode().Perm()&0o007 != 0 {
			t.Errorf("%s: mode %v group %d, want group relaymail (%d) and nothing for others", f, st.Mode(), g, gid)
		}
		for _, u := range []account{www, nobody} {
			if r := runAs(t, u, nil, "", "/bin/cat", f); r.code == 0 || strings.Contains(r.stdout, "access_token") {
				t.Errorf("%s can read %s: %s", u.name, f, r)
			}
		}
	}
	if r := runAs(t, www, nil, "", "/bin/ls", dir); r.code == 0 {
		t.Errorf("www-data can list %s: %s", dir, r)
	}
	// --check shows the grant and expiry, never a token.
	r := runAs(t, www, nil, "", sendmailPath, "--check")
	if r.code != 0 || !strings.Contains(r.stdout, "oauth2: grant refresh_token") {
		t.Errorf("--check as www-data: %s", r)
	}
	for _, tok := range append(p.Issued(), first, p.RefreshToken()) {
		assertNoSecret(t, "--check as www-data", r.stdout+r.stderr, tok)
	}
	// --oauth2-login as www-data cannot replace the refresh token: it
	// gives up the group before writing (and the login itself needs a
	// person; here it fails at once for want of a login endpoint).
	r = runAs(t, www, nil, "", sendmailPath, "--oauth2-login")
	if r.code == 0 {
		t.Errorf("--oauth2-login as www-data succeeded: %s", r)
	}
}
