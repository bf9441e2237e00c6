// Package cdp drives a headless Chromium through the Chrome DevTools
// Protocol, for tests of the status page in a real browser and for its
// screenshots. It speaks only the few methods those need.
//
// The browser may reach loopback only: every host name is mapped to
// "not found" except 127.0.0.1 and localhost, other traffic goes to a
// proxy that does not exist, and Chromium's background services are off.
package cdp

import (
	"bufio"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"time"

	"golang.org/x/net/websocket"
)

// Browser is one headless Chromium with one page.
type Browser struct {
	cmd *exec.Cmd
	dir string
	ws  *websocket.Conn

	mu sync.Mutex
	id int
}

var devtoolsRE = regexp.MustCompile(`DevTools listening on (ws://127\.0\.0\.1:(\d+)/\S+)`)

// Start runs chromium (the binary's path) headless with a fresh profile.
func Start(ctx context.Context, chromium string) (*Browser, error) {
	dir, err := os.MkdirTemp("", "bmi-cdp-")
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(chromium, "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
		"--remote-debugging-address=127.0.0.1", "--remote-debugging-port=0", "--remote-allow-origins=http://127.0.0.1", "--user-data-dir="+dir,
		"--window-size=1280,900", "--hide-scrollbars",
		// loopback only
		"--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE 127.0.0.1 , EXCLUDE localhost",
		"--proxy-server=127.0.0.1:9", // loopback bypasses a proxy by default
		"--disable-background-networking", "--disable-component-update", "--disable-sync", "--no-first-run",
		"--disable-default-apps", "--disable-domain-reliability", "--disable-client-side-phishing-detection",
		"--disable-features=OptimizationHints,MediaRouter,Translate", "--no-pings", "--metrics-recording-only",
		"about:blank")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	b := &Browser{cmd: cmd, dir: dir}
	port := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sent := false
		for sc.Scan() {
			if m := devtoolsRE.FindStringSubmatch(sc.Text()); m != nil && !sent {
				port <- m[2]
				sent = true
			}
		}
	}()
	var p string
	select {
	case p = <-port:
	case <-time.After(60 * time.Second):
		b.Close()
		return nil, fmt.Errorf("chromium did not open its DevTools port within 60 s")
	case <-ctx.Done():
		b.Close()
		return nil, ctx.Err()
	}
	res, err := http.Get("http://127.0.0.1:" + p + "/json/list")
	if err != nil {
		b.Close()
		return nil, err
	}
	defer res.Body.Close()
	var targets []struct{ Type, WebSocketDebuggerURL string }
	if err := json.NewDecoder(res.Body).Decode(&targets); err != nil {
		b.Close()
		return nil, err
	}
	for _, t := range targets {
		if t.Type == "page" {
			if b.ws, err = websocket.Dial(t.WebSocketDebuggerURL, "", "http://127.0.0.1"); err != nil {
				b.Close()
				return nil, err
			}
			b.ws.MaxPayloadBytes = 64 << 20
			return b, nil
		}
	}
	b.Close()
	return nil, fmt.Errorf("chromium has no page target")
}

// Call sends one CDP command and decodes its result into out (if not nil).
func (b *Browser) Call(method string, params, out any) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.id++
	id := b.id
	if err := websocket.JSON.Send(b.ws, map[string]any{"id": id, "method": method, "params": params}); err != nil {
		return err
	}
	if err := b.ws.SetReadDeadline(time.Now().Add(2 * time.Minute)); err != nil {
		return err
	}
	for {
		var msg struct {
			ID     int             `json:"id"`
			Result json.RawMessage `json:"result"`
			Error  *struct {
				Message string `json:"message"`
			} `json:"error"`
		}
		if err := websocket.JSON.Receive(b.ws, &msg); err != nil {
			return fmt.Errorf("cdp %s: %w", method, err)
		}
		if msg.ID != id {
			continue // an event, or another command's answer
		}
		if msg.Error != nil {
			return fmt.Errorf("cdp %s: %s", method, msg.Error.Message)
		}
		if out != nil {
			return json.Unmarshal(msg.Result, out)
		}
		return nil
	}
}

// Eval evaluates a JavaScript expression in the page and decodes its value
// into out (the test drives the page; the page itself has no script).
func (b *Browser) Eval(expr string, out any) error {
	var res struct {
		Result struct {
			Value json.RawMessage `json:"value"`
		} `json:"result"`
		ExceptionDetails *struct {
			Text string `json:"text"`
		} `json:"exceptionDetails"`
	}
	if err := b.Call("Runtime.evaluate", map[string]any{"expression": expr, "returnByValue": true, "awaitPromise": true}, &res); err != nil {
		return err
	}
	if res.ExceptionDetails != nil {
		return fmt.Errorf("evaluate %q: %s", expr, res.ExceptionDetails.Text)
	}
	if out != nil && len(res.Result.Value) > 0 {
		return json.Unmarshal(res.Result.Value, out)
	}
	return nil
}

// Navigate loads url and waits until the document has loaded.
func (b *Browser) Navigate(url string) error {
	if err := b.Call("Page.navigate", map[string]any{"url": url}, nil); err != nil {
		return err
	}
	return b.WaitLoaded(strings.SplitN(url, "#", 2)[0])
}

// WaitLoaded waits (at most a minute) until the page at a URL starting
// with prefix has loaded completely.
func (b *Browser) WaitLoaded(prefix string) error {
	for end := time.Now().Add(time.Minute); time.Now().Before(end); time.Sleep(50 * time.Millisecond) {
		var st struct{ Href, State string }
		if err := b.Eval(`({href: location.href, state: document.readyState})`, &st); err == nil &&
			st.State == "complete" && strings.HasPrefix(st.Href, prefix) {
			return nil
		}
	}
	return fmt.Errorf("the page %s did not load within a minute", prefix)
}

// Screenshot writes a PNG of the whole page to path.
func (b *Browser) Screenshot(path string) error {
	var res struct{ Data string }
	if err := b.Call("Page.captureScreenshot", map[string]any{"format": "png", "captureBeyondViewport": true}, &res); err != nil {
		return err
	}
	png, err := base64.StdEncoding.DecodeString(res.Data)
	if err != nil {
		return err
	}
	return os.WriteFile(path, png, 0o644)
}

// Close stops the browser and removes its profile.
func (b *Browser) Close() {
	if b.ws != nil {
		b.ws.Close()
	}
	if b.cmd.Process != nil {
		b.cmd.Process.Kill()
		b.cmd.Wait()
	}
	os.RemoveAll(b.dir)
}
