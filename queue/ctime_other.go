//go:build !linux

package queue

import (
	"io/fs"
	"time"
)

// ctime falls back to the modification time outside Linux.
func ctime(fi fs.FileInfo) time.Time { return fi.ModTime() }
