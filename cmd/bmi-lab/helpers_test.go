package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// labCLI returns a runner of bin's bmi-lab with the lab's --name and --dir
// after the given arguments; a failure carries its stderr.
func labCLI(t *testing.T, bin, name, dir string) func(args ...string) (string, error) {
	return func(args ...string) (string, error) {
		t.Helper()
		var out, errb bytes.Buffer
		c := exec.Command(filepath.Join(bin, "bmi-lab"), append(args, "--name", name, "--dir", dir)...)
		c.Stdout, c.Stderr = &out, &errb
		if err := c.Run(); err != nil {
			return out.String(), &exitError{err, errb.String()}
		}
		return out.String(), nil
	}
}

// apiCaller returns a JSON caller as user: it fails the test unless the
// answer has status want, and returns the decoded object.
func apiCaller(t *testing.T, user, password string) func(method, url, body string, want int) map[string]any {
	return func(method, url, body string, want int) map[string]any {
		t.Helper()
		req, _ := http.NewRequestWithContext(context.Background(), method, url, strings.NewReader(body))
		req.SetBasicAuth(user, password)
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != want {
			t.Fatalf("%s %s: HTTP %d, want %d: %s", method, url, resp.StatusCode, want, b)
		}
		var m map[string]any
		_ = json.Unmarshal(b, &m)
		return m
	}
}
