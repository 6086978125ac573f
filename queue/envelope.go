package queue

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"relaymail/message"
	"strings"
	"time"
)

// envVersion is the version of an env file that holds the envelope
// line and the header block, the body being in body/ID. A file of
// another version than envVersion and combinedVersion is refused rather
// than misread.
const envVersion = 1

// combinedVersion is the version of an env file that holds the whole
// message: the envelope line, the header block, then the body. Commit
// writes a message that fits in memory this way (see the package
// comment): one file, one fsync, one directory fsync.
const combinedVersion = 2

// maxCombinedBody is the largest body written in a combined file: a body
// of this size or less is held in memory anyway (sendmail spools 256 KiB
// in memory).
const maxCombinedBody = 256 << 10

// Envelope is what the queue keeps about a message besides its body: the
// SMTP envelope, the rewritten header block and the retry state. A runner
// changes the retry fields and calls Item.Update.
type Envelope struct {
	ID string `json:"id"` // set by Commit when empty
	// Envelope is the message's, as sendmail made it and relay sends it;
	// To holds the recipients still to deliver.
	message.Envelope
	Delivered   []string  `json:"delivered,omitempty"`  // already accepted by the smarthost (for the DSN)
	Created     time.Time `json:"created"`              // when relaymail accepted it; Commit sets it when zero
	Attempts    int       `json:"attempts"`             // failed delivery attempts so far
	NextAttempt time.Time `json:"next_attempt"`         // not before; zero = at once
	LastError   string    `json:"last_error,omitempty"` // one line, for mailq and the DSN
	BodySize    int64     `json:"body_size"`            // set by Commit; checked by Lock
	// BodyOffset is where the body starts in body/ID: 0, or the length
	// of the envelope line and the header when body/ID is a combined
	// file (its envelope may since have been replaced by a plain one).
	BodyOffset int64  `json:"body_offset,omitempty"`
	Header     []byte `json:"-"` // the header block, blank line included, as sent

	// combined says the env file read is a combined one: it holds the
	// body, and body/ID is a second name of it (see the package comment).
	combined bool
}

// Size is the length of the whole message (header block and body) in
// octets, as mailq shows it and as SIZE= announces it.
func (e *Envelope) Size() int64 { return int64(len(e.Header)) + e.BodySize }

// Due reports whether a runner that honours the retry schedule should try
// the message at now.
func (e *Envelope) Due(now time.Time) bool { return !now.Before(e.NextAttempt) }

// envFile is the JSON line of an env file.
type envFile struct {
	Version    int `json:"v"`
	HeaderSize int `json:"header_size"`
	Envelope
}

// validate refuses an envelope that could not be delivered safely: a
// field that would end up in an SMTP command must hold no control
// characters.
func (e *Envelope) validate() error {
	if !ValidID(e.ID) {
		return fmt.Errorf("invalid message id %q", e.ID)
	}
	if e.BodySize < 0 || e.Attempts < 0 || e.BodyOffset < 0 {
		return errors.New("negative body_size, body_offset or attempts")
	}
	fields := append([]string{e.From, e.Ret, e.EnvID}, e.To...)
	fields = append(fields, e.Notify...)
	fields = append(fields, e.Delivered...)
	for _, f := range fields {
		for i := 0; i < len(f); i++ {
			if f[i] < ' ' || f[i] == 0x7f {
				return fmt.Errorf("control character in envelope field %q", f)
			}
		}
	}
	for _, r := range e.To {
		if r == "" {
			return errors.New("empty recipient")
		}
	}
	return nil
}

// encodeEnvelope renders a plain env file (envVersion): the JSON line,
// then the header.
func encodeEnvelope(e *Envelope) ([]byte, error) {
	c := *e
	c.combined = false
	line, err := envLine(&c)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(line)+1+len(e.Header))
	out = append(out, line...)
	out = append(out, '\n')
	return append(out, e.Header...), nil
}

// encodeCombined renders a combined env file (combinedVersion): the JSON
// line, the header, then body. It sets e.BodyOffset and e.combined.
func encodeCombined(e *Envelope, body []byte) ([]byte, error) {
	c := *e
	c.combined, c.BodyOffset, c.BodySize = true, 0, int64(len(body))
	line, err := envLine(&c)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(line)+1+len(e.Header)+len(body))
	out = append(out, line...)
	out = append(out, '\n')
	out = append(out, e.Header...)
	c.BodyOffset = int64(len(out))
	*e = c
	return append(out, body...), nil
}

// envLine is the JSON line of e's env file, without its newline: of a
// combined file when e.combined (without body_offset, which follows from
// the line's length), else of a plain one.
func envLine(e *Envelope) ([]byte, error) {
	if err := e.validate(); err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	f := envFile{Version: envVersion, HeaderSize: len(e.Header), Envelope: *e}
	if e.combined {
		f.Version, f.BodyOffset = combinedVersion, 0
	}
	line, err := json.Marshal(f)
	if err != nil {
		return nil, fmt.Errorf("queue: %w", err)
	}
	return line, nil
}

// decodeLine parses the envelope line of an env file in which rest
// octets follow the line's newline, and checks the sizes the line gives
// against rest: the header for a plain file, the header and the body for
// a combined one. It returns the envelope without its Header, and the
// header's length. A pass over the queue (Walk) reads no more than this,
// so it holds one line, not one header block, per message it looks at.
func decodeLine(line []byte, rest int64) (*Envelope, int, error) {
	var v struct {
		Version int `json:"v"`
	}
	if err := json.Unmarshal(line, &v); err != nil {
		return nil, 0, fmt.Errorf("envelope line: %w", err)
	}
	if v.Version != envVersion && v.Version != combinedVersion {
		return nil, 0, fmt.Errorf("envelope format version %d, not %d or %d", v.Version, envVersion, combinedVersion)
	}
	var f envFile
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, 0, fmt.Errorf("envelope line: %w", err)
	}
	e := f.Envelope
	if v.Version == combinedVersion {
		switch {
		case f.BodyOffset != 0:
			return nil, 0, errors.New("body_offset in a combined envelope")
		case f.HeaderSize < 0 || f.BodySize < 0 || rest != int64(f.HeaderSize)+f.BodySize:
			return nil, 0, fmt.Errorf("header and body are %d bytes, envelope says %d and %d", rest, f.HeaderSize, f.BodySize)
		}
		rest = int64(f.HeaderSize)
		e.BodyOffset, e.combined = int64(len(line)+1+f.HeaderSize), true
	}
	if int64(f.HeaderSize) != rest {
		return nil, 0, fmt.Errorf("header is %d bytes, envelope says %d", rest, f.HeaderSize)
	}
	if err := e.validate(); err != nil {
		return nil, 0, err
	}
	return &e, f.HeaderSize, nil
}

// readEnv reads and decodes one env file; an error names the file. A
// missing file gives an error that matches fs.ErrNotExist, which callers
// racing with a runner check. It reads the envelope line and the header
// block, never the body of a combined file (Lock runs it for every
// delivery).
func readEnv(path string) (*Envelope, error) {
	e, _, err := readEnvFile(path, nil, true)
	return e, err
}

// readEnvLine is readEnv without the header block: it reads the envelope
// line alone and checks the sizes it gives against the file's, so a file
// it accepts is one readEnv accepts too. buf is reused from call to
// call; the line read is returned as the new buf.
func readEnvLine(path string, buf []byte) (*Envelope, []byte, error) {
	return readEnvFile(path, buf, false)
}

// readEnvFile is readEnv (withHeader) and readEnvLine: the envelope line
// is read into buf, then the header, if asked for, from what buf holds
// past the line and the file.
func readEnvFile(path string, buf []byte, withHeader bool) (*Envelope, []byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, buf, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, buf, fmt.Errorf("queue: %s: %w", path, err)
	}
	if st.Size() > maxEnvSize {
		return nil, buf, fmt.Errorf("queue: %s: corrupt: larger than %d bytes", path, maxEnvSize)
	}
	// The line is a few hundred octets: read a block, more only for a
	// line that does not fit in it (thousands of recipients).
	buf = buf[:0]
	nl := -1
	for nl < 0 && int64(len(buf)) < st.Size() {
		if len(buf) == cap(buf) {
			buf = append(buf, make([]byte, max(4096, len(buf)))...)[:len(buf)]
		}
		n, err := f.Read(buf[len(buf):min(cap(buf), int(st.Size()))])
		nl = bytes.IndexByte(buf[len(buf):len(buf)+n], '\n')
		if nl >= 0 {
			nl += len(buf)
		}
		buf = buf[:len(buf)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, buf, fmt.Errorf("queue: %s: %w", path, err)
		}
	}
	if nl < 0 {
		return nil, buf, fmt.Errorf("queue: %s: corrupt: no end to the envelope line", path)
	}
	e, headerSize, err := decodeLine(buf[:nl], st.Size()-int64(nl)-1)
	if err != nil {
		return nil, buf, fmt.Errorf("queue: %s: corrupt: %w", path, err)
	}
	if withHeader {
		e.Header = make([]byte, headerSize)
		n := copy(e.Header, buf[nl+1:])
		if _, err := f.ReadAt(e.Header[n:], int64(nl+1+n)); err != nil {
			return nil, buf, fmt.Errorf("queue: %s: %w", path, err)
		}
	}
	return e, buf, nil
}

// writeEnv replaces path with e atomically and durably: temporary file in
// tmp/, fsync, rename, fsync of path's directory.
func (q *Queue) writeEnv(path string, e *Envelope) error {
	data, err := encodeEnvelope(e)
	if err != nil {
		return err
	}
	if err := q.step("env-create"); err != nil {
		return err
	}
	f, err := os.CreateTemp(q.path(dirTmp, ""), "env-"+e.ID+"-*")
	if err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if err := f.Chmod(q.fileMode); err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	if err := q.step("env-write"); err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	if err := q.step("env-rename"); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("queue: %w", err)
	}
	ok = true
	e.combined = false
	return syncDir(filepath.Dir(path))
}

// updateInPlace overwrites the JSON line of the env file at path with e's,
// padded with spaces to the old line's length, without changing the
// file's size: on a full disk, overwriting blocks a file already has
// needs no new one (Postfix marks delivered recipients in its queue file
// the same way). To fit, the next attempt is kept to the second, then
// the last error is shortened, then the recipients newly delivered are
// left out of Delivered (they only feed a later DSN); the recipients still
// to go, the attempt count and the next attempt are always exact. The
// line is a few hundred octets at offset 0, written with one pwrite and
// fsynced; the header after it is not touched.
func (q *Queue) updateInPlace(path string, e *Envelope) error {
	if err := q.step("env-inplace"); err != nil {
		return err
	}
	old, err := readEnv(path)
	if err != nil {
		return err
	}
	if !bytes.Equal(old.Header, e.Header) {
		return errors.New("the header changed")
	}
	oldLine, err := envLine(old)
	if err != nil {
		return err
	}
	c := *e
	c.NextAttempt = c.NextAttempt.UTC().Truncate(time.Second)
	line, err := envLine(&c)
	for err == nil && len(line) > len(oldLine) && c.LastError != "" {
		cut := max(len(c.LastError)-(len(line)-len(oldLine))-3, 0)
		c.LastError = strings.ToValidUTF8(c.LastError[:cut], "")
		if c.LastError != "" {
			c.LastError += "..."
		}
		line, err = envLine(&c)
	}
	if err == nil && len(line) > len(oldLine) {
		c.Delivered = old.Delivered
		line, err = envLine(&c)
	}
	if err != nil {
		return err
	}
	if len(line) > len(oldLine) {
		return fmt.Errorf("the new envelope line is %d octets, the old one %d", len(line), len(oldLine))
	}
	line = append(line, bytes.Repeat([]byte(" "), len(oldLine)-len(line))...)
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	_, err = f.WriteAt(line, 0)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	*e = c
	return nil
}

func (q *Queue) step(name string) error {
	if q.hook != nil {
		return q.hook(name)
	}
	return nil
}
