package oauth

import (
	"crypto/sha1"
	"encoding/hex"
	"os"
	"syscall"
)

// sha1Sum is the certificate thumbprint Microsoft's x5t header names
// (RFC 7515 §4.1.7); SHA-1 is what the header is defined with.
func sha1Sum(b []byte) [sha1.Size]byte { return sha1.Sum(b) }

func hexString(b []byte) string { return hex.EncodeToString(b) }

// statGid is the group of a file, or -1.
func statGid(st os.FileInfo) int {
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		return int(sys.Gid)
	}
	return -1
}

// statUid is the owner of a file, or -1.
func statUid(st os.FileInfo) int {
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		return int(sys.Uid)
	}
	return -1
}
