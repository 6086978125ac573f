package config

import (
	"context"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"relaymail/relay"
)

// fqdnTimeout bounds the DNS lookups behind the default hostname: sendmail
// must not hang on a broken resolver.
const fqdnTimeout = time.Second

// systemFQDN is the default hostname: os.Hostname when it has a dot, else
// the canonical name found for it (CNAME, then the reverse names of its
// addresses) within fqdnTimeout, else the short name.
func systemFQDN() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "localhost"
	}
	if strings.Contains(h, ".") {
		return h
	}
	ctx, cancel := context.WithTimeout(context.Background(), fqdnTimeout)
	defer cancel()
	if full := resolveFQDN(ctx, net.DefaultResolver, h); full != "" {
		return full
	}
	return h
}

// resolver is the part of *net.Resolver resolveFQDN needs.
type resolver interface {
	LookupCNAME(ctx context.Context, host string) (string, error)
	LookupHost(ctx context.Context, host string) ([]string, error)
	LookupAddr(ctx context.Context, addr string) ([]string, error)
}

// resolveFQDN returns a dotted name for the short name h, or "".
func resolveFQDN(ctx context.Context, r resolver, h string) string {
	if c, err := r.LookupCNAME(ctx, h); err == nil && usableFQDN(c) {
		return strings.TrimSuffix(c, ".")
	}
	addrs, err := r.LookupHost(ctx, h)
	if err != nil {
		return ""
	}
	for _, a := range addrs {
		names, err := r.LookupAddr(ctx, a)
		if err != nil {
			if ctx.Err() != nil {
				return ""
			}
			continue
		}
		for _, n := range names {
			if usableFQDN(n) {
				return strings.TrimSuffix(n, ".")
			}
		}
	}
	return ""
}

func usableFQDN(n string) bool {
	n = strings.ToLower(strings.TrimSuffix(n, "."))
	return strings.Contains(n, ".") && !strings.HasPrefix(n, "localhost") && validDomain(n)
}

// CheckListen is for -bd (SPEC §2a): unless listen_allow_remote is set,
// every listen address must be loopback (127.0.0.0/8, ::1 or localhost),
// so that a default install is never an open relay. The error wraps
// ErrConfig and names every offending address.
func (c *Config) CheckListen() error {
	if c.ListenAllowRemote {
		return nil
	}
	var ps problems
	for _, a := range c.Listen {
		host, _, err := net.SplitHostPort(a)
		if err != nil {
			ps.add("listen address %q must be host:port", a)
			continue
		}
		if !isLoopback(host) {
			ps.add("listen address %q is not loopback; set listen_allow_remote = true to accept mail from the network", a)
		}
	}
	if len(ps) > 0 {
		return &Error{Path: c.Path, Problems: ps}
	}
	return nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(strings.TrimSuffix(host, "."), "localhost") {
		return true
	}
	if i := strings.IndexByte(host, '%'); i >= 0 {
		host = host[:i] // zone
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// String describes the smarthost for logs and -v output, with the
// password redacted.
func (s Smarthost) String() string {
	auth := "no auth"
	if s.Username != "" {
		auth = fmt.Sprintf("auth %s as %q", s.Auth, s.Username)
		if s.pw != nil {
			auth += " password <redacted>"
		}
		if s.OAuth2 != nil {
			auth += " oauth2 " + s.OAuth2.Grant
		}
	}
	return fmt.Sprintf("%s port %d tls %s (%s)", s.Name, s.Port, s.TLS, auth)
}

// smarthostView is what fmt shows of a Smarthost for %+v and %#v: every
// field except the secret.
type smarthostView struct {
	Host          string
	Port          int
	TLS           relay.TLSMode
	TLSVerify     bool
	CAFile        string
	RootCAs       bool
	TLSServerName string
	Username      string
	Password      string
	Auth          relay.AuthMechanism
	Timeout       time.Duration
	DataTimeout   time.Duration
}

// Format implements fmt.Formatter so that no verb (%v, %+v, %#v, %s, %q,
// %x...) can print the password, also when a Smarthost is printed inside
// a Config or a slice.
func (s Smarthost) Format(f fmt.State, verb rune) {
	if verb == 'v' && (f.Flag('+') || f.Flag('#')) {
		v := smarthostView{
			Host: s.Name, Port: s.Port, TLS: s.TLS, TLSVerify: s.TLSVerify, CAFile: s.CAFile,
			RootCAs: s.RootCAs != nil, TLSServerName: s.TLSServerName, Username: s.Username,
			Auth: s.Auth, Timeout: s.Timeout, DataTimeout: s.DataTimeout,
		}
		if s.pw != nil {
			v.Password = "<redacted>"
		}
		fmt.Fprintf(f, fmt.FormatString(f, verb), v)
		return
	}
	fmt.Fprintf(f, fmt.FormatString(f, verb), s.String())
}
