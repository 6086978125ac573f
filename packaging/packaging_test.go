package packaging

import (
	"bufio"
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"relaymail/config"
)

// These tests need neither root nor the package installed: they check the
// sources build-deb packs, so a broken unit, script or man page fails
// `go test ./...` before anyone builds a .deb.

// TestScriptsParse: every shell script parses (sh -n for the maintainer
// scripts, which run under dash; bash -n for the build and test scripts).
func TestScriptsParse(t *testing.T) {
	for _, tc := range []struct{ shell, file string }{
		{"sh", "debian/postinst"},
		{"sh", "debian/prerm"},
		{"sh", "debian/postrm"},
		{"bash", "build-deb"},
		{"bash", "test-deb"},
	} {
		t.Run(tc.file, func(t *testing.T) {
			st, err := os.Stat(tc.file)
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode().Perm()&0o111 == 0 {
				t.Errorf("%s is not executable (mode %v)", tc.file, st.Mode())
			}
			if _, err := exec.LookPath(tc.shell); err != nil {
				t.Skipf("%s is missing", tc.shell)
			}
			if out, err := exec.Command(tc.shell, "-n", tc.file).CombinedOutput(); err != nil {
				t.Errorf("%s -n %s: %v\n%s", tc.shell, tc.file, err, out)
			}
		})
	}
}

// unit is a systemd unit file: section -> key -> values in order.
type unit map[string]map[string][]string

func readUnit(t *testing.T, path string) unit {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	u := unit{}
	section := ""
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case line == "" || strings.HasPrefix(line, "#") || strings.HasPrefix(line, ";"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			section = line[1 : len(line)-1]
			u[section] = map[string][]string{}
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok || section == "" {
				t.Fatalf("%s:%d: not a key=value line in a section: %q", path, n, line)
			}
			u[section][k] = append(u[section][k], v)
		}
	}
	return u
}

// TestUnits pins the choices documented in the unit files: who the
// services run as, what they run, and the sandbox that must not break the
// spool or the password.
func TestUnits(t *testing.T) {
	common := map[string]string{
		"Type":                    "simple",
		"User":                    "relaymail",
		"Group":                   "relaymail",
		"UMask":                   "0007",
		"NoNewPrivileges":         "yes",
		"ProtectSystem":           "strict",
		"ReadWritePaths":          "/var/spool/relaymail",
		"ProtectHome":             "yes",
		"PrivateTmp":              "yes",
		"RestrictAddressFamilies": "AF_UNIX AF_INET AF_INET6",
		"MemoryDenyWriteExecute":  "yes",
		"SystemCallFilter":        "@system-service",
	}
	for _, tc := range []struct {
		file, exec, caps string
	}{
		{"systemd/relaymail-queue.service", "/usr/sbin/relaymail -q15m", ""},
		{"systemd/relaymail-listen.service", "/usr/sbin/relaymail -bd", "CAP_NET_BIND_SERVICE"},
	} {
		t.Run(filepath.Base(tc.file), func(t *testing.T) {
			u := readUnit(t, tc.file)
			svc := u["Service"]
			want := map[string]string{
				"ExecStart":             tc.exec,
				"CapabilityBoundingSet": tc.caps,
				"AmbientCapabilities":   tc.caps,
			}
			for k, v := range common {
				want[k] = v
			}
			for k, v := range want {
				if got := svc[k]; len(got) != 1 || got[0] != v {
					t.Errorf("[Service] %s = %q, want exactly %q", k, got, v)
				}
			}
			if got := svc["DynamicUser"]; len(got) > 0 {
				t.Errorf("DynamicUser=%v: a dynamic user cannot be in the relaymail group", got)
			}
			if got := svc["RestrictSUIDSGID"]; len(got) > 0 {
				t.Errorf("RestrictSUIDSGID=%v would forbid the spool's setgid directories", got)
			}
			if got := u["Install"]["WantedBy"]; len(got) != 1 || got[0] != "multi-user.target" {
				t.Errorf("[Install] WantedBy = %q, want multi-user.target", got)
			}
			if got := u["Unit"]["Documentation"]; len(got) != 1 || got[0] != "man:relaymail(8)" {
				t.Errorf("[Unit] Documentation = %q, want man:relaymail(8)", got)
			}
		})
	}
}

// specFlags is every option of SPEC §2 (and the -bX modes it refuses)
// and relaymail's own (--requeue, --delete); the manual page must
// document each.
var specFlags = []string{
	"-bm", "-bs", "-bd", "-bp", "-bi", "-bv", "-q", "-q15m", "-t", "-i", "-oi", "-O IgnoreDots",
	"--requeue", "--delete", "--failed", "--oauth2-login",
	"-f", "-r", "-F", "-N", "-R", "-V", "-B", "-v", "-odq", "-odb", "-d", "-d0.1", "-C",
	"--check", "--dry-run", "--help", "--version",
	"-oem", "-oep", "-oee", "-oeq", "-oew", "-odi", "-om", "-o7", "-o8", "-oA", "-O", "-h", "-L",
	"-G", "-U", "-X", "-Am", "-Ac", "-c", "-m", "-n", "-s", "-x", "-e", "-p",
	"-bD", "-bt", "-bh", "-bH", "-bP", "-bl",
}

// TestManPage: relaymail.8 renders without warnings, names every flag of
// SPEC §2 and has the sections the package promises.
func TestManPage(t *testing.T) {
	src, err := os.ReadFile("relaymail.8")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("man"); err != nil {
		t.Skip("man is missing (apt-get install man-db)")
	}
	cmd := exec.Command("man", "--warnings", "-E", "UTF-8", "-l", "relaymail.8")
	cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8", "MANWIDTH=200", "MAN_KEEP_FORMATTING=")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil || stderr.Len() > 0 {
		t.Fatalf("man --warnings -l relaymail.8: %v\n%s", err, stderr.String())
	}
	// Rendered text, without overstriking.
	text := regexp.MustCompile(".\b").ReplaceAllString(stdout.String(), "")
	for _, section := range []string{"NAME", "SYNOPSIS", "DESCRIPTION", "OPTIONS", "CONFIGURATION",
		"EXIT STATUS", "FILES", "SECURITY", "SEE ALSO"} {
		if !regexp.MustCompile(`(?m)^` + section + `$`).MatchString(text) {
			t.Errorf("no %s section", section)
		}
	}
	for _, flag := range specFlags {
		// A flag is a word of its own: not a prefix of a longer one.
		re := regexp.MustCompile(`(^|[\s,(\[|])` + regexp.QuoteMeta(flag) + `($|[\s,.)\[\]|'A-Z])`)
		if !re.MatchString(text) {
			t.Errorf("relaymail.8 does not document %s", flag)
		}
	}
	for _, status := range []string{"0", "64", "65", "67", "69", "75", "76", "77", "78"} {
		if !regexp.MustCompile(`(?m)^\s+` + status + `\s+\S`).MatchString(text) {
			t.Errorf("EXIT STATUS has no row for %s", status)
		}
	}
	if bytes.Contains(src, []byte("@VERSION@")) == false || bytes.Contains(src, []byte("@DATE@")) == false {
		t.Errorf("relaymail.8 lost the @VERSION@/@DATE@ placeholders build-deb fills in")
	}
}

// TestContainerRecipes pins what the Dockerfiles promise: the relay runs
// -bd -q1m as PID 1 (exec form, no shell in between), and the PHP image
// installs the binary setgid as /usr/sbin/sendmail with sendmail_path set.
func TestContainerRecipes(t *testing.T) {
	relay, err := os.ReadFile("container/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	php, err := os.ReadFile("container/php-example/Dockerfile")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, file, want string
	}{
		{"relay", string(relay), "FROM golang:1.26"},
		{"relay", string(relay), `ENTRYPOINT ["/usr/sbin/relaymail"]`},
		{"relay", string(relay), `CMD ["-bd", "-q1m"]`},
		{"relay", string(relay), "CGO_ENABLED=0"},
		{"relay", string(relay), "VOLUME /var/spool/relaymail"},
		{"php", string(php), "FROM php:8-apache"},
		{"php", string(php), "chmod 2755 /usr/sbin/relaymail"},
		{"php", string(php), "ln -sf relaymail /usr/sbin/sendmail"},
		{"php", string(php), `sendmail_path = "/usr/sbin/sendmail -t -i"`},
	} {
		if !strings.Contains(tc.file, tc.want) {
			t.Errorf("%s Dockerfile lacks %q", tc.name, tc.want)
		}
	}
}

// TestExamplePath: the example the missing-config error names is one
// build-deb installs: conf/NAME into /usr/share/doc/relaymail/examples/.
func TestExamplePath(t *testing.T) {
	dir, name := filepath.Split(config.ExamplePath)
	if dir != "/usr/share/doc/relaymail/examples/" {
		t.Errorf("config.ExamplePath %s is not under the package's examples/", config.ExamplePath)
	}
	if _, err := os.Stat(filepath.Join("..", "conf", name)); err != nil {
		t.Errorf("config.ExamplePath names %s, which conf/ lacks: %v", name, err)
	}
	script, err := os.ReadFile("build-deb")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range []string{`doc=$pkg/usr/share/doc/relaymail`, `for f in "$root"/conf/*.toml; do install -m 0644 "$f" "$doc/examples/"; done`} {
		if !bytes.Contains(script, []byte(line)) {
			t.Errorf("build-deb no longer has %s", line)
		}
	}
}
