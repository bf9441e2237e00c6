package boot

import (
	"sync"
	"time"
)

// LogLimiter bounds the log lines a flood of bad packets can cause: at
// most Burst lines per Window (defaults 20 per second). The first line
// allowed after a suppressed stretch learns how many were dropped.
type LogLimiter struct {
	// Window and Burst: at most Burst lines per Window.
	Window time.Duration
	Burst  int

	mu         sync.Mutex
	start      time.Time
	n          int
	suppressed int
}

// Allow reports whether a line may be logged now and, if so, how many
// lines were suppressed since the last one allowed.
func (l *LogLimiter) Allow() (ok bool, suppressed int) {
	window, burst := l.Window, l.Burst
	if window <= 0 {
		window = time.Second
	}
	if burst <= 0 {
		burst = 20
	}
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	if now.Sub(l.start) >= window {
		l.start, l.n = now, 0
	}
	if l.n >= burst {
		l.suppressed++
		return false, 0
	}
	l.n++
	s := l.suppressed
	l.suppressed = 0
	return true, s
}
