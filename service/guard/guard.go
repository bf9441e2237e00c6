// Package guard bounds failed authentication attempts: a token bucket per
// key (a source address, a user name) that each failure drains and time
// refills (golang.org/x/time/rate). A key whose bucket is empty is
// throttled: its next attempts are refused before they are checked, so a
// password guesser neither reaches HIL nor learns anything, while other
// sources and users go on as before.
//
// A throttled user name is refused only from sources that have failed
// themselves (Refuse): a guesser spread over many addresses is bounded,
// and the real user (or node), whose own address has not failed, is not
// locked out by someone else's guesses at its name.
package guard

import (
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// maxKeys bounds the keys remembered; past it the table starts afresh (a
// flood of made-up user names cannot grow it without end).
const maxKeys = 65536

// Limiter counts failures per key.
type Limiter struct {
	every rate.Limit
	burst int
	now   func() time.Time

	mu sync.Mutex
	m  map[string]*rate.Limiter
}

// New returns a limiter that lets a key fail burst times at once and
// then once per interval. now nil means time.Now.
func New(interval time.Duration, burst int, now func() time.Time) *Limiter {
	if burst < 1 {
		burst = 1
	}
	if now == nil {
		now = time.Now
	}
	return &Limiter{every: rate.Every(interval), burst: burst, now: now, m: map[string]*rate.Limiter{}}
}

func (l *Limiter) get(key string) *rate.Limiter {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.m[key]
	if !ok {
		if len(l.m) >= maxKeys {
			l.m = map[string]*rate.Limiter{}
		}
		b = rate.NewLimiter(l.every, l.burst)
		l.m[key] = b
	}
	return b
}

// Throttled reports whether key has used up its failures: its attempts
// are to be refused until the bucket refills. An empty key is never
// throttled.
func (l *Limiter) Throttled(key string) bool {
	if l == nil || key == "" {
		return false
	}
	return l.get(key).TokensAt(l.now()) < 1
}

// Failing reports whether key has failed recently (its bucket is not
// full).
func (l *Limiter) Failing(key string) bool {
	if l == nil || key == "" {
		return false
	}
	return l.get(key).TokensAt(l.now()) < float64(l.burst)
}

// Refuse reports whether an attempt from source as user is to be refused
// unchecked: the source is throttled, or the user is and the source has
// failed recently itself.
func (l *Limiter) Refuse(source, user string) bool {
	return l.Throttled(source) || l.Throttled(user) && l.Failing(source)
}

// Fail records one failure of key.
func (l *Limiter) Fail(key string) {
	if l == nil || key == "" {
		return
	}
	l.get(key).AllowN(l.now(), 1)
}
