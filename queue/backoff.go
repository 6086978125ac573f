package queue

import (
	"math/rand/v2"
	"time"
)

// The retry schedule: the first retry after BackoffMin, then twice as
// long each time up to BackoffMax, so that a smarthost down for a minute
// costs a minute and one down for a day costs 24 attempts per message.
const (
	BackoffMin = time.Minute
	BackoffMax = time.Hour
)

// Backoff is the delay before the next attempt after attempts failed
// ones: BackoffMin doubling up to BackoffMax, each value spread by ±20%
// so that messages queued together do not retry in lockstep (the longest
// delay is therefore 72 minutes). It is 0 for attempts <= 0. r is the
// random source (nil: the global one), fixed in tests.
func Backoff(attempts int, r *rand.Rand) time.Duration {
	if attempts <= 0 {
		return 0
	}
	d := BackoffMin
	for i := 1; i < attempts && d < BackoffMax; i++ {
		d *= 2
	}
	d = min(d, BackoffMax)
	var f float64
	if r != nil {
		f = r.Float64()
	} else {
		f = rand.Float64()
	}
	// f in [0,1) gives a factor in [0.8, 1.2).
	return time.Duration(float64(d) * (0.8 + 0.4*f))
}
