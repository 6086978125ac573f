package smtptest

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"strings"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// errAuthRequired is the reply to MAIL before AUTH when Options.AuthRequired
// is set (RFC 4954 section 6).
var errAuthRequired = &smtp.SMTPError{Code: 530, EnhancedCode: smtp.EnhancedCode{5, 7, 0}, Message: "Authentication required"}

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

// session records one SMTP session's transaction in progress.
type session struct {
	s        *Server
	conn     *smtp.Conn
	tls      bool
	authUser string

	from     string
	mailOpts smtp.MailOptions
	to       []string
	rcptOpts []smtp.RcptOptions
}

var _ smtp.AuthSession = (*session)(nil)

func (ss *session) Reset() {
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
	if !slices.ContainsFunc(ss.AuthMechanisms(), func(m string) bool { return strings.EqualFold(m, mech) }) {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	switch strings.ToUpper(mech) {
	case sasl.Plain:
		return sasl.NewPlainServer(func(identity, username, password string) error {
			if identity != "" && identity != username {
				return &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "Authorization identity differs from username"}
			}
			return ss.checkPassword(username, password)
		}), nil
	case mechLogin:
		return newLoginServer(ss.checkPassword), nil
	case mechCRAMMD5:
		return newCRAMMD5Server(ss.s.opts.Domain, ss.lookupSecret, ss.authOK), nil
	case mechXOAUTH2:
		return newXOAUTH2Server(ss.checkPassword), nil
	case sasl.OAuthBearer:
		return newOAuthBearerServer(ss.checkPassword), nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

// checkPassword ends an exchange: an injected error wins, then the Users
// map decides.
func (ss *session) checkPassword(username, password string) error {
	if err := ss.injectedAuthErr(); err != nil {
		return err
	}
	want, ok := ss.s.opts.Users[username]
	if !ok || want != password {
		return smtp.ErrAuthFailed
	}
	ss.authUser = username
	return nil
}

func (ss *session) injectedAuthErr() error {
	ss.s.mu.Lock()
	defer ss.s.mu.Unlock()
	return ss.s.authErr
}

func (ss *session) lookupSecret(username string) (string, bool) {
	p, ok := ss.s.opts.Users[username]
	return p, ok
}

func (ss *session) authOK(username string) error {
	if err := ss.injectedAuthErr(); err != nil {
		return err
	}
	ss.authUser = username
	return nil
}

func (ss *session) Mail(from string, opts *smtp.MailOptions) error {
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
		return err
	}
	if dataErr != nil {
		return dataErr
	}
	ss.s.record(Message{
		Helo:        ss.conn.Hostname(),
		AuthUser:    ss.authUser,
		From:        ss.from,
		MailOptions: cloneMailOptions(ss.mailOpts),
		To:          slices.Clone(ss.to),
		RcptOptions: slices.Clone(ss.rcptOpts),
		Data:        buf.Bytes(),
		TLS:         ss.tls,
	})
	return nil
}
