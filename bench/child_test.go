//go:build linux

package bench

// Running a client and measuring its own peak RSS.
//
// The obvious figure, the Maxrss of the child's rusage from wait4, is
// wrong for this benchmark: Linux folds the high-water mark of the memory
// image a process replaces at execve into that process's maxrss, and Go
// starts children with vfork semantics, so that image is the benchmark's
// own. A 10 MiB msmtp started from a 300 MiB test process "peaks" at
// 300 MiB. So the child runs under ptrace with PTRACE_O_TRACEEXIT: it
// stops just before it exits, while its memory is still mapped, and
// VmHWM in /proc/PID/status is then its own high-water mark.
// TestRunChildPeakRSS checks exactly that. Where ptrace is refused, the
// runner falls back to rusage and marks the figure as inflated. Only the
// process itself is measured (after its last exec), not any children it
// forks; neither client forks to send a message.

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// ptraceOExitKill kills the tracee if the tracer exits (PTRACE_O_EXITKILL,
// not in package syscall), so a crashed benchmark leaves no child stopped.
const ptraceOExitKill = 0x100000

// run is one finished child process.
type run struct {
	wall   time.Duration
	maxRSS int64 // KiB
	exact  bool  // maxRSS is the child's own VmHWM, not rusage's
}

var (
	ptraceOnce sync.Once
	ptraceErr  error // non-nil when tracing children does not work here
)

// runChild runs argv with stdin read straight from the file (no pipe or
// copying goroutine in between) and returns its wall time, from start to
// exit, and its peak RSS. A non-zero exit is an error carrying the first
// lines of the child's output.
func runChild(argv []string, stdin string, timeout time.Duration) (run, error) {
	in, err := os.Open(stdin)
	if err != nil {
		return run{}, err
	}
	defer in.Close()
	out, err := os.CreateTemp("", "bench-child-*.out")
	if err != nil {
		return run{}, err
	}
	defer os.Remove(out.Name())
	defer out.Close()

	r, status, err := startAndWait(argv, in, out, timeout)
	if err != nil {
		return run{}, fmt.Errorf("%s: %w", filepath.Base(argv[0]), err)
	}
	if !status.Exited() || status.ExitStatus() != 0 {
		text, _ := os.ReadFile(out.Name())
		return run{}, fmt.Errorf("%s: %s: %s", filepath.Base(argv[0]), describe(status), firstLines(string(text), 3))
	}
	return r, nil
}

func describe(ws syscall.WaitStatus) string {
	switch {
	case ws.Exited():
		return "exit status " + strconv.Itoa(ws.ExitStatus())
	case ws.Signaled():
		return "killed by " + ws.Signal().String()
	}
	return fmt.Sprintf("wait status %#x", uint32(ws))
}

func firstLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, " | ")
}

// startAndWait traces the child when it can, else runs it plainly.
func startAndWait(argv []string, in, out *os.File, timeout time.Duration) (run, syscall.WaitStatus, error) {
	ptraceOnce.Do(func() { ptraceErr = probePtrace() })
	if ptraceErr == nil {
		return runTraced(argv, in, out, timeout)
	}
	return runPlain(argv, in, out, timeout)
}

// probePtrace checks once that a traced child can be started here.
func probePtrace() error {
	in, err := os.Open(os.DevNull)
	if err != nil {
		return err
	}
	defer in.Close()
	r, ws, err := runTraced([]string{"/bin/true"}, in, in, 10*time.Second)
	if err != nil {
		return err
	}
	if !ws.Exited() || ws.ExitStatus() != 0 || !r.exact {
		return fmt.Errorf("bench: traced /bin/true: %s", describe(ws))
	}
	return nil
}

func childAttr(in, out *os.File, trace bool) *os.ProcAttr {
	return &os.ProcAttr{
		Files: []*os.File{in, out, out},
		// HOME points at the work dir so neither client picks up the
		// invoking user's own configuration.
		Env: append(os.Environ(), "HOME="+childHome()),
		Sys: &syscall.SysProcAttr{Ptrace: trace},
	}
}

func childHome() string {
	if env.dir != "" {
		return env.dir
	}
	return os.TempDir()
}

// runTraced runs the child under ptrace and reads its VmHWM at the exit
// stop. Every ptrace call and wait happens on one locked OS thread, as
// ptrace requires.
func runTraced(argv []string, in, out *os.File, timeout time.Duration) (run, syscall.WaitStatus, error) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()

	start := time.Now()
	p, err := os.StartProcess(argv[0], argv, childAttr(in, out, true))
	if err != nil {
		return run{}, 0, err
	}
	defer p.Release()
	pid := p.Pid
	killer := time.AfterFunc(timeout, func() { syscall.Kill(pid, syscall.SIGKILL) })
	defer killer.Stop()

	hwm := int64(-1)
	execStop := true
	for {
		var ws syscall.WaitStatus
		var ru syscall.Rusage
		_, err := syscall.Wait4(pid, &ws, syscall.WALL, &ru)
		if errors.Is(err, syscall.EINTR) {
			continue
		}
		if err != nil {
			syscall.Kill(pid, syscall.SIGKILL)
			return run{}, 0, fmt.Errorf("wait4: %w", err)
		}
		if ws.Exited() || ws.Signaled() {
			r := run{wall: time.Since(start), maxRSS: hwm, exact: hwm >= 0}
			if hwm < 0 {
				r.maxRSS = ru.Maxrss
			}
			return r, ws, nil
		}
		if !ws.Stopped() {
			continue
		}
		inject := 0
		switch sig := ws.StopSignal(); {
		case sig == syscall.SIGTRAP && execStop:
			// The stop after execve: ask for the exit stop from now on,
			// and for later execs (a wrapper script exec-ing the real
			// client) to stop as events rather than as SIGTRAPs.
			execStop = false
			opts := syscall.PTRACE_O_TRACEEXIT | syscall.PTRACE_O_TRACEEXEC | ptraceOExitKill
			if err := syscall.PtraceSetOptions(pid, opts); err != nil {
				syscall.Kill(pid, syscall.SIGKILL)
				return run{}, 0, fmt.Errorf("ptrace set options: %w", err)
			}
		case sig == syscall.SIGTRAP && ws.TrapCause() == syscall.PTRACE_EVENT_EXIT:
			if v, err := readVmHWM(pid); err == nil {
				hwm = v
			}
		case sig == syscall.SIGTRAP && ws.TrapCause() == syscall.PTRACE_EVENT_EXEC:
			// A later exec; the high-water mark starts again with it.
		default:
			// A real signal (Go's SIGURG preemption, SIGPIPE, ...):
			// deliver it as if nobody were watching.
			inject = int(sig)
		}
		if err := syscall.PtraceCont(pid, inject); err != nil && !errors.Is(err, syscall.ESRCH) {
			syscall.Kill(pid, syscall.SIGKILL)
			return run{}, 0, fmt.Errorf("ptrace cont: %w", err)
		}
	}
}

// runPlain is the fallback without ptrace; its maxRSS is rusage's and
// includes the benchmark process's own size (see the file comment).
func runPlain(argv []string, in, out *os.File, timeout time.Duration) (run, syscall.WaitStatus, error) {
	start := time.Now()
	p, err := os.StartProcess(argv[0], argv, childAttr(in, out, false))
	if err != nil {
		return run{}, 0, err
	}
	killer := time.AfterFunc(timeout, func() { p.Kill() })
	defer killer.Stop()
	st, err := p.Wait()
	if err != nil {
		return run{}, 0, err
	}
	r := run{wall: time.Since(start)}
	if ru, ok := st.SysUsage().(*syscall.Rusage); ok {
		r.maxRSS = ru.Maxrss
	}
	return r, st.Sys().(syscall.WaitStatus), nil
}

// readVmHWM returns the peak resident set of pid in KiB.
func readVmHWM(pid int) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			return strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
		}
	}
	if err := sc.Err(); err != nil {
		return 0, err
	}
	return 0, errors.New("bench: no VmHWM in /proc status")
}

// envChildAlloc makes the test binary, started by TestRunChildPeakRSS,
// touch that many MiB and exit instead of running tests.
const envChildAlloc = "BENCH_CHILD_ALLOC_MIB"

// childAllocMain is the helper-process body; TestMain calls it first.
func childAllocMain() {
	v := os.Getenv(envChildAlloc)
	if v == "" {
		return
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		os.Exit(3)
	}
	buf := make([]byte, n<<20)
	for i := 0; i < len(buf); i += 4096 {
		buf[i] = 1
	}
	runtime.KeepAlive(buf)
	os.Exit(0)
}

// allocSink keeps the parent's ballast reachable while the child runs.
var allocSink []byte

func TestRunChildPeakRSS(t *testing.T) {
	ptraceOnce.Do(func() { ptraceErr = probePtrace() })
	if ptraceErr != nil {
		t.Skipf("ptrace unavailable here (%v); the benchmark falls back to rusage and says so", ptraceErr)
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// The parent holds 160 MiB while children run: with rusage's
	// figure every child would "peak" above it.
	allocSink = make([]byte, 160<<20)
	for i := 0; i < len(allocSink); i += 4096 {
		allocSink[i] = 1
	}
	defer func() { allocSink = nil }()

	tests := []struct {
		allocMiB       int
		minMiB, maxMiB int64
	}{
		{allocMiB: 0, minMiB: 0, maxMiB: 100},
		{allocMiB: 48, minMiB: 48, maxMiB: 140},
	}
	for _, tt := range tests {
		t.Run(strconv.Itoa(tt.allocMiB)+"MiB", func(t *testing.T) {
			os.Setenv(envChildAlloc, strconv.Itoa(tt.allocMiB))
			defer os.Unsetenv(envChildAlloc)
			r, err := runChild([]string{self, "-test.run=^$"}, os.DevNull, 30*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			if !r.exact {
				t.Fatal("traced run did not read VmHWM")
			}
			got := r.maxRSS >> 10
			t.Logf("child touching %d MiB: VmHWM %d KiB", tt.allocMiB, r.maxRSS)
			if got < tt.minMiB || got >= tt.maxMiB {
				t.Fatalf("child touching %d MiB peaked at %d MiB, want [%d, %d) (parent holds 160 MiB)",
					tt.allocMiB, got, tt.minMiB, tt.maxMiB)
			}
		})
	}
}

func TestRunChildReportsFailure(t *testing.T) {
	tests := []struct {
		argv []string
		want string
	}{
		{[]string{"/bin/sh", "-c", "echo boom >&2; exit 3"}, "exit status 3: boom"},
		{[]string{"/bin/sh", "-c", "kill -9 $$"}, "killed by killed"},
		{[]string{"/nonexistent/client"}, "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.argv[len(tt.argv)-1], func(t *testing.T) {
			_, err := runChild(tt.argv, os.DevNull, 10*time.Second)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("runChild(%q) error = %v, want it to contain %q", tt.argv, err, tt.want)
			}
		})
	}
}
