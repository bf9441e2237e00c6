package iscsi

import (
	"context"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"

	"github.com/sirupsen/logrus"
)

var (
	logrusOnce sync.Once
	// gotgtLog is where gotgt's logrus messages go (debug level).
	gotgtLog atomic.Pointer[slog.Logger]
)

// logrusHook forwards gotgt's logrus entries to our slog logger.
type logrusHook struct{}

func (logrusHook) Levels() []logrus.Level { return logrus.AllLevels }

func (logrusHook) Fire(e *logrus.Entry) error {
	if l := gotgtLog.Load(); l != nil {
		// gotgt logs every CHECK CONDITION at WARN; for us they are
		// answers to initiators, not service problems: debug.
		if l.Enabled(context.Background(), slog.LevelDebug) {
			l.Debug("gotgt: "+e.Message, "gotgt_level", e.Level.String())
		}
	}
	return nil
}

// setupLogging silences gotgt's global logrus output and routes it to log at
// debug level. gotgt's logger is package-level: the last Target created wins.
func setupLogging(log *slog.Logger) {
	gotgtLog.Store(log)
	logrusOnce.Do(func() {
		logrus.SetOutput(io.Discard)
		logrus.SetLevel(logrus.WarnLevel)
		logrus.AddHook(logrusHook{})
	})
}
