package main

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// TestSetgidCallerCannotWeakenTLS: Go's runtime honours GODEBUG in a
// setgid program (it only forces GOTRACEBACK=none), and GODEBUG can turn
// back on what crypto/tls leaves off by default: RSA key exchange (no
// forward secrecy), 3DES, SHA-1 signatures. A caller of the setgid
// relaymail must not choose how the system's smarthost is reached, so a
// server that speaks only TLS 1.2 with RSA key exchange completes no
// handshake, whatever the caller's GODEBUG says. The control run (the
// same binary, not elevated) shows the variable does take effect.
func TestSetgidCallerCannotWeakenTLS(t *testing.T) {
	w := newSetgidWorld(t)
	cert, certPEM := rsaCert(t)
	ca := filepath.Join(w.dir, "rsa-ca.pem")
	noErr(t, os.WriteFile(ca, certPEM, 0o644))
	l, err := net.Listen("tcp", "127.0.0.1:0")
	noErr(t, err)
	t.Cleanup(func() { l.Close() })
	var handshakes atomic.Int32
	go func() {
		cfg := &tls.Config{
			Certificates: []tls.Certificate{cert},
			MaxVersion:   tls.VersionTLS12,
			CipherSuites: []uint16{tls.TLS_RSA_WITH_AES_128_GCM_SHA256},
		}
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(30 * time.Second))
				s := tls.Server(c, cfg)
				if s.Handshake() == nil {
					handshakes.Add(1)
					s.Write([]byte("421 4.3.2 test over\r\n"))
				}
			}()
		}
	}()
	config := strings.Replace(w.config(l.Addr().(*net.TCPAddr).Port, "never"),
		`tls = "none"`, fmt.Sprintf("tls = \"implicit\"\nca_file = %q", ca), 1)

	// Control: not elevated, the caller's GODEBUG weakens the client.
	cfgFile := filepath.Join(t.TempDir(), "relaymail.toml")
	noErr(t, os.WriteFile(cfgFile, []byte(strings.Replace(config, w.spool, filepath.Join(filepath.Dir(cfgFile), "spool"), 1)), 0o600))
	ctl := exec.Command(binary, "-C", cfgFile, "-i", "a@example.com")
	ctl.Env = append(os.Environ(), "GODEBUG=tlsrsakex=1")
	ctl.Stdin = strings.NewReader(simpleMail)
	ctl.CombinedOutput()
	if handshakes.Load() != 1 {
		t.Fatalf("control: %d handshakes with GODEBUG=tlsrsakex=1, want 1", handshakes.Load())
	}

	w.env = []string{"GODEBUG=tlsrsakex=1,tls3des=1,tlssha1=1"}
	res := w.run("alice", config, []string{"sendmail", "-i", "a@example.com"}, []byte(simpleMail))
	if res.code != 75 {
		t.Errorf("exit %d, want 75; stderr %q", res.code, res.stderr)
	}
	if n := handshakes.Load() - 1; n != 0 {
		t.Errorf("the setgid relaymail completed %d handshakes with RSA key exchange the caller's GODEBUG enabled", n)
	}
}

// rsaCert is a self-signed RSA certificate for 127.0.0.1 (RSA key
// exchange needs an RSA key) and its PEM.
func rsaCert(t *testing.T) (tls.Certificate, []byte) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	noErr(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	noErr(t, err)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key},
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
