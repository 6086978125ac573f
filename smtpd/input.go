package smtpd

import (
	"errors"
	"io"
	"os"
	"sync"
	"time"
)

// Reasons a read of the client's input ends other than data or EOF.
var (
	errTimeout = errors.New("client timed out")
	errStopped = errors.New("server stopping")
)

// readMode says what the session is waiting for, which decides the timeout
// and whether a graceful stop interrupts the wait.
type readMode int

const (
	modeCommand readMode = iota // between commands: a graceful stop interrupts
	modeData                    // inside DATA: only a hard stop interrupts
)

// readDeadliner is what a net.Conn (and a pollable *os.File) offers to bound
// a blocking read.
type readDeadliner interface {
	SetReadDeadline(t time.Time) error
}

// input is the session's view of the client's byte stream. Every Read is
// bounded by the timeout of the current mode and ends early when the session
// is stopped. When the reader supports read deadlines they do the work;
// otherwise (a blocking stdin, an io.Pipe) a goroutine reads and Read waits
// for it with a timer. That goroutine stays blocked in the underlying Read
// after a timeout until the reader returns: for -bs that is process exit.
type input struct {
	r  io.Reader
	dl readDeadliner // nil: use pump

	mu       sync.Mutex
	mode     readMode
	timeout  time.Duration
	until    time.Time     // no read waits past it; zero: no bound besides timeout
	graceful bool          // a graceful stop was asked for (also set by a hard stop)
	hard     bool          // a hard stop was asked for
	soft     chan struct{} // closed with graceful
	hardCh   chan struct{} // closed with hard
	pump     *pump
}

func newInput(r io.Reader) *input {
	in := &input{r: r, soft: make(chan struct{}), hardCh: make(chan struct{})}
	if d, ok := r.(readDeadliner); ok && d.SetReadDeadline(time.Time{}) == nil {
		in.dl = d
	} else {
		in.pump = newPump(r)
	}
	return in
}

// setMode switches the timeout and stop semantics for the reads that follow.
func (in *input) setMode(m readMode, timeout time.Duration) {
	in.setModeUntil(m, timeout, time.Time{})
}

// setModeUntil is setMode with an overall bound: no read waits past until
// (the whole of DATA), whatever timeout allows each read.
func (in *input) setModeUntil(m readMode, timeout time.Duration, until time.Time) {
	in.mu.Lock()
	in.mode, in.timeout, in.until = m, timeout, until
	in.mu.Unlock()
}

// stoppedLocked reports whether a read in the current mode must not wait.
func (in *input) stoppedLocked() bool {
	return in.hard || in.graceful && in.mode == modeCommand
}

// stop interrupts waiting reads: hard ones always, graceful ones only
// between commands (a read in DATA continues until the message is in).
func (in *input) stop(hard bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	if hard && !in.hard {
		in.hard = true
		close(in.hardCh)
	}
	if !in.graceful {
		in.graceful = true
		close(in.soft)
	}
	if in.dl != nil && in.stoppedLocked() {
		in.dl.SetReadDeadline(time.Unix(1, 0)) // wake a blocked Read
	}
}

// stopRequested reports whether any stop was asked for.
func (in *input) stopRequested() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.graceful
}

// hardRequested reports whether a hard stop was asked for.
func (in *input) hardRequested() bool {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.hard
}

// Read reads from the client within the current timeout. It returns
// errTimeout when the client stayed silent, errStopped when the session was
// stopped, or the reader's own error.
func (in *input) Read(p []byte) (int, error) {
	in.mu.Lock()
	if in.stoppedLocked() {
		in.mu.Unlock()
		return 0, errStopped
	}
	timeout, mode := in.timeout, in.mode
	if !in.until.IsZero() {
		if left := time.Until(in.until); timeout <= 0 || left < timeout {
			timeout = max(left, time.Nanosecond)
		}
	}
	if in.dl != nil {
		var t time.Time
		if timeout > 0 {
			t = time.Now().Add(timeout)
		}
		in.dl.SetReadDeadline(t)
	}
	in.mu.Unlock()

	if in.dl == nil {
		stop := in.soft
		if mode == modeData {
			stop = in.hardCh
		}
		return in.pump.read(p, timeout, stop)
	}
	n, err := in.r.Read(p)
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		in.mu.Lock()
		if in.stoppedLocked() {
			err = errStopped
		} else {
			err = errTimeout
		}
		in.mu.Unlock()
	}
	return n, err
}

// close ends the pump goroutine once its current read (if any) returns.
func (in *input) close() {
	if in.pump != nil {
		in.pump.close()
	}
}

// pump reads r in its own goroutine so that a read from a reader without
// deadlines can still be abandoned on a timeout.
type pump struct {
	r    io.Reader
	req  chan struct{}
	res  chan pumpResult
	quit chan struct{}
	once sync.Once

	// Used by the reading side only.
	buf  []byte
	left []byte
	err  error
	busy bool // a read was requested and its result not received
}

type pumpResult struct {
	n   int
	err error
}

const pumpBufSize = 32 << 10

func newPump(r io.Reader) *pump {
	p := &pump{
		r:    r,
		req:  make(chan struct{}, 1),
		res:  make(chan pumpResult, 1),
		quit: make(chan struct{}),
		buf:  make([]byte, pumpBufSize),
	}
	go p.loop()
	return p
}

func (p *pump) loop() {
	for {
		select {
		case <-p.req:
			n, err := p.r.Read(p.buf)
			p.res <- pumpResult{n, err}
			if err != nil {
				return
			}
		case <-p.quit:
			return
		}
	}
}

func (p *pump) read(b []byte, timeout time.Duration, stop <-chan struct{}) (int, error) {
	if len(p.left) == 0 {
		if p.err != nil {
			return 0, p.err
		}
		if !p.busy {
			p.busy = true
			p.req <- struct{}{}
		}
		var expired <-chan time.Time
		if timeout > 0 {
			t := time.NewTimer(timeout)
			defer t.Stop()
			expired = t.C
		}
		select {
		case r := <-p.res:
			p.busy = false
			p.left, p.err = p.buf[:r.n], r.err
		case <-expired:
			return 0, errTimeout
		case <-stop:
			return 0, errStopped
		}
		if len(p.left) == 0 {
			return 0, p.err
		}
	}
	n := copy(b, p.left)
	p.left = p.left[n:]
	return n, nil
}

func (p *pump) close() { p.once.Do(func() { close(p.quit) }) }
