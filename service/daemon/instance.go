package daemon

import (
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/bmi-go/bmi/service/fault"
)

// instanceLock makes bmid the only one serving its state database: an
// exclusive flock on "<state.path>.lock", held for the process's life and
// released by the kernel when it ends, also by SIGKILL. It is what makes
// fencing at start-up safe: a disk's lock held by another client can only
// belong to a bmid that is no longer running on this state (or to a
// writer that must not write a node's disk).
type instanceLock struct{ f *os.File }

func lockInstance(statePath string) (*instanceLock, error) {
	path := statePath + ".lock"
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("state lock %s: %w", path, err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		b, _ := os.ReadFile(path)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fault.Errorf(fault.Conflict, "another bmid (pid %s) is serving the state database %s: stop it first",
				strings.TrimSpace(string(b)), statePath)
		}
		return nil, fmt.Errorf("state lock %s: %w", path, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return &instanceLock{f: f}, nil
}

func (l *instanceLock) release() {
	if l != nil && l.f != nil {
		_ = syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
		l.f.Close()
		l.f = nil
	}
}
