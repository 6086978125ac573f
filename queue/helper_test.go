package queue

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"relaymail/message"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// helperEnv selects what TestHelperProcess does in a child process.
const helperEnv = "RELAYMAIL_QUEUE_HELPER"

// testHeader is a header block that names a digest of the body, so that
// a test can check that a listed message is whole.
func testHeader(id int, body []byte) []byte {
	sum := sha256.Sum256(body)
	return fmt.Appendf(nil, "From: a@example.com\nTo: b@example.com\nSubject: test %d\nX-Body-Sum: %s\n\n", id, hex.EncodeToString(sum[:]))
}

func testBody(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = 'a' + byte(r.IntN(26))
		if r.IntN(60) == 0 {
			b[i] = '\n'
		}
	}
	return b
}

func testEnvelope(header []byte) *Envelope {
	return &Envelope{
		Envelope: message.Envelope{From: "a@example.com", To: []string{"b@example.com", "c@example.com"}},
		Header:   header,
	}
}

func openTest(t *testing.T) *Queue {
	t.Helper()
	q, err := Open(t.TempDir() + "/q")
	if err != nil {
		t.Fatal(err)
	}
	return q
}

// enqueue queues a message with a body of n random bytes and returns it.
func enqueue(t *testing.T, q *Queue, n int) *Envelope {
	t.Helper()
	r := rand.New(rand.NewPCG(uint64(n), 1))
	body := testBody(r, n)
	env := testEnvelope(testHeader(n, body))
	if err := q.Enqueue(env, bytes.NewReader(body)); err != nil {
		t.Fatal(err)
	}
	return env
}

// commitPlain queues body with env the way a spilled body is queued
// (NewBody, Commit): a plain env/ID and its own body/ID, as every
// message was before combined files.
func commitPlain(t *testing.T, q *Queue, env *Envelope, body []byte) {
	t.Helper()
	b, err := q.NewBody()
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if _, err := b.Write(body); err != nil {
		t.Fatal(err)
	}
	if err := q.Commit(env, b); err != nil {
		t.Fatal(err)
	}
}

// checkWhole fails unless the message is complete: the header parses and
// names the digest of the body, which is BodySize bytes long.
func checkWhole(t *testing.T, q *Queue, e *Envelope) {
	t.Helper()
	body, err := os.ReadFile(q.path(dirBody, e.ID))
	if err == nil && int64(len(body)) >= e.BodyOffset {
		body = body[e.BodyOffset:]
	}
	if err != nil {
		t.Errorf("%s: %v", e.ID, err)
		return
	}
	if int64(len(body)) != e.BodySize {
		t.Errorf("%s: body is %d bytes, envelope says %d", e.ID, len(body), e.BodySize)
	}
	sum := sha256.Sum256(body)
	if !bytes.Contains(e.Header, []byte("X-Body-Sum: "+hex.EncodeToString(sum[:])+"\n")) {
		t.Errorf("%s: body does not match its header's digest; header:\n%s", e.ID, e.Header)
	}
	if !bytes.HasSuffix(e.Header, []byte("\n\n")) {
		t.Errorf("%s: header block is cut: %q", e.ID, e.Header)
	}
}

// helper starts this test binary as a child running TestHelperProcess in
// mode with args.
func helper(t *testing.T, mode string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^TestHelperProcess$", "--"}, args...)...)
	cmd.Env = append(os.Environ(), helperEnv+"="+mode)
	cmd.Stderr = os.Stderr
	return cmd
}

// TestHelperProcess is not a test: it is the child process of the tests
// that need several processes (flock is per open file description, and
// SIGKILL must hit a process, not a goroutine).
func TestHelperProcess(t *testing.T) {
	mode := os.Getenv(helperEnv)
	if mode == "" {
		t.Skip("only a child process of the queue tests")
	}
	args := os.Args
	for i, a := range args {
		if a == "--" {
			args = args[i+1:]
			break
		}
	}
	q, err := Open(args[0])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	q.named = os.Getenv("RELAYMAIL_QUEUE_NAMED") == "1"
	out := bufio.NewWriter(os.Stdout)
	switch mode {
	case "commit": // dir n seed: commit n messages, print their ids
		n, _ := strconv.Atoi(args[1])
		seed, _ := strconv.Atoi(args[2])
		r := rand.New(rand.NewPCG(uint64(seed), 2))
		for i := range n {
			body := testBody(r, r.IntN(4096))
			env := testEnvelope(testHeader(i, body))
			if err := q.Enqueue(env, bytes.NewReader(body)); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			fmt.Fprintln(out, env.ID)
		}
	case "loop": // dir seed: say "ready", then commit until killed, printing each id once committed
		seed, _ := strconv.Atoi(args[1])
		r := rand.New(rand.NewPCG(uint64(seed), 3))
		fmt.Println("ready")
		for i := 0; ; i++ {
			body := testBody(r, r.IntN(200<<10))
			env := testEnvelope(testHeader(i, body))
			b, err := q.NewBody()
			if err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			// Several writes, so that a kill can land between them.
			for len(body) > 0 {
				k := min(len(body), 1+r.IntN(64<<10))
				b.Write(body[:k])
				body = body[k:]
			}
			if err := q.Commit(env, b); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			fmt.Println(env.ID)
			b.Close()
		}
	case "lock": // dir id: lock id, say so, wait to be killed
		it, err := q.Lock(args[1])
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		fmt.Println("locked", it.Env.ID)
		time.Sleep(time.Minute)
		os.Exit(3)
	default:
		fmt.Fprintln(os.Stderr, "unknown helper mode", mode)
		os.Exit(2)
	}
	out.Flush()
	os.Exit(0)
}

// readLine reads one line from r within d.
func readLine(t *testing.T, r *bufio.Reader, d time.Duration) string {
	t.Helper()
	ch := make(chan string, 1)
	go func() {
		s, _ := r.ReadString('\n')
		ch <- s
	}()
	select {
	case s := <-ch:
		return strings.TrimSpace(s)
	case <-time.After(d):
		t.Fatal("timed out waiting for the child process")
		return ""
	}
}

// List returns the queued messages (not the failed ones), oldest first,
// as Walk reads them, all in memory: the code makes its passes with
// Walk, the tests look at the queue with List.
func (q *Queue) List() ([]*Envelope, error) { return collect(q.Walk()) }

// ListFailed returns the messages kept in failed/, like List.
func (q *Queue) ListFailed() ([]*Envelope, error) { return collect(q.WalkFailed()) }

func collect(w *Walk) ([]*Envelope, error) {
	envs := slices.Collect(w.All())
	return envs, w.Err()
}
