// Package version holds the build's version and commit, stamped by the
// Makefile with -ldflags -X.
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Version is the release version; "dev" for an unstamped build.
var Version = "dev"

// Commit is the short git commit the binary was built from, when known.
var Commit = ""

// String returns "<version> (<commit>, <go version>)" for --version output.
func String() string {
	c := Commit
	if c == "" {
		c = vcsRevision()
	}
	if c == "" {
		c = "unknown commit"
	}
	return fmt.Sprintf("%s (%s, %s)", Version, c, runtime.Version())
}

func vcsRevision() string {
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return ""
	}
	for _, s := range info.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			return s.Value[:12]
		}
	}
	return ""
}
