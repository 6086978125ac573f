package queue

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"iter"
	"os"
	"slices"
	"strings"
	"time"
)

// Walk is one pass over the messages of a queue directory, oldest first
// (by arrival, then id), that holds one envelope at a time. To put them
// in order it keeps the id, the arrival and the retry time of each
// message (read from the envelope line alone; about 120 octets a message
// in bench/README's queue-memory table), not the envelopes
// and header blocks: a -q runner over 10,000 messages peaks 1 MiB above
// one over 1,000, not 10 MiB. An id does not always sort by arrival (a
// message tried before it was queued), so the order needs the line.
// Messages that vanish while it reads (delivered by a runner) are
// skipped. A file that cannot be read or decoded does not stop it: it is
// skipped, and Err names each bad file once.
//
//	w := q.Walk()
//	for w.Next() {
//		... w.ID(), w.Due(now), w.Envelope() ...
//	}
//	err := w.Err()
type Walk struct {
	q     *Queue
	sub   string
	refs  []walkRef
	cur   walkRef
	width int
	errs  []error
}

// walkRef is what a Walk keeps of a message until its turn comes.
type walkRef struct {
	id      string
	created time.Time
	next    time.Time // NextAttempt
}

// Walk starts a pass over the queued messages (not the failed ones). The
// envelope lines are read now, to put the messages in order; each
// envelope is read again, with its header, when Envelope asks for it.
func (q *Queue) Walk() *Walk { return q.walk(dirEnv) }

// WalkFailed starts a pass over the messages given up and kept in
// failed/, like Walk.
func (q *Queue) WalkFailed() *Walk { return q.walk(dirFailedEnv) }

func (q *Queue) walk(sub string) *Walk {
	w := &Walk{q: q, sub: sub}
	var buf []byte
	if err := eachName(q.path(sub, ""), func(name string) { buf = w.add(name, buf) }); err != nil {
		w.errs = append(w.errs, err)
	}
	slices.SortFunc(w.refs, func(a, b walkRef) int {
		if c := a.created.Compare(b.created); c != 0 {
			return c
		}
		return strings.Compare(a.id, b.id)
	})
	// A file replaced while the directory was read (an Update by another
	// runner) can be met twice; its arrival time does not change.
	w.refs = slices.CompactFunc(w.refs, func(a, b walkRef) bool { return a.id == b.id })
	return w
}

// add reads the envelope line of the message called name and keeps it
// for the pass, or the reason it cannot be listed.
func (w *Walk) add(name string, buf []byte) []byte {
	path := w.q.path(w.sub, name)
	if !ValidID(name) {
		w.errs = append(w.errs, fmt.Errorf("queue: %s: not a message id", path))
		return buf
	}
	e, buf, err := readEnvLine(path, buf)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return buf
	case err != nil:
		w.errs = append(w.errs, err)
		return buf
	case e.ID != name:
		w.errs = append(w.errs, fmt.Errorf("queue: %s: corrupt: it holds message %s", path, e.ID))
		return buf
	case w.sub == dirEnv && w.q.bodiless(e.ID):
		// Not a message that will be sent: name it, do not list it.
		w.errs = append(w.errs, fmt.Errorf("%w: %s (the next queue run moves it to failed/)", ErrNoBody, path))
		return buf
	}
	w.refs = append(w.refs, walkRef{id: name, created: e.Created, next: e.NextAttempt})
	w.width = max(w.width, len(name))
	return buf
}

// Next moves to the next message; false when there is none left.
func (w *Walk) Next() bool {
	if len(w.refs) == 0 {
		w.cur = walkRef{}
		return false
	}
	w.cur, w.refs = w.refs[0], w.refs[1:]
	return true
}

// ID is the current message's id.
func (w *Walk) ID() string { return w.cur.id }

// Due reports whether the current message's retry time has come at now,
// as its envelope said when the Walk started (Envelope.Due).
func (w *Walk) Due(now time.Time) bool { return !now.Before(w.cur.next) }

// IDWidth is the length of the longest id among the messages of the pass,
// for a table's id column.
func (w *Walk) IDWidth() int { return w.width }

// Envelope reads the current message's envelope in full, header block
// included. It returns nil when the message has gone meanwhile, or when
// its file can no longer be read or decoded (then Err names it).
func (w *Walk) Envelope() *Envelope {
	path := w.q.path(w.sub, w.cur.id)
	e, err := readEnv(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil
	case err != nil:
		w.errs = append(w.errs, err)
		return nil
	case e.ID != w.cur.id:
		w.errs = append(w.errs, fmt.Errorf("queue: %s: corrupt: it holds message %s", path, e.ID))
		return nil
	}
	return e
}

// All reads the remaining messages' envelopes one at a time (Envelope),
// skipping the ones that have gone or cannot be read.
func (w *Walk) All() iter.Seq[*Envelope] {
	return func(yield func(*Envelope) bool) {
		for w.Next() {
			if e := w.Envelope(); e != nil && !yield(e) {
				return
			}
		}
	}
}

// Err names each file the pass could not read or decode so far, and the
// directory when it could not be read; nil when there was none.
func (w *Walk) Err() error { return errors.Join(w.errs...) }

// Requeue puts a failed message back in the queue for the admin
// (relaymail --requeue ID): attempts start again from 0 and the next
// attempt is now. The last error stays until the next attempt replaces
// it.
func (q *Queue) Requeue(id string) error {
	if err := checkID(id); err != nil {
		return err
	}
	fenv, fbody := q.path(dirFailedEnv, id), q.path(dirFailedBody, id)
	env, err := readEnv(fenv)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("queue: requeue %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return err
	}
	if exists(q.path(dirEnv, id)) {
		return fmt.Errorf("queue: requeue %s: already queued", id)
	}
	// The body is where Fail left it: failed/body, or body/ when a crash
	// interrupted Fail. Hold its lock so that Cleanup does not finish that
	// Fail under us.
	body := q.path(dirBody, id)
	src := fbody
	if !exists(fbody) {
		src = body
	}
	f, err := os.Open(src)
	if err != nil {
		return fmt.Errorf("queue: requeue %s: body: %w", id, err)
	}
	defer f.Close()
	if err := tryLock(f); err != nil {
		return fmt.Errorf("queue: requeue %s: %w", id, err)
	}
	if src != body {
		if err := os.Rename(src, body); err != nil {
			return fmt.Errorf("queue: %w", err)
		}
		if err := syncDir(q.path(dirBody, "")); err != nil {
			return err
		}
	}
	env.Attempts = 0
	env.NextAttempt = time.Now()
	if err := q.writeEnv(q.path(dirEnv, id), env); err != nil {
		return err
	}
	if err := os.Remove(fenv); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("queue: %w", err)
	}
	return syncDir(q.path(dirFailedEnv, ""))
}

// Delete removes a message for the admin (relaymail --delete ID), from
// the queue or from failed/. A queued message that a runner is
// delivering is not deleted: the error wraps ErrLocked.
func (q *Queue) Delete(id string) error {
	if err := checkID(id); err != nil {
		return err
	}
	if exists(q.path(dirEnv, id)) {
		it, err := q.Lock(id)
		if errors.Is(err, ErrNoBody) {
			// Nothing can lock a message without a body: its envelope
			// is all there is to remove.
			if err := os.Remove(q.path(dirEnv, id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("queue: %w", err)
			}
			return syncDir(q.path(dirEnv, ""))
		}
		if err != nil {
			return err
		}
		defer it.Unlock()
		return it.Remove()
	}
	fenv := q.path(dirFailedEnv, id)
	if err := os.Remove(fenv); errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("queue: delete %s: %w", id, ErrNotFound)
	} else if err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	var errs []error
	for _, p := range []string{q.path(dirFailedBody, id), q.path(dirBody, id)} {
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("queue: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Cleanup repairs what crashes leave behind, at now: it removes files in
// tmp/ and bodies without an envelope that are older than OrphanAge and
// not locked, and finishes a Fail or a Requeue that a crash
// interrupted. It is meant to run at the start of each queue run.
func (q *Queue) Cleanup(now time.Time) error {
	var errs []error
	cutoff := now.Add(-OrphanAge)

	// Envelopes left in failed/ by an interrupted Requeue: the message is
	// queued again, its failed copy goes.
	if err := eachName(q.path(dirFailedEnv, ""), func(id string) {
		if exists(q.path(dirEnv, id)) && exists(q.path(dirBody, id)) && !exists(q.path(dirFailedBody, id)) {
			if err := os.Remove(q.path(dirFailedEnv, id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("queue: %w", err))
			}
		}
	}); err != nil {
		errs = append(errs, err)
	}

	// Bodies without an envelope.
	if err := eachName(q.path(dirBody, ""), func(id string) {
		if err := q.cleanBody(id, cutoff); err != nil {
			errs = append(errs, err)
		}
	}); err != nil {
		errs = append(errs, err)
	}

	// Temporary files of processes that died.
	if err := eachName(q.path(dirTmp, ""), func(name string) {
		if err := removeStale(q.path(dirTmp, name), cutoff, nil); err != nil {
			errs = append(errs, err)
		}
	}); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// cleanBody deals with body/id when env/id is missing: the tail of an
// interrupted Fail moves to failed/, an old orphan goes.
func (q *Queue) cleanBody(id string, cutoff time.Time) error {
	if exists(q.path(dirEnv, id)) {
		return nil
	}
	path := q.path(dirBody, id)
	if ValidID(id) && exists(q.path(dirFailedEnv, id)) && !exists(q.path(dirFailedBody, id)) {
		return withLock(path, func() error {
			if exists(q.path(dirEnv, id)) || !exists(q.path(dirFailedEnv, id)) {
				return nil // a Requeue finished meanwhile
			}
			if err := os.Rename(path, q.path(dirFailedBody, id)); err != nil {
				return fmt.Errorf("queue: %w", err)
			}
			return nil
		})
	}
	return removeStale(path, cutoff, func() bool { return !exists(q.path(dirEnv, id)) })
}

// removeStale removes path when its ctime (which a link or a write
// updates, and no user can set back) is before cutoff and no process
// holds its lock; still, when given, is checked again under the lock.
func removeStale(path string, cutoff time.Time, still func() bool) error {
	st, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	if !changedBefore(st, cutoff) {
		return nil
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("queue: %s: not a regular file", path)
	}
	return withLock(path, func() error {
		if still != nil && !still() {
			return nil
		}
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("queue: %w", err)
		}
		return nil
	})
}

func changedBefore(st fs.FileInfo, cutoff time.Time) bool {
	return ctime(st).Before(cutoff)
}

// withLock runs fn while holding path's lock; a locked or vanished file is
// skipped.
func withLock(path string, fn func() error) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	defer f.Close()
	if err := tryLock(f); errors.Is(err, ErrLocked) {
		return nil
	} else if err != nil {
		return err
	}
	return fn()
}

// bodiless reports whether env/id exists without body/id. The body is
// looked at first: a message leaves the queue envelope first (Delivered,
// Fail) and enters it body first (Commit, Requeue), so an envelope still
// there after its body was found missing is one that lost its body.
func (q *Queue) bodiless(id string) bool {
	return !exists(q.path(dirBody, id)) && exists(q.path(dirEnv, id)) && !q.relinkBody(id)
}

// relinkBody gives body/ID back to a message whose env/ID is a combined
// file (which holds the body) after a power loss forgot the body/ID link
// commitCombined made but did not fsync. It reports whether body/ID
// exists now.
func (q *Queue) relinkBody(id string) bool {
	if !ValidID(id) {
		return false
	}
	e, err := readEnv(q.path(dirEnv, id))
	if err != nil || !e.combined || e.ID != id {
		return false
	}
	err = os.Link(q.path(dirEnv, id), q.path(dirBody, id))
	return err == nil || errors.Is(err, fs.ErrExist)
}

// FailBodiless moves every queued envelope whose body is missing (see
// ErrNoBody) to failed/, with the reason as its last error, and returns
// the envelopes it moved, so that the runner reports each once instead
// of at every pass. --delete ID removes such a message for good.
func (q *Queue) FailBodiless() ([]*Envelope, error) {
	var moved []*Envelope
	var errs []error
	err := eachName(q.path(dirEnv, ""), func(id string) {
		if !ValidID(id) || !q.bodiless(id) {
			return
		}
		fenv := q.path(dirFailedEnv, id)
		if exists(fenv) {
			errs = append(errs, fmt.Errorf("%w: %s, and %s exists too", ErrNoBody, q.path(dirEnv, id), fenv))
			return
		}
		if err := os.Rename(q.path(dirEnv, id), fenv); err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("queue: %w", err))
			}
			return
		}
		reason := "its body " + q.path(dirBody, id) + " is missing; it cannot be sent"
		e, err := readEnv(fenv)
		if err == nil {
			e.LastError = reason
			err = q.writeEnv(fenv, e)
		}
		if err != nil {
			// Moved all the same: the envelope is where mailq --failed
			// shows it, with the error it had.
			errs = append(errs, err)
		}
		if e == nil {
			e = &Envelope{ID: id}
		}
		e.LastError = reason
		moved = append(moved, e)
	})
	if err != nil {
		errs = append(errs, err)
	}
	if len(moved) > 0 {
		for _, d := range []string{dirEnv, dirFailedEnv} {
			if err := syncDir(q.path(d, "")); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return moved, errors.Join(errs...)
}

// eachName calls fn with the name of each entry of the directory dir, in
// the directory's order, reading it in pieces: a pass over a queue of
// any size holds a few hundred names at a time, not all of them. An
// entry added, removed or replaced meanwhile (another process's Commit,
// Update, Delivered) may or may not be seen, or be seen twice: fn must
// not mind.
func eachName(dir string, fn func(name string)) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	defer d.Close()
	for {
		names, err := d.Readdirnames(256)
		for _, name := range names {
			fn(name)
		}
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return fmt.Errorf("queue: %s: %w", dir, err)
		}
	}
}
