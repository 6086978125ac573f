package queue

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// ErrLocked is returned (wrapped) by Lock and Delete when another process
// holds the message: a runner is delivering it, or its enqueuer has not
// closed it yet. The caller skips it; it is not an error worth a log.
var ErrLocked = errors.New("queue: message is locked by another process")

// ErrNotFound is returned (wrapped) when the message is not (or no longer)
// in the queue: typically another runner delivered it meanwhile.
var ErrNotFound = errors.New("queue: no such message")

// ErrNoBody is returned (wrapped) by Lock for an envelope whose body file
// is missing. Only a power loss on a filesystem that does not keep the
// order of writes, or a hand, makes one: it can never be sent, so the
// runner moves it to failed/ (FailBodiless) and Delete removes it.
var ErrNoBody = errors.New("queue: the message's body is missing")

// Group is the name of the group that owns the queue in production
// (SPEC §9), used when relaymail does not run setgid to one.
const Group = "relaymail"

// OrphanAge is how old an unreferenced file in tmp/ or body/ must be
// before Cleanup removes it: far longer than any Commit takes.
const OrphanAge = time.Hour

// maxEnvSize bounds what is read from one env file: a header block is at
// most about 1 MiB (sendmail.DefaultMaxHeaderBytes) plus the rewrites.
const maxEnvSize = 4 << 20

// Subdirectories of the queue directory.
const (
	dirTmp        = "tmp"
	dirEnv        = "env"
	dirBody       = "body"
	dirFailed     = "failed"
	dirFailedEnv  = "failed/env"
	dirFailedBody = "failed/body"
)

// Queue is an open spool directory. It holds no open files and no
// state that changes, so one Queue may be used from many goroutines;
// the coordination between processes is in the filesystem.
type Queue struct {
	dir      string
	fileMode os.FileMode
	// hook, when set by tests, is called before each step of Commit
	// and may fail it.
	hook func(step string) error
	// named, set by tests, makes bodies named temporary files, as on a
	// filesystem without O_TMPFILE.
	named bool
}

// Open returns the queue in dir, creating dir and its subdirectories
// when missing (see the package comment for their mode and group). An
// existing directory is used as it is: its mode is the admin's choice,
// and decides whether files are group-readable.
func Open(dir string) (*Queue, error) {
	return open(dir, Group)
}

func open(dir, group string) (*Queue, error) {
	if dir == "" {
		return nil, errors.New("queue: no directory")
	}
	dir = filepath.Clean(dir)
	mode, gid := os.FileMode(0o700), -1
	if id, ok := sharedGroup(group); ok {
		mode = 0o770 | os.ModeSetgid
		// Root may give the directory any group; anyone else only the
		// one it runs as, which the directory gets anyway.
		if os.Geteuid() == 0 || id == os.Getegid() {
			gid = id
		}
	}
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	for _, sub := range []string{"", dirTmp, dirEnv, dirBody, dirFailed, dirFailedEnv, dirFailedBody} {
		if err := mkdir(filepath.Join(dir, sub), mode, gid); err != nil {
			return nil, err
		}
	}
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	q := &Queue{dir: dir, fileMode: 0o600}
	if st.Mode().Perm()&0o070 != 0 {
		q.fileMode = 0o660
	}
	return q, nil
}

// sharedGroup is the group the spool is shared with (SPEC §7): the one
// relaymail runs setgid to, whatever its name, else the group called
// name where it exists. Without one the spool is the caller's alone.
func sharedGroup(name string) (int, bool) {
	if egid := os.Getegid(); egid != os.Getgid() {
		return egid, true
	}
	g, err := user.LookupGroup(name)
	if err != nil {
		return -1, false
	}
	id, err := strconv.Atoi(g.Gid)
	return id, err == nil
}

// mkdir creates one directory with exactly mode (whatever the umask) and,
// when gid >= 0, that group; an existing directory is left alone.
func mkdir(path string, mode os.FileMode, gid int) error {
	err := os.Mkdir(path, 0o700)
	if errors.Is(err, fs.ErrExist) {
		st, err := os.Stat(path)
		if err != nil {
			return fmt.Errorf("queue: %w", err)
		}
		if !st.IsDir() {
			return fmt.Errorf("queue: %s is not a directory", path)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	// chown before chmod: the setgid bit must survive the chown.
	if gid >= 0 {
		if err := os.Chown(path, -1, gid); err != nil {
			return fmt.Errorf("queue: %w", err)
		}
	}
	if err := os.Chmod(path, mode); err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	return nil
}

// Dir is the queue directory, for messages to the admin.
func (q *Queue) Dir() string { return q.dir }

func (q *Queue) path(sub, id string) string { return filepath.Join(q.dir, sub, id) }

// ValidID reports whether id can name a message: 1 to 64 characters of
// letters, digits, '-' and '_'. An id given by the admin (relaymail
// --requeue ID) is checked with it, so that it never names a path
// outside the queue.
func ValidID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		switch {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c == '-', c == '_':
		default:
			return false
		}
	}
	return true
}

func checkID(id string) error {
	if !ValidID(id) {
		return fmt.Errorf("queue: invalid message id %q", id)
	}
	return nil
}

// syncDir makes a directory's entries (created, renamed, removed files)
// durable.
// Sync makes the removals of Item.Delivered durable.
func (q *Queue) Sync() error { return syncDir(q.path(dirEnv, "")) }

func syncDir(path string) error {
	d, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("queue: fsync %s: %w", path, err)
	}
	return nil
}

// tryLock takes flock(LOCK_EX|LOCK_NB) on f; ErrLocked when another open
// file description holds it.
func tryLock(f *os.File) error {
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		switch {
		case err == nil:
			return nil
		case err == syscall.EINTR:
			continue
		case err == syscall.EWOULDBLOCK:
			return ErrLocked
		default:
			return fmt.Errorf("queue: flock %s: %w", f.Name(), err)
		}
	}
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}
