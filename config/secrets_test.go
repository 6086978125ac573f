package config

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

const secret = "Sw0rdf1sh-9c2e"

// testCAPEM makes a throwaway self-signed CA certificate.
func testCAPEM(t *testing.T) []byte {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "relaymail test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}

// writeFile writes data with exactly mode (not filtered by the umask).
func writeFile(t *testing.T, name string, data string, mode os.FileMode) string {
	t.Helper()
	if err := os.WriteFile(name, []byte(data), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(name, mode); err != nil {
		t.Fatal(err)
	}
	return name
}

func TestLoadPermissions(t *testing.T) {
	dir := t.TempDir()
	pwOpen := writeFile(t, filepath.Join(dir, "open.secret"), secret+"\n", 0o644)
	pwClosed := writeFile(t, filepath.Join(dir, "closed.secret"), secret+"\n", 0o640)
	inline := minimal + "username = \"u\"\npassword = \"" + secret + "\"\n"
	withFile := func(p string) string { return minimal + "username = \"u\"\npassword_file = \"" + p + "\"\n" }
	fallbackInline := minimal + "[[fallback]]\nhost = \"b.example\"\nusername = \"u\"\npassword = \"" + secret + "\"\n"

	tests := []struct {
		name string
		doc  string
		mode os.FileMode
		want string // "" = loads
	}{
		{"inline 0640", inline, 0o640, ""},
		{"inline 0600", inline, 0o600, ""},
		{"inline 0644", inline, 0o644, "holds a password but is readable by all users (mode 0644); chmod 640 it"},
		{"inline 0604", inline, 0o604, "holds a password but is readable by all users (mode 0604); chmod 640 it"},
		{"inline in fallback 0644", fallbackInline, 0o644, "holds a password but is readable by all users (mode 0644); chmod 640 it"},
		{"no secret 0644", minimal, 0o644, ""},
		{"command 0644", minimal + "username = \"u\"\npassword_command = [\"true\"]\n", 0o644, ""},
		{"world-writable", minimal, 0o646, "is writable by all users (mode 0646); chmod 640 it"},
		{"password_file 0640", withFile(pwClosed), 0o644, ""},
		{"password_file missing", withFile(filepath.Join(dir, "nope")), 0o644, ""},
		{"password_file 0644", withFile(pwOpen), 0o644, "password_file " + pwOpen + " holds a password but is readable by all users (mode 0644); chmod 640 " + pwOpen},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := writeFile(t, filepath.Join(t.TempDir(), "relaymail.toml"), tt.doc, tt.mode)
			cfg, err := Load(path)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				if cfg.Path != path {
					t.Errorf("Path = %q", cfg.Path)
				}
				return
			}
			msg := checkErr(t, err)
			if want := "config: " + path + ": " + tt.want; msg != want {
				t.Errorf("\n got %s\nwant %s", msg, want)
			}
			if strings.Contains(msg, secret) {
				t.Errorf("error shows the password: %s", msg)
			}
		})
	}
}

func TestLoadFileErrors(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "relaymail.toml")
	_, err := Load(missing)
	msg := checkErr(t, err)
	if want := "config: " + missing + ": no such file (an example is /usr/share/doc/relaymail/examples/relaymail.toml)"; msg != want {
		t.Errorf("\n got %s\nwant %s", msg, want)
	}
	// Only the system config is worth naming -C for.
	if msg, want := openError(DefaultPath, fs.ErrNotExist).Error(),
		"config: /etc/relaymail.toml: no such file (create it from /usr/share/doc/relaymail/examples/relaymail.toml, or name another with -C)"; msg != want {
		t.Errorf("\n got %s\nwant %s", msg, want)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file error does not wrap fs.ErrNotExist: %v", err)
	}

	_, err = Load(dir)
	if msg := checkErr(t, err); msg != "config: "+dir+": is a directory, not a file" {
		t.Errorf("directory: %s", msg)
	}

	big := writeFile(t, filepath.Join(dir, "big.toml"), "#"+strings.Repeat("x", maxFileSize)+"\n", 0o600)
	_, err = Load(big)
	if msg := checkErr(t, err); !strings.HasSuffix(msg, "is larger than 1048576 bytes") {
		t.Errorf("big: %s", msg)
	}

	nl := filepath.Join(dir, "a\nb.toml")
	_, err = Load(nl)
	checkErr(t, err) // one line even with a newline in the path

	if os.Geteuid() != 0 { // root reads anything
		locked := writeFile(t, filepath.Join(dir, "locked.toml"), minimal, 0o000)
		_, err = Load(locked)
		if msg := checkErr(t, err); !strings.Contains(msg, "permission denied") {
			t.Errorf("unreadable: %s", msg)
		}
	}
}

func TestPasswordInlineAndFile(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name    string
		content string
		mode    os.FileMode
		want    string
		wantErr string
	}{
		{"first line LF", secret + "\nsecond\n", 0o600, secret, ""},
		{"first line CRLF", secret + "\r\nsecond\r\n", 0o640, secret, ""},
		{"no newline", secret, 0o400, secret, ""},
		{"spaces kept", " " + secret + " \n", 0o600, " " + secret + " ", ""},
		{"empty", "", 0o600, "", "the first line is empty"},
		{"empty first line", "\n" + secret + "\n", 0o600, "", "the first line is empty"},
		{"readable by all", secret + "\n", 0o604, "", "holds a password but is readable by all users (mode 0604)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := writeFile(t, filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_")), tt.content, tt.mode)
			cfg := mustParse(t, testEnv, minimal+"username = \"u\"\npassword_file = \""+p+"\"\n")
			got, err := cfg.Smarthosts[0].Password(context.Background())
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.Is(err, ErrConfig) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error shows the password: %v", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("Password = %q, %v; want %q", got, err, tt.want)
			}
		})
	}

	cfg := mustParse(t, testEnv, minimal+"username = \"u\"\npassword_file = \""+filepath.Join(dir, "missing")+"\"\n")
	_, err := cfg.Smarthosts[0].Password(context.Background())
	if !errors.Is(err, fs.ErrNotExist) || !errors.Is(err, ErrConfig) {
		t.Errorf("missing password_file: %v", err)
	}
	want := "config: smarthost smtp.example.com: password_file " + filepath.Join(dir, "missing") + ": no such file or directory"
	if err == nil || err.Error() != want {
		t.Errorf("\n got %v\nwant %s", err, want)
	}

	cfg = mustParse(t, testEnv, minimal+"username = \"u\"\npassword = \""+secret+"\"\n")
	if got, err := cfg.Smarthosts[0].Password(context.Background()); got != secret || err != nil {
		t.Errorf("inline: %q, %v", got, err)
	}
	var none Smarthost
	if _, err := none.Password(context.Background()); err == nil || none.HasPassword() {
		t.Errorf("no source: %v", err)
	}
}

func commandHost(t *testing.T, timeout string, argv ...string) *Smarthost {
	t.Helper()
	quoted := make([]string, len(argv))
	for i, a := range argv {
		quoted[i] = fmt.Sprintf("%q", a)
	}
	doc := minimal + "username = \"u\"\ntimeout = \"" + timeout + "\"\npassword_command = [" + strings.Join(quoted, ", ") + "]\n"
	return &mustParse(t, testEnv, doc).Smarthosts[0]
}

func TestPasswordCommand(t *testing.T) {
	if _, err := os.Stat("/bin/sh"); err != nil {
		t.Skip("no /bin/sh")
	}
	t.Setenv("SECRET_ENV", "leaked")
	t.Setenv("HOME", "/home/leaked")
	// A fake "printf" early in the caller's PATH must not be run.
	fake := t.TempDir()
	writeFile(t, filepath.Join(fake, "printf"), "#!/bin/sh\necho fake\n", 0o755)
	t.Setenv("PATH", fake+":"+os.Getenv("PATH"))

	ctx := context.Background()
	tests := []struct {
		name    string
		argv    []string
		timeout string
		want    string
		wantErr string // exact error text
	}{
		{"clean env", []string{"/bin/sh", "-c", `echo "$HOME$SECRET_ENV:$PATH"`}, "5s", ":/usr/local/bin:/usr/bin:/bin", ""},
		{"env count", []string{"/bin/sh", "-c", `env | grep -v '^PWD=\|^SHLVL=\|^_=' | wc -l | tr -d ' '`}, "5s", "1", ""},
		{"first line", []string{"/bin/sh", "-c", "printf '" + secret + "\\r\\nsecond\\n'"}, "5s", secret, ""},
		{"stdin is empty", []string{"/bin/sh", "-c", "cat; echo x"}, "5s", "x", ""},
		{"clean PATH lookup", []string{"printf", "%s\n", secret}, "5s", secret, ""},
		{"stderr ignored", []string{"/bin/sh", "-c", "echo " + secret + " >&2; echo ok"}, "5s", "ok", ""},
		{"exit status", []string{"/bin/sh", "-c", "echo " + secret + "; echo " + secret + " >&2; exit 3"}, "5s", "",
			`config: smarthost smtp.example.com: password_command "/bin/sh": exit status 3`},
		{"empty output", []string{"/bin/sh", "-c", "true"}, "5s", "",
			`config: smarthost smtp.example.com: password_command "/bin/sh": exit status 0, but its first line of output is empty`},
		{"not found", []string{"relaymail-no-such-command"}, "5s", "",
			`config: smarthost smtp.example.com: password_command "relaymail-no-such-command": not found in /usr/local/bin:/usr/bin:/bin`},
		{"timeout", []string{"/bin/sh", "-c", "echo " + secret + "; sleep 10"}, "200ms", "",
			`config: smarthost smtp.example.com: password_command "/bin/sh": did not finish in time (timeout 200ms)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sh := commandHost(t, tt.timeout, tt.argv...)
			start := time.Now()
			got, err := sh.Password(ctx)
			if time.Since(start) > 4*time.Second {
				t.Errorf("took %v", time.Since(start))
			}
			if tt.wantErr != "" {
				if err == nil || err.Error() != tt.wantErr {
					t.Fatalf("\n got %v\nwant %s", err, tt.wantErr)
				}
				if !errors.Is(err, ErrConfig) {
					t.Errorf("does not wrap ErrConfig")
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("Password = %q, %v; want %q", got, err, tt.want)
			}
		})
	}

	t.Run("caller cancels", func(t *testing.T) {
		sh := commandHost(t, "30s", "/bin/sh", "-c", "sleep 10")
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_, err := sh.Password(ctx)
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("err = %v", err)
		}
	})
	t.Run("exit error kept", func(t *testing.T) {
		_, err := commandHost(t, "5s", "/bin/sh", "-c", "exit 2").Password(ctx)
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 {
			t.Errorf("err = %#v", err)
		}
	})
}

// TestCheckPassword: --check finds a password_command that cannot run
// without running it, whether looked up in CleanPath or named by path.
func TestCheckPassword(t *testing.T) {
	dir := t.TempDir()
	noexec := writeFile(t, filepath.Join(dir, "noexec"), "#!/bin/sh\n", 0o644)
	pre := `config: smarthost smtp.example.com: password_command `
	for _, tt := range []struct {
		argv    []string
		wantErr string
	}{
		{[]string{"/bin/sh", "-c", "exit 1"}, ""}, // not run
		{[]string{"sh"}, ""},
		{[]string{"relaymail-no-such-command"}, pre + `"relaymail-no-such-command": not found in /usr/local/bin:/usr/bin:/bin`},
		{[]string{noexec}, pre + `"` + noexec + `": not an executable file`},
		{[]string{dir}, pre + `"` + dir + `": not an executable file`},
		{[]string{dir + "/missing"}, pre + `"` + dir + `/missing": no such file or directory`},
	} {
		err := commandHost(t, "5s", tt.argv...).CheckPassword()
		if tt.wantErr == "" {
			if err != nil {
				t.Errorf("%q: %v", tt.argv, err)
			}
			continue
		}
		if err == nil || err.Error() != tt.wantErr || !errors.Is(err, ErrConfig) {
			t.Errorf("%q:\n got %v\nwant %s", tt.argv, err, tt.wantErr)
		}
	}
}

// TestRedaction: no fmt verb, String or error shows the password.
func TestRedaction(t *testing.T) {
	dir := t.TempDir()
	ca := writeFile(t, filepath.Join(dir, "ca.pem"), string(testCAPEM(t)), 0o644)
	docs := []string{
		minimal + "username = \"u\"\npassword = \"" + secret + "\"\nca_file = \"" + ca + "\"\n",
		minimal + "[[fallback]]\nhost = \"b.example\"\nusername = \"u\"\npassword = \"" + secret + "\"\n",
		minimal + "username = \"u\"\npassword_command = [\"/bin/echo\", \"" + secret + "\"]\n",
		minimal + "username = \"u\"\npassword_file = \"/etc/" + secret + "\"\n",
	}
	for _, doc := range docs {
		cfg := mustParse(t, testEnv, doc)
		sh := cfg.Smarthosts[len(cfg.Smarthosts)-1]
		if !sh.HasPassword() {
			t.Fatalf("no password source: %s", doc)
		}
		outs := []string{
			fmt.Sprintf("%v %+v %#v", cfg, sh, sh),
			fmt.Sprintf("%v %+v %#v", *cfg, &sh, cfg.Smarthosts),
			fmt.Sprintf("%s %q %x %X %d", sh, sh, sh, sh, sh),
			fmt.Sprint(cfg.Smarthosts, sh), sh.String(),
		}
		for _, out := range outs {
			if strings.Contains(out, secret) || strings.Contains(out, fmt.Sprintf("%x", secret)) {
				t.Errorf("formatting shows the password source:\n%s", out)
			}
		}
		if !strings.Contains(fmt.Sprintf("%+v", sh), "Password:<redacted>") {
			t.Errorf("%%+v does not say the password is redacted: %+v", sh)
		}
	}
	// Password file errors name the file but never the content.
	p := writeFile(t, filepath.Join(dir, "open"), secret+"\n", 0o644)
	cfg := mustParse(t, testEnv, minimal+"username = \"u\"\npassword_file = \""+p+"\"\n")
	if _, err := cfg.Smarthosts[0].Password(context.Background()); err == nil || strings.Contains(err.Error(), secret) {
		t.Errorf("err = %v", err)
	}
}

type fakeResolver struct {
	cname string
	addrs []string
	ptr   map[string][]string
}

func (f fakeResolver) LookupCNAME(_ context.Context, h string) (string, error) {
	if f.cname == "" {
		return "", errors.New("no cname")
	}
	return f.cname, nil
}

func (f fakeResolver) LookupHost(_ context.Context, h string) ([]string, error) {
	if f.addrs == nil {
		return nil, errors.New("no such host")
	}
	return f.addrs, nil
}

func (f fakeResolver) LookupAddr(_ context.Context, a string) ([]string, error) {
	if n, ok := f.ptr[a]; ok {
		return n, nil
	}
	return nil, errors.New("no ptr")
}

func TestResolveFQDN(t *testing.T) {
	tests := []struct {
		name string
		r    fakeResolver
		want string
	}{
		{"cname", fakeResolver{cname: "web1.example.com."}, "web1.example.com"},
		{"cname short", fakeResolver{cname: "web1.", addrs: []string{"192.0.2.1"}, ptr: map[string][]string{"192.0.2.1": {"web1.example.org."}}}, "web1.example.org"},
		{"skip localhost", fakeResolver{addrs: []string{"127.0.1.1", "192.0.2.1"}, ptr: map[string][]string{
			"127.0.1.1": {"localhost.localdomain.", "web1"}, "192.0.2.1": {"web1.example.net."}}}, "web1.example.net"},
		{"nothing", fakeResolver{addrs: []string{"192.0.2.1"}}, ""},
		{"no host", fakeResolver{}, ""},
	}
	for _, tt := range tests {
		if got := resolveFQDN(context.Background(), tt.r, "web1"); got != tt.want {
			t.Errorf("%s: got %q, want %q", tt.name, got, tt.want)
		}
	}
	// The real one returns something usable within its bound.
	start := time.Now()
	h := systemFQDN()
	if h == "" || time.Since(start) > 3*time.Second {
		t.Errorf("systemFQDN() = %q after %v", h, time.Since(start))
	}
}
