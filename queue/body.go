package queue

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"relaymail/message"
	"time"
)

// Body is a message body being written into the queue's filesystem, so
// that relaymail can spool a message into it, try to deliver it from it
// and only then commit it: written once, never held in memory, never
// copied. On Linux it is born without a name (O_TMPFILE in tmp/), so a
// crash leaves nothing behind; elsewhere, or where the filesystem lacks
// O_TMPFILE, it is a named file in tmp/ removed by Close (or by Cleanup
// after a crash).
//
// The Body holds the message's lock from NewBody to Close: a runner
// cannot start on a message that its enqueuer still has open.
//
// A Body is not safe for concurrent writes; ReadAt may be called from
// several goroutines once writing is done.
type Body struct {
	q         *Queue
	f         *os.File
	name      string // the named temporary file; "" when nameless
	size      int64
	err       error  // the first write error: such a body cannot be committed
	committed string // the id, once committed
	closed    bool
}

// NewBody starts a body in the queue. The caller must Close it, committed
// or not.
func (q *Queue) NewBody() (*Body, error) {
	tmp := q.path(dirTmp, "")
	var f *os.File
	ok, err := false, error(nil)
	if !q.named {
		f, ok, err = openNameless(tmp, q.fileMode)
	}
	if err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	b := &Body{q: q, f: f}
	if !ok {
		if b.f, err = os.CreateTemp(tmp, "body-*"); err != nil {
			return nil, fmt.Errorf("queue: %w", err)
		}
		b.name = b.f.Name()
	}
	if err := b.f.Chmod(q.fileMode); err != nil {
		b.Close()
		return nil, fmt.Errorf("queue: %w", err)
	}
	if err := tryLock(b.f); err != nil {
		b.Close()
		return nil, err
	}
	return b, nil
}

// Write appends p to the body. After a failed write (a full disk) the
// body can still be read and closed, but Commit refuses it.
func (b *Body) Write(p []byte) (int, error) {
	if b.closed {
		return 0, errors.New("queue: write to a closed body")
	}
	if b.committed != "" {
		return 0, errors.New("queue: write to a committed body")
	}
	if b.err != nil {
		return 0, b.err
	}
	n, err := b.f.Write(p)
	b.size += int64(n)
	if err != nil {
		b.err = fmt.Errorf("queue: write body: %w", err)
		return n, b.err
	}
	return n, nil
}

// ReadAt reads the body written so far, at off.
func (b *Body) ReadAt(p []byte, off int64) (int, error) {
	if b.closed {
		return 0, errors.New("queue: read from a closed body")
	}
	if off >= b.size {
		return 0, io.EOF
	}
	if rest := b.size - off; int64(len(p)) > rest {
		n, err := b.f.ReadAt(p[:rest], off)
		if err == nil {
			err = io.EOF
		}
		return n, err
	}
	return b.f.ReadAt(p, off)
}

// Size is the number of bytes written.
func (b *Body) Size() int64 { return b.size }

// Close releases the body and its lock. A body that was not committed
// disappears; a committed one stays queued. Close may be called twice.
func (b *Body) Close() error {
	if b.closed {
		return nil
	}
	b.closed = true
	if b.f == nil {
		return nil
	}
	err := b.f.Close()
	if b.name != "" {
		if rerr := os.Remove(b.name); rerr != nil && err == nil {
			err = rerr
		}
	}
	if err != nil {
		return fmt.Errorf("queue: close body: %w", err)
	}
	return nil
}

// Commit makes env and body a queued message, durably: it fsyncs the
// body, links it to body/ID, fsyncs body/, then writes env (with its
// Header) to tmp/, fsyncs it, renames it to env/ID and fsyncs env/. Only
// after Commit returns nil may relaymail tell its caller the message is
// accepted (exit 0). Commit sets env.ID when it is empty (NewID), and
// env.Created when it is zero, and env.BodySize always. On error nothing
// is queued; the body stays open and may be read (for dead.letter) but
// must still be closed.
func (q *Queue) Commit(env *Envelope, body *Body) error {
	if body == nil || body.q != q {
		return errors.New("queue: commit of a body from another queue")
	}
	if body.closed || body.committed != "" {
		return errors.New("queue: commit of a closed or committed body")
	}
	if body.err != nil {
		return fmt.Errorf("queue: body not committed after a write error: %w", body.err)
	}
	if err := checkNew(env); err != nil {
		return err
	}
	env.BodySize = body.size
	if err := q.step("body-sync"); err != nil {
		return err
	}
	if err := body.f.Sync(); err != nil {
		return fmt.Errorf("queue: fsync body: %w", err)
	}
	gen := env.ID == ""
	if err := withID(env, func() error { return q.claim(env.ID, body) }); err != nil {
		return err
	}
	bodyPath := q.path(dirBody, env.ID)
	fail := func(err error) error {
		// The id is ours (the body link claimed it): undo whatever exists.
		os.Remove(q.path(dirEnv, env.ID))
		os.Remove(bodyPath)
		if gen {
			env.ID = ""
		}
		return err
	}
	if err := q.step("body-dirsync"); err != nil {
		return fail(err)
	}
	if err := syncDir(q.path(dirBody, "")); err != nil {
		return fail(err)
	}
	if err := q.writeEnv(q.path(dirEnv, env.ID), env); err != nil {
		return fail(err)
	}
	body.committed = env.ID
	if body.name != "" {
		// The body now lives as body/ID; the temporary name goes.
		os.Remove(body.name)
		body.name = ""
	}
	return nil
}

var errTaken = errors.New("already in use")

// claim gives the body the name body/ID, without ever replacing a file;
// an id that names a message anywhere in the queue is refused (errTaken).
func (q *Queue) claim(id string, b *Body) error {
	if exists(q.path(dirEnv, id)) || exists(q.path(dirFailedEnv, id)) {
		return fmt.Errorf("queue: message id %s: %w", id, errTaken)
	}
	if err := q.step("body-link"); err != nil {
		return err
	}
	path := q.path(dirBody, id)
	var err error
	if b.name == "" {
		err = linkNameless(b.f, path)
	} else {
		err = os.Link(b.name, path)
	}
	if os.IsExist(err) {
		return fmt.Errorf("queue: message id %s: %w", id, errTaken)
	}
	if err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	return nil
}

// Store queues env with body, a message's body wherever it is held. A
// body spilled into a Body of this queue (sendmail's Spool over NewBody)
// is flushed and linked into place with Commit, not copied: a large
// message is written to disk once. One held in memory is written with
// the envelope in one combined file (Enqueue).
func (q *Queue) Store(env *Envelope, body message.Body) error {
	if s, ok := body.(message.Spilled); ok {
		if b, ok := s.Spilled().(*Body); ok && b.q == q {
			if err := s.Flush(); err != nil {
				return err
			}
			return q.Commit(env, b)
		}
	}
	if m, ok := body.(interface{ Bytes() []byte }); ok && m.Bytes() != nil {
		return q.Enqueue(env, bytes.NewReader(m.Bytes())) // in memory: one write
	}
	return q.Enqueue(env, io.NewSectionReader(body, 0, body.Size()))
}

// Enqueue is Commit for a body held elsewhere (a message held in memory,
// a DSN, a test). A body of up to maxCombinedBody octets is written with
// the envelope in one combined file (commitCombined); a larger one is
// copied into a new Body and committed.
func (q *Queue) Enqueue(env *Envelope, body io.Reader) error {
	small, err := io.ReadAll(io.LimitReader(body, maxCombinedBody+1))
	if err != nil {
		return fmt.Errorf("queue: enqueue: %w", err)
	}
	if len(small) <= maxCombinedBody {
		return q.commitCombined(env, small)
	}
	b, err := q.NewBody()
	if err != nil {
		return err
	}
	defer b.Close()
	if _, err := io.Copy(b, io.MultiReader(bytes.NewReader(small), body)); err != nil {
		return fmt.Errorf("queue: enqueue: %w", err)
	}
	if err := q.Commit(env, b); err != nil {
		return err
	}
	return b.Close()
}

// commitCombined queues env with body in one file, durably, with two
// fsyncs where Commit needs four: the file (envelope line, header, body)
// is born nameless in tmp/, written and fsynced, linked as body/ID (the
// lock file, claiming the id) and then as env/ID, and env/ is fsynced.
// body/ is not: should a power loss forget body/ID, env/ID still holds
// the whole message and Lock links it again (see the package comment).
// It holds the message's lock until it returns.
func (q *Queue) commitCombined(env *Envelope, body []byte) error {
	if err := checkNew(env); err != nil {
		return err
	}
	return withID(env, func() error { return q.writeCombined(env, body) })
}

// checkNew checks env before Commit or commitCombined queues it, and
// sets its arrival time when it is zero.
func checkNew(env *Envelope) error {
	if len(env.To) == 0 {
		return errors.New("queue: message has no recipient")
	}
	if env.ID != "" {
		if err := checkID(env.ID); err != nil {
			return err
		}
	}
	if env.Created.IsZero() {
		env.Created = time.Now()
	}
	return nil
}

// withID runs claim, which takes env.ID in the queue. When env.ID is
// empty it is a fresh id (message.NewID), and another one, up to ten
// times, while claim finds the id taken; on failure it is empty again.
func withID(env *Envelope, claim func() error) error {
	gen := env.ID == ""
	for try := 0; ; try++ {
		if gen {
			env.ID = message.NewID(time.Now())
		}
		err := claim()
		if err == nil {
			return nil
		}
		if gen {
			env.ID = ""
		}
		if !errors.Is(err, errTaken) || !gen || try >= 10 {
			return err
		}
	}
}

// writeCombined is one try of commitCombined with env.ID.
func (q *Queue) writeCombined(env *Envelope, body []byte) error {
	c := *env
	data, err := encodeCombined(&c, body)
	if err != nil {
		return err
	}
	b, err := q.NewBody()
	if err != nil {
		return err
	}
	defer b.Close()
	if _, err := b.Write(data); err != nil {
		return err
	}
	if err := q.step("body-sync"); err != nil {
		return err
	}
	if err := b.f.Sync(); err != nil {
		return fmt.Errorf("queue: fsync body: %w", err)
	}
	if err := q.claim(c.ID, b); err != nil {
		return err
	}
	bodyPath, envPath := q.path(dirBody, c.ID), q.path(dirEnv, c.ID)
	fail := func(err error) error {
		// The id is ours (the body link claimed it): undo whatever exists.
		os.Remove(envPath)
		os.Remove(bodyPath)
		return err
	}
	if err := q.step("env-link"); err != nil {
		return fail(err)
	}
	if err := os.Link(bodyPath, envPath); err != nil {
		return fail(fmt.Errorf("queue: %w", err))
	}
	if err := q.step("env-dirsync"); err != nil {
		return fail(err)
	}
	if err := syncDir(q.path(dirEnv, "")); err != nil {
		return fail(err)
	}
	b.committed = c.ID
	if b.name != "" {
		os.Remove(b.name)
		b.name = ""
	}
	*env = c
	return b.Close()
}
