package queue

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// TestConcurrentCommit: 50 goroutines and 4 processes commit at once;
// every id is unique and every message is queued whole.
func TestConcurrentCommit(t *testing.T) {
	q := openTest(t)
	const goroutines, perGoroutine = 50, 4
	const procs, perProc = 4, 25

	var mu sync.Mutex
	want := map[string]bool{}
	add := func(id string) {
		mu.Lock()
		defer mu.Unlock()
		if want[id] {
			t.Errorf("id %s given twice", id)
		}
		want[id] = true
	}

	var cmds []*exec.Cmd
	var outs []*bytes.Buffer
	for i := range procs {
		cmd := helper(t, "commit", q.Dir(), strconv.Itoa(perProc), strconv.Itoa(i))
		out := new(bytes.Buffer)
		cmd.Stdout = out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds, outs = append(cmds, cmd), append(outs, out)
	}
	var wg sync.WaitGroup
	for g := range goroutines {
		wg.Go(func() {
			r := rand.New(rand.NewPCG(uint64(g), 9))
			for i := range perGoroutine {
				body := testBody(r, r.IntN(8192))
				env := testEnvelope(testHeader(i, body))
				if err := q.Enqueue(env, bytes.NewReader(body)); err != nil {
					t.Error(err)
					return
				}
				add(env.ID)
			}
		})
	}
	wg.Wait()
	for i, cmd := range cmds {
		if err := waitTimeout(cmd, 60*time.Second); err != nil {
			t.Fatalf("child %d: %v", i, err)
		}
		for _, id := range strings.Fields(outs[i].String()) {
			add(id)
		}
	}
	if len(want) != goroutines*perGoroutine+procs*perProc {
		t.Fatalf("%d ids, want %d", len(want), goroutines*perGoroutine+procs*perProc)
	}
	list, err := q.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != len(want) {
		t.Errorf("List has %d messages, want %d", len(list), len(want))
	}
	for _, e := range list {
		if !want[e.ID] {
			t.Errorf("listed %s, which nobody committed", e.ID)
		}
		checkWhole(t, q, e)
	}
	assertEmpty(t, q, dirTmp)
}

// waitLines appends lines from ch to got until it holds n or ch closes;
// false when d passes or ch closes first.
func waitLines(ch <-chan string, n int, d time.Duration, got *[]string) bool {
	timeout := time.After(d)
	for len(*got) < n {
		select {
		case line, ok := <-ch:
			if !ok {
				return false
			}
			*got = append(*got, line)
		case <-timeout:
			return false
		}
	}
	return true
}

func waitTimeout(cmd *exec.Cmd, d time.Duration) error {
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		cmd.Process.Kill()
		<-done
		return errors.New("timed out")
	}
}

// TestLockAcrossProcesses: a message locked by another process is
// refused; once that process is killed with SIGKILL the lock is free.
func TestLockAcrossProcesses(t *testing.T) {
	q := openTest(t)
	env := enqueue(t, q, 100)

	cmd := helper(t, "lock", q.Dir(), env.ID)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	if line := readLine(t, bufio.NewReader(stdout), 30*time.Second); line != "locked "+env.ID {
		t.Fatalf("child said %q", line)
	}
	// Several goroutines try at once: none gets it.
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			if it, err := q.Lock(env.ID); !errors.Is(err, ErrLocked) {
				t.Errorf("Lock while a child holds it: %v, want ErrLocked", err)
				if err == nil {
					it.Unlock()
				}
			}
		})
	}
	wg.Wait()
	if err := q.Delete(env.ID); !errors.Is(err, ErrLocked) {
		t.Errorf("Delete while a child holds it: %v, want ErrLocked", err)
	}
	cmd.Process.Signal(syscall.SIGKILL)
	cmd.Wait()
	it, err := q.Lock(env.ID)
	if err != nil {
		t.Fatalf("Lock after the holder died: %v", err)
	}
	checkWhole(t, q, it.Env)
	it.Unlock()
}

// TestLockRace: goroutines race for the same messages, each with its own
// open file description; exactly one wins each message.
func TestLockRace(t *testing.T) {
	q := openTest(t)
	var envs []*Envelope
	for i := range 20 {
		envs = append(envs, enqueue(t, q, i+1))
	}
	var mu sync.Mutex
	delivered := map[string]int{}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for _, e := range envs {
				it, err := q.Lock(e.ID)
				if errors.Is(err, ErrLocked) || errors.Is(err, ErrNotFound) {
					continue
				}
				if err != nil {
					t.Error(err)
					continue
				}
				mu.Lock()
				delivered[e.ID]++
				mu.Unlock()
				if err := it.Remove(); err != nil {
					t.Error(err)
				}
				it.Unlock()
			}
		})
	}
	wg.Wait()
	for _, e := range envs {
		if delivered[e.ID] != 1 {
			t.Errorf("%s delivered %d times", e.ID, delivered[e.ID])
		}
	}
	assertEmpty(t, q, dirEnv, dirBody, dirTmp)
}

// TestCrashSafety kills a process that enqueues in a loop with SIGKILL at
// random points: every message it reported committed is queued, every
// queued message is whole, and Cleanup removes what the crashes left.
//
// The kill points are counted from what the helper reports (ready, then
// each id it committed), not from when it was started: a race-built
// helper on a loaded machine may take far longer than a fixed window to
// start or to commit, and a kill that always lands before the first
// commit tests nothing.
func TestCrashSafety(t *testing.T) {
	if testing.Short() {
		t.Skip("kills 50 processes")
	}
	for _, named := range []bool{false, true} {
		t.Run(fmt.Sprintf("named=%v", named), func(t *testing.T) { crashSafety(t, named, 50) })
	}
}

func crashSafety(t *testing.T, named bool, maxKills int) {
	q := openTest(t)
	r := rand.New(rand.NewPCG(1, 2))
	committed := map[string]bool{}
	deadline := time.Now().Add(60 * time.Second)
	kills := 0
	for ; kills < maxKills && time.Now().Before(deadline); kills++ {
		cmd := helper(t, "loop", q.Dir(), strconv.Itoa(kills))
		if named {
			cmd.Env = append(cmd.Env, "RELAYMAIL_QUEUE_NAMED=1")
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		lines := make(chan string, 1024)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(stdout)
			for sc.Scan() {
				lines <- sc.Text()
			}
		}()
		// Kill after the helper has committed 0, 1 or 2 messages, then a
		// few more ms into whatever it does next: a kill can land before,
		// inside or after any step of a commit.
		after := r.IntN(3)
		var got []string
		if !waitLines(lines, 1+after, 60*time.Second, &got) {
			cmd.Process.Kill()
			cmd.Wait()
			t.Fatalf("kill %d: the helper reported %d of %d lines within 60s", kills, len(got), 1+after)
		}
		time.Sleep(time.Duration(r.IntN(20)) * time.Millisecond)
		cmd.Process.Signal(syscall.SIGKILL)
		for line := range lines {
			got = append(got, line)
		}
		cmd.Wait()
		for _, id := range got[1:] {
			committed[id] = true
		}
	}
	list, err := q.List()
	if err != nil {
		t.Fatal(err)
	}
	listed := map[string]bool{}
	for _, e := range list {
		listed[e.ID] = true
		checkWhole(t, q, e)
	}
	for id := range committed {
		if !listed[id] {
			t.Errorf("%s was committed but is not queued", id)
		}
	}
	before, _ := os.ReadDir(q.path(dirBody, ""))
	tmp, _ := os.ReadDir(q.path(dirTmp, ""))
	t.Logf("%d kills, %d messages committed and reported, %d queued, %d orphan bodies, %d files in tmp/",
		kills, len(committed), len(list), len(before)-len(list), len(tmp))
	if len(committed) == 0 {
		t.Error("no message was committed: the kills came too early to test anything")
	}
	// Cleanup, an hour on, leaves exactly the queued messages.
	if err := q.Cleanup(time.Now().Add(OrphanAge + time.Minute)); err != nil {
		t.Fatal(err)
	}
	assertEmpty(t, q, dirTmp)
	bodies, _ := os.ReadDir(q.path(dirBody, ""))
	if len(bodies) != len(list) {
		t.Errorf("%d bodies for %d queued messages after Cleanup", len(bodies), len(list))
	}
	for _, b := range bodies {
		if !listed[b.Name()] {
			t.Errorf("orphan body %s survived Cleanup", b.Name())
		}
	}
}

// TestFullFilesystem: on a full disk Commit fails, nothing is queued and
// nothing partial stays behind. It needs root to mount a small tmpfs;
// elsewhere the injected failures of TestCommitFailures cover the same
// paths.
func TestFullFilesystem(t *testing.T) {
	dir := t.TempDir()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs")
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", dir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs: %v: %s", err, out)
	}
	defer func() {
		if out, err := exec.Command("umount", dir).CombinedOutput(); err != nil {
			t.Errorf("umount: %v: %s", err, out)
		}
	}()
	q, err := Open(filepath.Join(dir, "q"))
	if err != nil {
		t.Fatal(err)
	}
	small := enqueue(t, q, 1000)

	t.Run("body", func(t *testing.T) {
		b, err := q.NewBody()
		if err != nil {
			t.Fatal(err)
		}
		chunk := bytes.Repeat([]byte("x"), 32<<10)
		var werr error
		for i := 0; i < 16 && werr == nil; i++ {
			_, werr = b.Write(chunk)
		}
		if !errors.Is(werr, syscall.ENOSPC) {
			t.Fatalf("Write on a full tmpfs = %v, want ENOSPC", werr)
		}
		env := testEnvelope([]byte("S: x\n\n"))
		if err := q.Commit(env, b); err == nil || !errors.Is(err, syscall.ENOSPC) {
			t.Errorf("Commit after ENOSPC = %v, want an ENOSPC error", err)
		}
		b.Close()
		checkOnly(t, q, small.ID)
	})

	t.Run("envelope", func(t *testing.T) {
		// Fill the disk with messages until a Commit fails, at whatever
		// step: the body may fit and its envelope not. The queue must
		// then hold exactly the messages committed, each whole.
		var failed error
		var committed []string
		for i := 0; i < 200 && failed == nil; i++ {
			b, err := q.NewBody()
			if err != nil {
				failed = err
				break
			}
			body := bytes.Repeat([]byte("y"), 3000+i*97%4096)
			if _, err := b.Write(body); err != nil {
				failed = err
			} else {
				pad := bytes.Repeat([]byte("X-Pad: 0123456789\n"), 100+i*7%300)
				env := testEnvelope(append(pad, testHeader(i, body)...))
				if failed = q.Commit(env, b); failed == nil {
					committed = append(committed, env.ID)
				}
			}
			b.Close()
		}
		if failed == nil {
			t.Fatal("the tmpfs never filled up")
		}
		t.Logf("%d committed, then: %v", len(committed), failed)
		list, err := q.List()
		if err != nil || len(list) != len(committed)+1 {
			t.Errorf("List = %d messages, %v; want %d", len(list), err, len(committed)+1)
		}
		for _, e := range list {
			checkWhole(t, q, e)
		}
		for _, id := range committed {
			if err := q.Delete(id); err != nil {
				t.Error(err)
			}
		}
		checkOnly(t, q, small.ID)
	})
}

// checkOnly fails unless the queue holds exactly the message id, whole,
// and no other file.
func checkOnly(t *testing.T, q *Queue, id string) {
	t.Helper()
	list, err := q.List()
	if err != nil || len(list) != 1 || list[0].ID != id {
		t.Errorf("List = %v, %v; want only %s", ids(list), err, id)
	}
	for _, e := range list {
		checkWhole(t, q, e)
	}
	assertEmpty(t, q, dirTmp)
	for _, sub := range []string{dirEnv, dirBody} {
		entries, _ := os.ReadDir(q.path(sub, ""))
		if len(entries) != 1 {
			t.Errorf("%s/ holds %d files, want 1", sub, len(entries))
		}
	}
}
