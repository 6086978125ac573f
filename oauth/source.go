// Package oauth gets, caches and refreshes the OAuth 2.0 access token
// that relaymail gives the smarthost with XOAUTH2 or OAUTHBEARER
// ([smarthost.oauth2], SPEC §5). The grants themselves (RFC 6749 §4.4
// client credentials, §6 refresh token, RFC 7523 JWT bearer) are
// golang.org/x/oauth2's; this package owns what is around them:
//
//   - a token cache in the queue's oauth2/ directory, which only root and
//     relaymail's group can reach (SPEC §9: a caller sends but never reads
//     a token), so that any number of processes cost one token request
//     per token lifetime: the first to find the cache stale takes a file
//     lock (flock), the others wait and read what it wrote;
//   - refresh shortly before expiry, and once more when the smarthost
//     refuses a token (relay.TokenSource's Fresh);
//   - refresh tokens that the provider rotates, saved back atomically
//     (temporary file, fsync, rename) under the same lock, so that
//     concurrent processes never lose the current one;
//   - errors that are temporary (the message waits in the queue), name
//     the endpoint and the OAuth error code, and never hold a secret;
//   - the interactive first login (login.go).
package oauth

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"relaymail/config"
)

// CacheSubdir is the directory below the queue that holds the token
// cache and its locks.
const CacheSubdir = "oauth2"

// Refresh timing. A token is used until refreshMargin before it expires
// (at most half its lifetime, for short-lived tokens), so that a token
// never expires between AUTH and the end of a long DATA. A token without
// expires_in is kept for defaultLifetime.
const (
	refreshMargin   = 5 * time.Minute
	defaultLifetime = 10 * time.Minute
	// lockPoll is how often a process waiting for another's token request
	// looks at the lock again.
	lockPoll = 20 * time.Millisecond
	// refusalHold is how long an invalid_grant answer is reused before
	// the endpoint is asked again.
	refusalHold = time.Minute
	// maxCacheFile bounds what is read from a cache or key file.
	maxCacheFile = 64 << 10
)

// Source is a relay.TokenSource for one smarthost. It is safe for
// concurrent use.
type Source struct {
	cfg      *config.OAuth2
	user     string        // the mailbox: XOAUTH2 user, jwt_bearer subject
	cacheDir string        // "" = no file cache (memory only)
	timeout  time.Duration // each request to the token endpoint
	key      string        // cache file name stem for this configuration

	// Notice, when set, is called with one line the administrator must
	// act on although the mail is safe (invalid_grant: run
	// relaymail --oauth2-login).
	Notice func(msg string)
	// Now replaces time.Now in tests.
	Now func() time.Time

	mu  sync.Mutex
	tok *Token // the last token this process had
}

// Token is an access token with what --check shows about it. AccessToken
// is never printed.
type Token struct {
	AccessToken string    `json:"access_token"`
	Expiry      time.Time `json:"expiry"`
	Obtained    time.Time `json:"obtained"`
	Scope       string    `json:"scope,omitempty"`
	Grant       string    `json:"grant"`
	// Refused, in the cache instead of a token, is the error of an
	// invalid_grant answer, held for refusalHold so that a burst of
	// processes does not hammer the endpoint with a dead grant.
	Refused string `json:"refused,omitempty"`
}

// String describes the token without its value.
func (t *Token) String() string {
	if t == nil {
		return "no token"
	}
	return fmt.Sprintf("grant %s, expires %s, scope %q", t.Grant, t.Expiry.Format(time.RFC3339), t.Scope)
}

// New returns the token source for a smarthost with username user and
// [oauth2] table cfg. The cache lives in queueDir/oauth2 (created like
// the queue's directories: same mode and group); with queueDir "" tokens
// are kept in memory only. timeout bounds each token request.
func New(cfg *config.OAuth2, user, queueDir string, timeout time.Duration) *Source {
	s := &Source{cfg: cfg, user: user, timeout: timeout}
	if timeout <= 0 {
		s.timeout = 30 * time.Second
	}
	if queueDir != "" {
		s.cacheDir = filepath.Join(queueDir, CacheSubdir)
	}
	h := sha256.New()
	for _, part := range []string{cfg.Grant, cfg.TokenURL, cfg.ClientID, strings.Join(cfg.Scopes, " "), user,
		cfg.RefreshTokenFile, cfg.ServiceAccountKey} {
		h.Write([]byte(part))
		h.Write([]byte{0})
	}
	s.key = "token-" + hex.EncodeToString(h.Sum(nil))[:24]
	return s
}

func (s *Source) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// valid reports whether t may still be used for a new session.
func (s *Source) valid(t *Token) bool {
	if t == nil || t.AccessToken == "" {
		return false
	}
	margin := refreshMargin
	if life := t.Expiry.Sub(t.Obtained); life > 0 && life/2 < margin {
		margin = life / 2
	}
	return s.now().Before(t.Expiry.Add(-margin))
}

// Token returns a valid access token: this process's, the cache's, or a
// new one from the token endpoint (one process at a time asks).
func (s *Source) Token(ctx context.Context) (string, error) {
	t, err := s.get(ctx, "")
	if err != nil {
		return "", err
	}
	return t.AccessToken, nil
}

// Fresh returns an access token other than stale: the cache's when
// another process replaced stale meanwhile, else a new one.
func (s *Source) Fresh(ctx context.Context, stale string) (string, error) {
	t, err := s.get(ctx, stale)
	if err != nil {
		return "", err
	}
	return t.AccessToken, nil
}

// Current returns the token --check reports, getting one if needed.
func (s *Source) Current(ctx context.Context) (*Token, error) {
	return s.get(ctx, "")
}

// get is Token and Fresh: a usable token that is not stale.
func (s *Source) get(ctx context.Context, stale string) (*Token, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	usable := func(t *Token) bool { return s.valid(t) && (stale == "" || t.AccessToken != stale) }
	if usable(s.tok) {
		return s.tok, nil
	}
	// fromCache is the cache file's token when usable, or the refusal
	// it holds; neither, it returns nil, nil.
	fromCache := func() (*Token, error) {
		t := s.readCache()
		if usable(t) {
			s.tok = t
			return t, nil
		}
		return nil, s.refused(t)
	}
	if t, err := fromCache(); t != nil || err != nil {
		return t, err
	}
	unlock, lockErr := s.lock(ctx)
	if lockErr == nil {
		defer unlock()
		// Another process may have refreshed while we waited.
		if t, err := fromCache(); t != nil || err != nil {
			return t, err
		}
	} else if ctx.Err() != nil {
		return nil, tokenError(nil, "waiting for another process's token request: %v", ctx.Err())
	}
	// Without the lock (no usable cache directory) every process asks
	// for itself; that costs requests, not mail.
	t, err := s.fetch(ctx)
	if err != nil {
		var e *Error
		if lockErr == nil && errors.As(err, &e) && e.invalid {
			s.writeCache(&Token{Grant: s.cfg.Grant, Obtained: s.now(), Refused: e.msg})
		}
		return nil, err
	}
	s.tok = t
	if lockErr == nil {
		s.writeCache(t)
	}
	return t, nil
}

// refused returns the invalid_grant error a recent request left in the
// cache (and tells the administrator again), or nil.
func (s *Source) refused(t *Token) error {
	if t == nil || t.Refused == "" || !s.now().Before(t.Obtained.Add(refusalHold)) {
		return nil
	}
	// A refresh token written since (--oauth2-login, or by hand) is
	// worth asking about at once.
	if f := s.cfg.RefreshTokenFile; f != "" {
		if st, err := os.Stat(f); err == nil && st.ModTime().After(t.Obtained) {
			return nil
		}
	}
	s.notice(t.Refused)
	return &Error{msg: t.Refused, invalid: true}
}

// Forget removes this configuration's cached token, so that the next
// process asks the endpoint (after --oauth2-login wrote a new grant).
func (s *Source) Forget() {
	if s.cacheDir != "" {
		os.Remove(s.cachePath())
	}
}

// httpClient is the client for the token endpoint: the configured roots,
// a timeout, and no proxy from the environment, which is the caller's
// and not trusted (SPEC §9).
func (s *Source) httpClient() *http.Client {
	tr := &http.Transport{
		Proxy:               nil,
		TLSClientConfig:     &tls.Config{RootCAs: s.cfg.RootCAs, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout: s.timeout,
		MaxIdleConns:        1,
		IdleConnTimeout:     time.Second,
	}
	return &http.Client{
		Transport: tr,
		Timeout:   s.timeout,
		// A token endpoint does not redirect; following one would send
		// the secret's request elsewhere.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// ensureCacheDir creates the cache directory with the queue directory's
// group permissions (and its setgid bit, so files get its group).
func (s *Source) ensureCacheDir() error {
	parent, err := os.Stat(filepath.Dir(s.cacheDir))
	if err != nil {
		return err
	}
	if !parent.IsDir() {
		return fmt.Errorf("%s is not a directory", filepath.Dir(s.cacheDir))
	}
	err = os.Mkdir(s.cacheDir, 0o700)
	if err == nil {
		mode := parent.Mode().Perm()&0o770 | parent.Mode()&os.ModeSetgid
		return os.Chmod(s.cacheDir, mode)
	}
	if errors.Is(err, os.ErrExist) {
		st, err := os.Lstat(s.cacheDir)
		if err != nil {
			return err
		}
		if !st.IsDir() {
			return fmt.Errorf("%s is not a directory", s.cacheDir)
		}
		return nil
	}
	return err
}

// lock takes the exclusive lock of this configuration's cache, waiting
// (bounded by ctx and the request timeout) while another process holds
// it.
func (s *Source) lock(ctx context.Context) (unlock func(), err error) {
	if s.cacheDir == "" {
		return nil, errors.New("no cache directory")
	}
	if err := s.ensureCacheDir(); err != nil {
		return nil, err
	}
	return s.lockFile(ctx, filepath.Join(s.cacheDir, s.key+".lock"))
}

// lockFile takes an exclusive flock on path (created when missing).
func (s *Source) lockFile(ctx context.Context, path string) (unlock func(), err error) {
	// flock works on a read-only descriptor: group read is all another
	// caller needs. The creator sets the mode whatever its umask.
	f, err := os.OpenFile(path, os.O_RDONLY|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o640)
	if err != nil {
		return nil, err
	}
	if st, err := f.Stat(); err == nil && statUid(st) == os.Geteuid() && st.Mode().Perm() != 0o640 {
		f.Chmod(0o640)
	}
	// The holder makes at most two requests (token, nothing else) of
	// s.timeout each; wait a little longer than that.
	deadline := time.Now().Add(2*s.timeout + 5*time.Second)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return func() { f.Close() }, nil // closing releases the lock
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) && !errors.Is(err, syscall.EINTR) {
			f.Close()
			return nil, err
		}
		if time.Now().After(deadline) {
			f.Close()
			return nil, errors.New("the cache lock is held too long")
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, ctx.Err()
		case <-time.After(lockPoll):
		}
	}
}

func (s *Source) cachePath() string { return filepath.Join(s.cacheDir, s.key+".json") }

// readCache returns the cached token, or nil when there is none that
// belongs to this configuration.
func (s *Source) readCache() *Token {
	if s.cacheDir == "" {
		return nil
	}
	b, _, err := readSmall(s.cachePath())
	if err != nil {
		return nil
	}
	var t Token
	if json.Unmarshal(b, &t) != nil || t.Grant != s.cfg.Grant {
		return nil
	}
	return &t
}

// writeCache replaces the cache file atomically (rename). Failing to
// cache costs a request next time, not mail, so errors are ignored.
func (s *Source) writeCache(t *Token) {
	b, err := json.Marshal(t)
	if err != nil {
		return
	}
	_ = writeAtomic(s.cachePath(), b, 0o640, -1, false)
}

// writeAtomic writes data to a new file beside path and renames it over
// path: readers see the old content or the new, never a part. mode is
// applied whatever the umask; gid >= 0 is set when allowed. With sync the
// file and directory are fsynced (a refresh token must survive a crash).
func writeAtomic(path string, data []byte, mode os.FileMode, gid int, sync bool) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if gid >= 0 {
		_ = f.Chown(-1, gid) // chown before chmod keeps the mode
	}
	if err := f.Chmod(mode); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if sync {
		if err := f.Sync(); err != nil {
			return err
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	if sync {
		if d, err := os.Open(dir); err == nil {
			d.Sync()
			d.Close()
		}
	}
	return nil
}

// readSmall reads a regular file (not through a symlink, nothing that
// could block) of at most maxCacheFile bytes, and returns its mode too.
func readSmall(path string) ([]byte, os.FileMode, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, 0, err
	}
	if !st.Mode().IsRegular() {
		return nil, 0, errors.New("not a regular file")
	}
	b, err := io.ReadAll(io.LimitReader(f, maxCacheFile+1))
	if err != nil {
		return nil, 0, err
	}
	if len(b) > maxCacheFile {
		return nil, 0, fmt.Errorf("larger than %d bytes", maxCacheFile)
	}
	return b, st.Mode(), nil
}

// readSecretLine reads the first line of a secret file (client secret,
// refresh token), refusing one that all users may read.
func readSecretLine(key, path string) (string, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return "", fileError(key, path, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", fileError(key, path, err)
	}
	if !st.Mode().IsRegular() {
		return "", tokenError(nil, "%s %s is not a regular file", key, path)
	}
	if st.Mode().Perm()&0o004 != 0 {
		return "", tokenError(nil, "%s %s is readable by all users (mode %04o); chmod 640 it", key, path, st.Mode().Perm())
	}
	b, err := io.ReadAll(io.LimitReader(f, maxCacheFile))
	if err != nil {
		return "", fileError(key, path, err)
	}
	line, _, _ := strings.Cut(string(b), "\n")
	line = strings.TrimSpace(line)
	if line == "" {
		return "", tokenError(nil, "%s %s: the first line is empty", key, path)
	}
	return line, nil
}

func fileError(key, path string, err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		err = pe.Err
	}
	return tokenError(err, "%s %s: %v", key, path, err)
}
