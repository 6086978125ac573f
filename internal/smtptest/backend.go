package smtptest

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// errAuthRequired is the reply to MAIL before AUTH when Options.AuthRequired
// is set (RFC 4954 section 6).
var errAuthRequired = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}

// errLineTooLong answers DATA holding a line over Options.MaxLineLength
// (RFC 5321 section 4.5.3.1.6); go-smtp then closes the connection.
var errLineTooLong = &smtp.SMTPError{Code: 500, EnhancedCode: smtp.EnhancedCode{5, 4, 0}, Message: "Line too long"}

// defaultMechanisms are advertised when Options.Mechanisms is nil.
var defaultMechanisms = []string{sasl.Plain, mechLogin, mechCRAMMD5}

type backend struct{ s *Server }

// NewSession is called by go-smtp at the first EHLO/HELO and again after
// STARTTLS, so the TLS state seen here is the session's.
func (b *backend) NewSession(c *smtp.Conn) (smtp.Session, error) {
	_, isTLS := c.TLSConnectionState()
	if b.s.opts.TLS == TLSImplicit {
		isTLS = true
	}
	return &session{s: b.s, conn: c, tls: isTLS}, nil
}

// session records one SMTP session's transaction in progress. go-smtp runs
// Data in its own goroutine for BDAT, so the fields are under mu.
type session struct {
	s    *Server
	conn *smtp.Conn
	tls  bool

	mu       sync.Mutex
	authUser string
	authMech string
	tried    string // username of the exchange in progress
	from     string
	mailOpts smtp.MailOptions
	to       []string
	rcptOpts []smtp.RcptOptions
}

var _ smtp.AuthSession = (*session)(nil)

func (ss *session) Reset() {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.from, ss.mailOpts, ss.to, ss.rcptOpts = "", smtp.MailOptions{}, nil, nil
}

func (ss *session) Logout() error { return nil }

func (ss *session) AuthMechanisms() []string {
	if len(ss.s.opts.Users) == 0 {
		return nil
	}
	if ss.s.opts.Mechanisms != nil {
		return slices.Clone(ss.s.opts.Mechanisms)
	}
	return slices.Clone(defaultMechanisms)
}

func (ss *session) Auth(mech string) (sasl.Server, error) {
	mech = strings.ToUpper(mech)
	if !slices.ContainsFunc(ss.AuthMechanisms(), func(m string) bool { return strings.EqualFold(m, mech) }) {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	var srv sasl.Server
	switch mech {
	case sasl.Plain:
		srv = sasl.NewPlainServer(func(identity, username, password string) error {
			if identity != "" && identity != username {
				ss.setTried(username)
				return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "Authorization identity differs from username"}
			}
			return ss.checkPassword(username, password)
		})
	case mechLogin:
		srv = newLoginServer(ss.checkPassword)
	case mechCRAMMD5:
		srv = newCRAMMD5Server(ss.s.opts.Domain, ss.lookupSecret, ss.authOK)
	case mechXOAUTH2:
		srv = newXOAUTH2Server(ss.checkPassword)
	case sasl.OAuthBearer:
		srv = newOAuthBearerServer(ss.checkPassword)
	default:
		return nil, smtp.ErrAuthUnknownMechanism
	}
	ss.setTried("")
	return &recordingSASL{Server: srv, ss: ss, mech: mech}, nil
}

// recordingSASL notes the outcome of an exchange once it ends.
type recordingSASL struct {
	sasl.Server
	ss    *session
	mech  string
	ended bool
}

func (r *recordingSASL) Next(response []byte) ([]byte, bool, error) {
	challenge, done, err := r.Server.Next(response)
	if (done || err != nil) && !r.ended {
		r.ended = true
		ok := done && err == nil
		r.ss.mu.Lock()
		if ok {
			r.ss.authMech = r.mech
		}
		a := AuthAttempt{Mechanism: r.mech, Username: r.ss.tried, TLS: r.ss.tls, OK: ok}
		r.ss.mu.Unlock()
		r.ss.s.mu.Lock()
		r.ss.s.auths = append(r.ss.s.auths, a)
		r.ss.s.mu.Unlock()
	}
	return challenge, done, err
}

func (ss *session) setTried(username string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.tried = username
}

// checkPassword ends an exchange: an injected error wins, then the Users
// map decides.
func (ss *session) checkPassword(username, password string) error {
	ss.setTried(username)
	if err := ss.injectedAuthErr(); err != nil {
		return err
	}
	if v := ss.s.opts.Verify; v != nil {
		if !v(username, password) {
			return smtp.ErrAuthFailed
		}
	} else if want, ok := ss.s.opts.Users[username]; !ok || want != password {
		return smtp.ErrAuthFailed
	}
	ss.mu.Lock()
	ss.authUser = username
	ss.mu.Unlock()
	return nil
}

func (ss *session) injectedAuthErr() error {
	ss.s.mu.Lock()
	defer ss.s.mu.Unlock()
	return ss.s.authErr
}

func (ss *session) lookupSecret(username string) (string, bool) {
	ss.setTried(username)
	p, ok := ss.s.opts.Users[username]
	return p, ok
}

func (ss *session) authOK(username string) error {
	if err := ss.injectedAuthErr(); err != nil {
		return err
	}
	ss.mu.Lock()
	ss.authUser = username
	ss.mu.Unlock()
	return nil
}

func (ss *session) Mail(from string, opts *smtp.MailOptions) error {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.s.opts.AuthRequired && ss.authUser == "" {
		return errAuthRequired
	}
	ss.s.mu.Lock()
	err := ss.s.mailErr
	ss.s.mu.Unlock()
	if err != nil {
		return err
	}
	ss.from = from
	if opts != nil {
		ss.mailOpts = cloneMailOptions(*opts)
	}
	return nil
}

func (ss *session) Rcpt(to string, opts *smtp.RcptOptions) error {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	ss.s.mu.Lock()
	err := ss.s.rcptErr[strings.ToLower(to)]
	ss.s.mu.Unlock()
	if err != nil {
		return err
	}
	ss.to = append(ss.to, to)
	var o smtp.RcptOptions
	if opts != nil {
		o = cloneRcptOptions(*opts)
	}
	ss.rcptOpts = append(ss.rcptOpts, o)
	return nil
}

func (ss *session) Data(r io.Reader) error {
	ss.s.mu.Lock()
	dataErr, hook := ss.s.dataErr, ss.s.dataFunc
	ss.s.mu.Unlock()

	var buf bytes.Buffer
	tr := io.TeeReader(r, &buf)
	if hook != nil {
		if err := hook(tr); err != nil {
			if errors.Is(err, ErrDrop) {
				rawConn(ss.conn.Conn()).Close()
			}
			return err
		}
	}
	if _, err := io.Copy(io.Discard, tr); err != nil {
		if errors.Is(err, smtp.ErrTooLongLine) {
			return errLineTooLong
		}
		return err
	}
	if dataErr != nil {
		return dataErr
	}
	ss.mu.Lock()
	m := Message{
		Helo:        ss.conn.Hostname(),
		AuthUser:    ss.authUser,
		AuthMech:    ss.authMech,
		From:        ss.from,
		MailOptions: cloneMailOptions(ss.mailOpts),
		To:          slices.Clone(ss.to),
		RcptOptions: slices.Clone(ss.rcptOpts),
		Data:        buf.Bytes(),
		TLS:         ss.tls,
	}
	ss.mu.Unlock()
	ss.s.record(m)
	return nil
}
