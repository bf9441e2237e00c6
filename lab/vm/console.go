package vm

import (
	"context"
	"fmt"
	"io"
	"os"
	"regexp"
	"time"

	"github.com/bmi-go/bmi/service/fault"
)

// Console is a machine's serial console log. QEMU appends to it across
// power cycles, so a boot's output is what follows the offset taken before
// the power on.
type Console struct {
	// Path of the serial log file.
	Path string
}

// Since returns what the log holds from offset from on.
func (c Console) Since(from int64) ([]byte, error) { return c.readFrom(from) }

// Offset returns the current end of the log (0 if it does not exist yet).
func (c Console) Offset() int64 {
	st, err := os.Stat(c.Path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// Match is what WaitFor found.
type Match struct {
	// Groups are the regexp's match and submatches.
	Groups []string
	// After is how long WaitFor waited.
	After time.Duration
	// End is the log offset just after the match.
	End int64
}

// WaitFor polls the log from offset until re matches the raw bytes (serial
// output carries escape sequences and no reliable line breaks, so match
// substrings and end a pattern with \s to be sure a token is complete), or
// until timeout or ctx ends: then the error is ErrUnavailable and names the
// last output seen.
func (c Console) WaitFor(ctx context.Context, from int64, re *regexp.Regexp, timeout time.Duration) (Match, error) {
	start := time.Now()
	deadline := start.Add(timeout)
	var buf []byte
	for {
		if b, err := c.readFrom(from); err == nil {
			buf = b
			if loc := re.FindSubmatchIndex(buf); loc != nil {
				var groups []string
				for i := 0; i+1 < len(loc); i += 2 {
					if loc[i] >= 0 {
						groups = append(groups, string(buf[loc[i]:loc[i+1]]))
					} else {
						groups = append(groups, "")
					}
				}
				return Match{Groups: groups, After: time.Since(start), End: from + int64(loc[1])}, nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			tail := buf
			if len(tail) > 300 {
				tail = tail[len(tail)-300:]
			}
			return Match{}, fmt.Errorf("console %s: no %q within %v; last output: %q: %w", c.Path, re, timeout, tail, fault.ErrUnavailable)
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func (c Console) readFrom(from int64) ([]byte, error) {
	f, err := os.Open(c.Path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if _, err := f.Seek(from, io.SeekStart); err != nil {
		return nil, err
	}
	return io.ReadAll(f)
}

// Follow copies the log to w from offset, then keeps copying what is
// appended until ctx ends (tail -f). It returns nil when ctx is done.
func (c Console) Follow(ctx context.Context, from int64, w io.Writer) error {
	off := from
	for {
		b, err := c.readFrom(off)
		if err == nil && len(b) > 0 {
			if _, err := w.Write(b); err != nil {
				return err
			}
			off += int64(len(b))
		} else if err != nil && !os.IsNotExist(err) {
			return fmt.Errorf("console %s: %w", c.Path, err)
		}
		if st, err := os.Stat(c.Path); err == nil && st.Size() < off {
			off = 0 // truncated
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// Markers of the golden image's init (see lab/image).
var (
	// BootedRE matches the boot marker; group 1 is the host name, group 2
	// the boot mode (ibft or local).
	BootedRE = regexp.MustCompile(`BMI-LAB-BOOTED (\S+) mode=(\S+)\s`)
	// StateRE matches the state record line; group 1 is "<host> <count>"
	// or "none".
	StateRE = regexp.MustCompile(`BMI-LAB-STATE (none|\S+ \d+)\s`)
	// FailedRE matches the init's failure marker.
	FailedRE = regexp.MustCompile(`BMI-LAB-FAILED ([^\r\n]*)`)
)

// Tail returns the last max bytes of the log.
func (c Console) Tail(max int64) ([]byte, error) {
	from := c.Offset() - max
	if from < 0 {
		from = 0
	}
	return c.readFrom(from)
}
