package queue

import (
	"io/fs"
	"syscall"
	"time"
)

// ctime is the inode's change time: a link or a write updates it, and no
// user can set it back.
func ctime(fi fs.FileInfo) time.Time {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return time.Unix(st.Ctim.Unix())
	}
	return fi.ModTime()
}
