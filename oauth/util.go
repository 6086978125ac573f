package oauth

import (
	"os"
	"syscall"
)

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
