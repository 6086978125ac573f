package config

import (
	"errors"
	"math"
	"strconv"
	"strings"
	"time"
)

// parseDuration accepts what time.ParseDuration accepts, plus a leading
// whole number of days with a "d" suffix ("5d", "1d12h"), because queue
// lifetimes are naturally counted in days and Go has no day unit.
func parseDuration(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	i := strings.IndexByte(s, 'd')
	if i < 0 {
		return time.ParseDuration(s)
	}
	days, err := strconv.ParseUint(s[:i], 10, 32)
	if err != nil || i == 0 {
		return 0, errors.New("bad number of days")
	}
	const day = 24 * time.Hour
	if days > uint64(math.MaxInt64/int64(day)) {
		return 0, errors.New("too many days")
	}
	d := time.Duration(days) * day
	if rest := s[i+1:]; rest != "" {
		r, err := time.ParseDuration(rest)
		if err != nil {
			return 0, err
		}
		if r < 0 || r > math.MaxInt64-d {
			return 0, errors.New("out of range")
		}
		d += r
	}
	return d, nil
}
