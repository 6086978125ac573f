package peers

import (
	"fmt"
	"net/smtp"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"relaymail/internal/smtptest"
)

// TestContainer builds packaging/container/Containerfile with Debian's
// podman (FROM scratch: nothing can be pulled), runs it with -bd as PID 1
// on the host's network, sends through it from the host, stops it with
// SIGTERM and checks the exit status is 0, every message arrived once and
// the queue is empty. It logs the image size.
//
// podman needs two things on these machines (shared/CONTAINERS.md): a
// containers.conf without default ulimits (above the machine's hard limit)
// and the runc runtime (crun refuses hybrid cgroups). Both are set for
// this test's podman calls only.
func TestContainer(t *testing.T) {
	peersDir(t)
	podman, err := exec.LookPath("podman")
	if err != nil {
		t.Skip("podman is not installed (peers/install installs podman and runc)")
	}
	if _, err := exec.LookPath("runc"); err != nil {
		t.Skip("runc is not installed: podman's crun cannot run with hybrid cgroups here")
	}
	dir := worldDir(t)
	conf := filepath.Join(dir, "containers.conf")
	writeFile(t, conf, []byte("[containers]\ndefault_ulimits = []\n"), 0o644)
	run := func(args ...string) (string, error) {
		cmd := exec.Command(podman, append([]string{"--runtime", "runc"}, args...)...)
		cmd.Env = append(os.Environ(), "CONTAINERS_CONF="+conf)
		out, err := cmd.CombinedOutput()
		return strings.TrimSpace(string(out)), err
	}

	// The build context: the recipe, its rootfs and a static binary.
	ctx := filepath.Join(dir, "context")
	cp := exec.Command("cp", "-a", "../packaging/container/.", ctx)
	if out, err := cp.CombinedOutput(); err != nil {
		t.Fatalf("copying the recipe: %v: %s", err, out)
	}
	build := exec.Command("go", "build", "-trimpath", "-ldflags", "-s -w", "-o", filepath.Join(ctx, "relaymail"), "..")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("static build: %v: %s", err, out)
	}
	image := fmt.Sprintf("localhost/relaymail-peers-test:%d", time.Now().UnixNano())
	if out, err := run("build", "-q", "-f", filepath.Join(ctx, "Containerfile"), "-t", image, ctx); err != nil {
		t.Fatalf("podman build: %v\n%s", err, out)
	}
	t.Cleanup(func() { run("rmi", "-f", image) })
	size, _ := run("image", "inspect", "--format", "{{.Size}}", image)
	t.Logf("image %s: %s octets", image, size)
	fmt.Printf("container: image size %s octets\n", size)

	// A smarthost on the host's loopback; the container shares the host's
	// network, so its listener is on the host's loopback too.
	next := smtptest.Start(t, smtptest.Options{})
	port := freePort(t)
	spool := filepath.Join(dir, "spool")
	os.Mkdir(spool, 0o700)
	if err := os.Chown(spool, 65532, 65532); err != nil {
		t.Fatal(err)
	}
	config := filepath.Join(dir, "relaymail.toml")
	writeFile(t, config, []byte(fmt.Sprintf(`hostname = "container.test"
domain = "example.com"
log = "stderr"
listen = ["127.0.0.1:%d"]

[smarthost]
host = "127.0.0.1"
port = %d
tls = "none"
timeout = "30s"
`, port, next.Port())), 0o644)
	name := fmt.Sprintf("relaymail-peers-test-%d", time.Now().UnixNano())
	out, err := run("run", "-d", "--name", name, "--network", "host",
		"-v", config+":/etc/relaymail.toml:ro", "-v", spool+":/var/spool/relaymail", image, "-bd")
	if err != nil {
		if strings.Contains(out, "Operation not permitted") || strings.Contains(out, "cgroup") {
			t.Skipf("podman cannot run a container here: %s", out)
		}
		t.Fatalf("podman run: %v\n%s", err, out)
	}
	t.Cleanup(func() { run("rm", "-f", name) })
	deadline := time.Now().Add(60 * time.Second)
	for {
		c, err := smtp.Dial(fmt.Sprintf("127.0.0.1:%d", port))
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			logs, _ := run("logs", name)
			t.Fatalf("the container's listener never answered: %v\n%s", err, logs)
		}
		time.Sleep(200 * time.Millisecond)
	}

	const n = 5
	for i := range n {
		msg := fmt.Sprintf("From: app@example.com\r\nTo: ops@example.org\r\nSubject: container %d\r\n\r\nbody %d\r\n", i, i)
		if err := smtp.SendMail(fmt.Sprintf("127.0.0.1:%d", port), nil, "app@example.com", []string{"ops@example.org"}, []byte(msg)); err != nil {
			t.Fatalf("sending %d through the container: %v", i, err)
		}
	}
	got := next.WaitMessages(t, n, 60*time.Second)

	if out, err := run("stop", "-t", "30", name); err != nil {
		t.Fatalf("podman stop: %v\n%s", err, out)
	}
	code, _ := run("inspect", "--format", "{{.State.ExitCode}}", name)
	if code != "0" {
		logs, _ := run("logs", name)
		t.Errorf("after SIGTERM the container exited %s, want 0\n%s", code, logs)
	}
	seen := map[string]int{}
	for _, m := range next.Messages() {
		for _, line := range strings.Split(string(m.Data), "\r\n") {
			if strings.HasPrefix(line, "Subject: ") {
				seen[line]++
			}
		}
	}
	for i := range n {
		if c := seen[fmt.Sprintf("Subject: container %d", i)]; c != 1 {
			t.Errorf("message %d arrived %d times", i, c)
		}
	}
	if len(got) < n {
		t.Errorf("%d of %d messages arrived", len(got), n)
	}
	// Nothing left waiting: no envelope in the spool the container used.
	filepath.WalkDir(spool, func(path string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && !strings.HasPrefix(d.Name(), ".") {
			t.Errorf("left in the queue after the stop: %s", path)
		}
		return nil
	})
}
