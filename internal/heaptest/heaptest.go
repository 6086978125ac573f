// Package heaptest measures, for tests, how much the live heap grows
// before a pass over the queue writes its first line: a pass that holds
// the whole queue in memory shows it there.
package heaptest

import (
	"io"
	"runtime"
)

// Live is the size of the objects still reachable, after a collection.
func Live() uint64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

// GrowthAtFirstWrite returns a writer that passes what it gets on to w
// (nil: nowhere) and a func that says by how many octets the live heap
// grew between this call and the first write (0 when there was none).
func GrowthAtFirstWrite(w io.Writer) (io.Writer, func() int64) {
	if w == nil {
		w = io.Discard
	}
	base := Live()
	var first uint64
	fw := writerFunc(func(p []byte) (int, error) {
		if first == 0 {
			first = Live()
		}
		return w.Write(p)
	})
	return fw, func() int64 {
		if first == 0 {
			return 0
		}
		return int64(first) - int64(base)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }
