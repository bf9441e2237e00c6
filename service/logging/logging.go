// Package logging builds the log/slog loggers of BMI's binaries: text on a
// terminal, JSON otherwise (or as asked), and secrets never written.
//
// Loggers are built once in main and passed down; no package logs through a
// global.
package logging

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
)

// Redacted replaces every secret in log output.
const Redacted = "[redacted]"

// Secret is a string that never shows itself in logs or formatted output.
// Use Reveal where the value is really needed.
type Secret string

// LogValue implements slog.LogValuer.
func (Secret) LogValue() slog.Value { return slog.StringValue(Redacted) }

// String implements fmt.Stringer.
func (Secret) String() string { return Redacted }

// GoString implements fmt.GoStringer, so %#v hides it too.
func (Secret) GoString() string { return Redacted }

// Reveal returns the secret's value.
func (s Secret) Reveal() string { return string(s) }

// secretKeys are attribute keys whose values are redacted whatever their type.
var secretKeys = []string{"password", "passwd", "secret", "token", "authorization", "chap", "keyring_key"}

// IsSecretKey reports whether an attribute key names a secret.
func IsSecretKey(key string) bool {
	k := strings.ToLower(key)
	for _, s := range secretKeys {
		if strings.Contains(k, s) {
			return true
		}
	}
	return false
}

// Options says how to build a logger.
type Options struct {
	// Format is "auto" (text when the writer is a terminal, JSON otherwise),
	// "text" or "json".
	Format string
	// Level is "debug", "info", "warn" or "error"; empty means info.
	Level string
}

// New returns a logger writing to w as opts say.
func New(w io.Writer, opts Options) (*slog.Logger, error) {
	var level slog.Level
	if opts.Level != "" {
		if err := level.UnmarshalText([]byte(opts.Level)); err != nil {
			return nil, fmt.Errorf("log level %q: want debug, info, warn or error", opts.Level)
		}
	}
	ho := &slog.HandlerOptions{Level: level, ReplaceAttr: redact}
	switch opts.Format {
	case "json":
		return slog.New(slog.NewJSONHandler(w, ho)), nil
	case "text":
		return slog.New(slog.NewTextHandler(w, ho)), nil
	case "", "auto":
		if IsTerminal(w) {
			return slog.New(slog.NewTextHandler(w, ho)), nil
		}
		return slog.New(slog.NewJSONHandler(w, ho)), nil
	}
	return nil, fmt.Errorf("log format %q: want auto, text or json", opts.Format)
}

// redact hides the values of attributes whose keys name secrets.
func redact(_ []string, a slog.Attr) slog.Attr {
	if IsSecretKey(a.Key) && a.Value.Kind() != slog.KindGroup {
		return slog.String(a.Key, Redacted)
	}
	return a
}

// IsTerminal reports whether w is a character device (a terminal).
func IsTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// Discard returns a logger that drops everything, for tests and for
// libraries used without logging.
func Discard() *slog.Logger { return slog.New(discard{}) }

type discard struct{}

func (discard) Enabled(context.Context, slog.Level) bool  { return false }
func (discard) Handle(context.Context, slog.Record) error { return nil }
func (d discard) WithAttrs([]slog.Attr) slog.Handler      { return d }
func (d discard) WithGroup(string) slog.Handler           { return d }
