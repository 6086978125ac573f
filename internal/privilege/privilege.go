// Package privilege gives up the identity relaymail may be installed
// with (setgid to its group, SPEC §9) before the process touches a path
// its caller controls.
//
// The group lets relaymail read the system config and the secrets, and
// write the queue; it must never reach a file named by the caller's
// arguments, variables or home directory. Drop is one-way: the saved
// set-group-ID is replaced too, so nothing later in the process, nor a
// process it starts, can take the group back.
package privilege

import (
	"fmt"
	"os"
	"syscall"
)

// Elevated reports whether the process runs with an identity its caller
// does not have (installed setgid or setuid).
func Elevated() bool {
	return os.Getegid() != os.Getgid() || os.Geteuid() != os.Getuid()
}

// Drop gives up a setgid (or setuid) identity for good: real, effective
// and saved IDs all become the caller's. Go applies the change to every
// thread of the process. It is a no-op when nothing is elevated.
func Drop() error {
	if gid := os.Getgid(); os.Getegid() != gid {
		if err := syscall.Setresgid(gid, gid, gid); err != nil {
			return fmt.Errorf("cannot give up the group: %w", err)
		}
	}
	if uid := os.Getuid(); os.Geteuid() != uid {
		if err := syscall.Setresuid(uid, uid, uid); err != nil {
			return fmt.Errorf("cannot give up the user: %w", err)
		}
	}
	if Elevated() {
		return fmt.Errorf("still running as uid %d gid %d", os.Geteuid(), os.Getegid())
	}
	return nil
}

// steeringVariables are the environment variables through which a caller
// could point code that runs with the group's rights at files or hosts of
// its choosing: the roots that verify the smarthost's certificate (Go's
// crypto/x509 reads SSL_CERT_FILE and SSL_CERT_DIR when it first needs
// the system roots), the resolver's search domain and options, the
// temporary directory, and GODEBUG: Go's runtime honours it in a setgid
// program (secure mode only forces GOTRACEBACK=none), and settings such
// as tlsrsakex, tls3des and tlssha1 turn back on what crypto/tls leaves
// off. Unsetting GODEBUG also resets the settings internal/godebug
// already parsed, so crypto/tls sees the defaults from then on.
var steeringVariables = []string{"SSL_CERT_FILE", "SSL_CERT_DIR", "LOCALDOMAIN", "RES_OPTIONS", "HOSTALIASES", "TMPDIR", "GODEBUG"}

// ScrubEnvironment removes steeringVariables when the process is
// elevated, before anything reads them. A caller's own config (-C) gives
// the group up anyway; the system config's ca_file is the administrator's
// way to change the roots.
func ScrubEnvironment() {
	if !Elevated() {
		return
	}
	for _, name := range steeringVariables {
		os.Unsetenv(name)
	}
}
