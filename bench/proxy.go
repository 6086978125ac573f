// Package bench owns relaymail's side-by-side benchmarks against msmtp:
// round trips per message over a loopback link with an artificial delay,
// and throughput and peak memory for large messages (issue 2); and the
// rate at which one queue runner flushes 1,000 queued messages (issue 4).
//
// The package itself holds only DelayProxy, the delaying TCP proxy; the
// measurements live in bench_test.go and run with
//
//	go test -run='^$' -bench=. -benchtime=1x ./bench
//
// or, building the binary and installing msmtp first, with bench/run.
// README.md beside this file explains how to read the figures.
package bench

import (
	"errors"
	"fmt"
	"net"
	"runtime"
	"sync"
	"time"
)

// chunkSize is the largest read the proxy forwards as one unit. It only
// bounds memory per chunk; ordering and delay do not depend on it.
const chunkSize = 32 << 10

// queueDepth bounds how many chunks may be in flight in one direction,
// so a fast sender behind a long delay meets back-pressure instead of
// making the proxy buffer without limit (at most queueDepth*chunkSize).
const queueDepth = 256

// dialTimeout bounds the proxy's own connection to the target, which is
// on loopback and so either answers at once or not at all.
const dialTimeout = 10 * time.Second

// DelayProxy is a loopback TCP proxy that holds every chunk of bytes for
// a fixed one-way delay before passing it on, keeping the order. A
// client talking through it sees a round-trip time of twice the delay,
// so the wall time of a session divided by that RTT counts the round
// trips the protocol needed: this is how the benchmark compares SMTP
// clients without a real long-distance link.
//
// Connection set-up is delayed too: the proxy dials the target one delay
// after it accepts, so the server's greeting reaches the client one full
// RTT after connect, as it would over a real link (TCP's own handshake,
// which costs both clients the same, is not modelled).
type DelayProxy struct {
	ln     net.Listener
	target string
	delay  time.Duration
	done   chan struct{}
	wg     sync.WaitGroup

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

// NewDelayProxy listens on 127.0.0.1 on a free port and forwards each
// connection to target with the given one-way delay in each direction.
// A zero delay forwards at once, which gives the baseline the benchmark
// subtracts. Close must be called to stop it.
func NewDelayProxy(target string, delay time.Duration) (*DelayProxy, error) {
	if delay < 0 {
		return nil, fmt.Errorf("bench: negative proxy delay %v", delay)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("bench: proxy listen: %w", err)
	}
	p := &DelayProxy{
		ln:     ln,
		target: target,
		delay:  delay,
		done:   make(chan struct{}),
		conns:  make(map[net.Conn]struct{}),
	}
	p.wg.Add(1)
	go p.serve()
	return p, nil
}

// Addr is the host:port clients connect to instead of the target.
func (p *DelayProxy) Addr() string { return p.ln.Addr().String() }

// Delay is the one-way delay; the round-trip time is twice this.
func (p *DelayProxy) Delay() time.Duration { return p.delay }

// Close stops accepting, cuts every open connection and waits for the
// proxy's goroutines to end, so a benchmark leaves nothing running.
func (p *DelayProxy) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	close(p.done)
	err := p.ln.Close()
	for c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
	return err
}

// track registers c so Close can cut it; it reports false, closing c,
// when the proxy is already closed.
func (p *DelayProxy) track(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		c.Close()
		return false
	}
	p.conns[c] = struct{}{}
	return true
}

func (p *DelayProxy) untrack(c net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	p.mu.Unlock()
	c.Close()
}

func (p *DelayProxy) serve() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return // listener closed (or broken): nothing more to accept
		}
		if !p.track(c) {
			return
		}
		p.wg.Add(1)
		go p.handle(c, time.Now())
	}
}

// handle relays one accepted connection until both directions end or
// either side fails.
func (p *DelayProxy) handle(client net.Conn, accepted time.Time) {
	defer p.wg.Done()
	defer p.untrack(client)

	// Reading from the client starts at once so that every chunk is
	// stamped with its true arrival time; writing upstream waits for the
	// dial below.
	up := make(chan chunk, queueDepth)
	go readChunks(client, up, p.delay)

	// On any failure before both directions run, closing the client
	// ends its reader, which lets drain return.
	if !p.sleepUntil(accepted.Add(p.delay)) {
		client.Close()
		drain(up)
		return
	}
	server, err := net.DialTimeout("tcp", p.target, dialTimeout)
	if err != nil {
		client.Close()
		drain(up)
		return
	}
	if !p.track(server) {
		client.Close()
		drain(up)
		return
	}
	defer p.untrack(server)

	down := make(chan chunk, queueDepth)
	go readChunks(server, down, p.delay)

	errs := make(chan error, 2)
	go func() { errs <- p.writeChunks(server, up) }()
	go func() { errs <- p.writeChunks(client, down) }()
	for range 2 {
		if err := <-errs; err != nil {
			// One side is gone or failed: cut both so the other
			// direction's reader and writer return too.
			client.Close()
			server.Close()
		}
	}
	drain(up)
	drain(down)
}

// chunk is bytes read from one side and the time they may be written to
// the other.
type chunk struct {
	data []byte
	due  time.Time
}

var chunkPool = sync.Pool{New: func() any { b := make([]byte, chunkSize); return &b }}

// readChunks reads src until EOF or error, stamping each chunk with its
// arrival time plus delay, and closes out when done.
func readChunks(src net.Conn, out chan<- chunk, delay time.Duration) {
	defer close(out)
	for {
		bp := chunkPool.Get().(*[]byte)
		quickAck(src)
		n, err := src.Read(*bp)
		if n > 0 {
			out <- chunk{data: (*bp)[:n], due: time.Now().Add(delay)}
		} else {
			chunkPool.Put(bp)
		}
		if err != nil {
			return
		}
	}
}

// writeChunks writes each chunk to dst once it is due, in order, and
// half-closes dst when in is exhausted so an EOF travels like data does.
func (p *DelayProxy) writeChunks(dst net.Conn, in <-chan chunk) error {
	for c := range in {
		if !p.sleepUntil(c.due) {
			return errors.New("bench: proxy closed")
		}
		_, err := dst.Write(c.data)
		buf := c.data[:cap(c.data)]
		chunkPool.Put(&buf)
		if err != nil {
			return err
		}
	}
	if tc, ok := dst.(*net.TCPConn); ok {
		return tc.CloseWrite()
	}
	return nil
}

// spinWindow is how long before a chunk is due the proxy stops sleeping
// and polls instead. Go's timers can fire a millisecond or so late (the
// poller sleeps in whole milliseconds), which over the eight or more
// delayed hops of a session would add a tenth of a round trip that no
// real link has.
const spinWindow = 2 * time.Millisecond

// sleepUntil waits until t or until the proxy closes, reporting whether
// it is still open.
func (p *DelayProxy) sleepUntil(t time.Time) bool {
	if d := time.Until(t) - spinWindow; d > 0 {
		timer := time.NewTimer(d)
		select {
		case <-timer.C:
		case <-p.done:
			timer.Stop()
			return false
		}
	}
	for time.Now().Before(t) {
		select {
		case <-p.done:
			return false
		default:
			runtime.Gosched()
		}
	}
	select {
	case <-p.done:
		return false
	default:
		return true
	}
}

// drain empties a chunk channel until its reader closes it, so the
// reader goroutine never blocks on a full channel after the writer
// stopped. The reader ends because its connection is closed by then.
func drain(ch <-chan chunk) {
	for range ch {
	}
}
