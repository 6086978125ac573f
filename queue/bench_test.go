package queue

import (
	"bytes"
	"testing"
)

// BenchmarkCommit measures queueing one 4 KiB message, fsyncs included.
func BenchmarkCommit(b *testing.B) {
	q, err := Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	body := bytes.Repeat([]byte("x"), 4096)
	for b.Loop() {
		if err := q.Enqueue(testEnvelope([]byte("Subject: x\n\n")), bytes.NewReader(body)); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLockRemove measures what a runner spends in the queue per
// delivered message.
func BenchmarkLockRemove(b *testing.B) {
	q, err := Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	var ids []string
	for range b.N {
		env := testEnvelope([]byte("Subject: x\n\n"))
		if err := q.Enqueue(env, bytes.NewReader([]byte("body"))); err != nil {
			b.Fatal(err)
		}
		ids = append(ids, env.ID)
	}
	b.ResetTimer()
	for _, id := range ids {
		it, err := q.Lock(id)
		if err != nil {
			b.Fatal(err)
		}
		if err := it.Remove(); err != nil {
			b.Fatal(err)
		}
		it.Unlock()
	}
}
