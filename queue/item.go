package queue

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"relaymail/message"
)

// Item is a queued message taken by one process for delivery (Lock).
// Env is the envelope as read after the lock was taken; the runner
// changes it and persists it with Update, or ends the message with
// Remove or Fail, and always calls Unlock.
type Item struct {
	Env *Envelope

	q    *Queue
	id   string
	body *os.File
	done bool // removed or failed: the files are no longer in the queue
}

// Lock takes the message id for delivery, with flock on its body. It
// returns an error wrapping ErrLocked when another process has it, and
// ErrNotFound when it is no longer queued (another runner delivered it
// meanwhile). The envelope is read after the lock is taken, so it is
// the latest one.
func (q *Queue) Lock(id string) (*Item, error) {
	if err := checkID(id); err != nil {
		return nil, err
	}
	f, err := os.Open(q.path(dirBody, id))
	if errors.Is(err, fs.ErrNotExist) && q.relinkBody(id) {
		f, err = os.Open(q.path(dirBody, id))
	}
	if errors.Is(err, fs.ErrNotExist) {
		if exists(q.path(dirEnv, id)) {
			return nil, fmt.Errorf("%w: %s has no %s", ErrNoBody, q.path(dirEnv, id), q.path(dirBody, id))
		}
		return nil, fmt.Errorf("queue: lock %s: %w", id, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	if err := tryLock(f); err != nil {
		f.Close()
		if errors.Is(err, ErrLocked) {
			return nil, fmt.Errorf("queue: lock %s: %w", id, ErrLocked)
		}
		return nil, err
	}
	env, err := readEnv(q.path(dirEnv, id))
	if errors.Is(err, fs.ErrNotExist) {
		f.Close()
		return nil, fmt.Errorf("queue: lock %s: %w", id, ErrNotFound)
	}
	if err == nil && env.ID != id {
		err = fmt.Errorf("queue: %s: corrupt: it holds message %s", q.path(dirEnv, id), env.ID)
	}
	if err == nil {
		var st os.FileInfo
		if st, err = f.Stat(); err == nil && st.Size() != env.BodyOffset+env.BodySize {
			err = fmt.Errorf("queue: %s: corrupt: %d bytes, envelope says %d", f.Name(), st.Size(), env.BodyOffset+env.BodySize)
		}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return &Item{Env: env, q: q, id: id, body: f}, nil
}

// Content returns the message as it is to be sent, header block then
// body, as one stream read straight from the file (no copy), and its
// size. It follows it.Env.Header, so call it after changing the header.
func (it *Item) Content() (io.ReaderAt, int64) {
	body := io.NewSectionReader(it.body, it.Env.BodyOffset, it.Env.BodySize)
	return message.Content(it.Env.Header, body), it.Env.Size()
}

func (it *Item) usable() error {
	if it.body == nil {
		return errors.New("queue: message is unlocked")
	}
	if it.done {
		return fmt.Errorf("queue: message %s is no longer queued", it.id)
	}
	if it.Env.ID != it.id {
		return fmt.Errorf("queue: message %s: envelope id changed to %q", it.id, it.Env.ID)
	}
	return nil
}

// Update persists it.Env atomically (attempts, recipients still to go,
// next attempt, last error): a crash leaves the old or the new
// envelope, never a mix.
//
// When the new envelope cannot be written (a full disk), the retry state
// is written over the old envelope in place instead, which needs no new
// block (see updateInPlace): a recipient the smarthost accepted must not
// get the message again because the disk was full, and the retry count
// and backoff must still grow. The error then says so, and is nil only
// when the normal write worked.
func (it *Item) Update() error {
	if err := it.usable(); err != nil {
		return err
	}
	if len(it.Env.To) == 0 {
		return fmt.Errorf("queue: message %s: no recipient left: Remove it instead", it.id)
	}
	if err := it.keepBody(); err != nil {
		return err
	}
	path := it.q.path(dirEnv, it.id)
	err := it.q.writeEnv(path, it.Env)
	if err == nil {
		return nil
	}
	if ierr := it.q.updateInPlace(path, it.Env); ierr != nil {
		return fmt.Errorf("%w; in place: %v", err, ierr)
	}
	return fmt.Errorf("%w; retry state written over the old envelope in place", err)
}

// Remove takes a delivered message out of the queue, durably: it returns
// once the removal has reached the disk, so a crash cannot send it again.
func (it *Item) Remove() error {
	if err := it.Delivered(); err != nil {
		return err
	}
	return syncDir(it.q.path(dirEnv, ""))
}

// Delivered takes a delivered message out of the queue without waiting
// for the directory to reach the disk: a runner that delivers many
// messages calls Queue.Sync once for all of them. A crash before then may
// send a message again; it never loses one.
func (it *Item) Delivered() error {
	if err := it.usable(); err != nil {
		return err
	}
	q := it.q
	if err := os.Remove(q.path(dirEnv, it.id)); err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	it.done = true
	if err := os.Remove(q.path(dirBody, it.id)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("queue: %w", err)
	}
	return nil
}

// Fail gives the message up: it moves to failed/ with it.Env as it is
// now (the last error, the recipients that failed), where the admin can
// see it with mailq and Requeue or Delete it. The envelope leaves the
// queue first, in one rename, then the body follows.
func (it *Item) Fail() error {
	if err := it.usable(); err != nil {
		return err
	}
	if err := it.keepBody(); err != nil {
		return err
	}
	q := it.q
	fenv := q.path(dirFailedEnv, it.id)
	if err := os.Rename(q.path(dirEnv, it.id), fenv); err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	it.done = true
	var errs []error
	if err := q.writeEnv(fenv, it.Env); err != nil {
		errs = append(errs, err)
	}
	if err := os.Rename(q.path(dirBody, it.id), q.path(dirFailedBody, it.id)); err != nil {
		errs = append(errs, fmt.Errorf("queue: %w", err))
	}
	for _, d := range []string{dirEnv, dirFailedEnv, dirFailedBody, dirBody} {
		if err := syncDir(q.path(d, "")); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// keepBody makes body/ID durable before a combined env/ID, the other
// name of the body, is replaced by a plain envelope: commitCombined did
// not fsync body/.
func (it *Item) keepBody() error {
	if !it.Env.combined {
		return nil
	}
	return syncDir(it.q.path(dirBody, ""))
}

// Unlock releases the message (and closes its body). It is safe to call
// after Remove or Fail, and more than once.
func (it *Item) Unlock() error {
	if it.body == nil {
		return nil
	}
	err := it.body.Close()
	it.body = nil
	if err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	return nil
}
