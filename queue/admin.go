package queue

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"time"
)

// List returns the queued messages (not the failed ones), oldest first.
// Messages that vanish while it reads (delivered by a runner) are
// skipped. A file that cannot be read or decoded does not stop it: the
// envelopes it could read come back with an error that names each bad
// file.
func (q *Queue) List() ([]*Envelope, error) { return q.list(dirEnv) }

// ListFailed returns the messages given up and kept in failed/, oldest
// first, like List.
func (q *Queue) ListFailed() ([]*Envelope, error) { return q.list(dirFailedEnv) }

func (q *Queue) list(sub string) ([]*Envelope, error) {
	entries, err := os.ReadDir(q.path(sub, ""))
	if err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	var envs []*Envelope
	var errs []error
	for _, de := range entries {
		path := q.path(sub, de.Name())
		if !ValidID(de.Name()) {
			errs = append(errs, fmt.Errorf("queue: %s: not a message id", path))
			continue
		}
		e, err := readEnv(path)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			continue
		case err != nil:
			errs = append(errs, err)
			continue
		case e.ID != de.Name():
			errs = append(errs, fmt.Errorf("queue: %s: corrupt: it holds message %s", path, e.ID))
			continue
		case sub == dirEnv && q.bodiless(e.ID):
			// Not a message that will be sent: name it, do not list it.
			errs = append(errs, fmt.Errorf("%w: %s (the next queue run moves it to failed/)", ErrNoBody, path))
			continue
		}
		envs = append(envs, e)
	}
	slices.SortFunc(envs, func(a, b *Envelope) int {
		if c := a.Created.Compare(b.Created); c != 0 {
			return c
		}
		if a.ID < b.ID {
			return -1
		}
		if a.ID > b.ID {
			return 1
		}
		return 0
	})
	return envs, errors.Join(errs...)
}

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
	if entries, err := os.ReadDir(q.path(dirFailedEnv, "")); err != nil {
		errs = append(errs, fmt.Errorf("queue: %w", err))
	} else {
		for _, de := range entries {
			id := de.Name()
			if exists(q.path(dirEnv, id)) && exists(q.path(dirBody, id)) && !exists(q.path(dirFailedBody, id)) {
				if err := os.Remove(q.path(dirFailedEnv, id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
					errs = append(errs, fmt.Errorf("queue: %w", err))
				}
			}
		}
	}

	// Bodies without an envelope.
	if entries, err := os.ReadDir(q.path(dirBody, "")); err != nil {
		errs = append(errs, fmt.Errorf("queue: %w", err))
	} else {
		for _, de := range entries {
			if err := q.cleanBody(de.Name(), cutoff); err != nil {
				errs = append(errs, err)
			}
		}
	}

	// Temporary files of processes that died.
	if entries, err := os.ReadDir(q.path(dirTmp, "")); err != nil {
		errs = append(errs, fmt.Errorf("queue: %w", err))
	} else {
		for _, de := range entries {
			if err := removeStale(q.path(dirTmp, de.Name()), cutoff, nil); err != nil {
				errs = append(errs, err)
			}
		}
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
	entries, err := os.ReadDir(q.path(dirEnv, ""))
	if err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	var moved []*Envelope
	var errs []error
	for _, de := range entries {
		id := de.Name()
		if !ValidID(id) || !q.bodiless(id) {
			continue
		}
		fenv := q.path(dirFailedEnv, id)
		if exists(fenv) {
			errs = append(errs, fmt.Errorf("%w: %s, and %s exists too", ErrNoBody, q.path(dirEnv, id), fenv))
			continue
		}
		if err := os.Rename(q.path(dirEnv, id), fenv); err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Errorf("queue: %w", err))
			}
			continue
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
