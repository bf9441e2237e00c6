package core

import (
	"sort"
	"sync"

	"github.com/bmi-go/bmi/service/fault"
)

// locker serialises operations on the same resources (an image, a node, a
// disk) and lets unrelated ones run in parallel. It does not wait: a second
// operation on a busy resource gets a conflict at once, not a race.
type locker struct {
	mu   sync.Mutex
	held map[string]string // resource key → what holds it
}

func newLocker() *locker { return &locker{held: map[string]string{}} }

// lock takes every key or none; the returned func releases them.
func (l *locker) lock(holder string, keys ...string) (func(), error) {
	sort.Strings(keys)
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range keys {
		if h, busy := l.held[k]; busy {
			return nil, fault.Errorf(fault.Conflict, "%s is busy: %s in progress", k, h)
		}
	}
	for _, k := range keys {
		l.held[k] = holder
	}
	return func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		for _, k := range keys {
			delete(l.held, k)
		}
	}, nil
}

func imageKey(project, name string) string {
	return "image \"" + name + "\" in project \"" + project + "\""
}
func nodeKey(node string) string { return "node \"" + node + "\"" }
