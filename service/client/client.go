// Package client is a typed Go client of bmid's JSON API (/api/v1), used by
// the bmi CLI, the acceptance steps and bmi-uat. Errors from the server
// come back as *api.Error values that unwrap to service/fault sentinels,
// so errors.Is(err, fault.ErrNotFound) works across the wire.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/bmi-go/bmi/service/api"
	"github.com/bmi-go/bmi/service/fault"
	"github.com/bmi-go/bmi/service/logging"
)

// Client talks to one bmid as one user.
type Client struct {
	base     *url.URL
	user     string
	password logging.Secret
	hc       *http.Client
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the HTTP client (timeouts, TLS, transport).
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.hc = hc } }

// New returns a client of the bmid at baseURL (e.g. http://127.0.0.1:8080)
// with HIL credentials user and password.
func New(baseURL, user string, password logging.Secret, opts ...Option) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(baseURL, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fault.Errorf(fault.Invalid, "bmid URL %q: want http://host:port or https://host:port", baseURL)
	}
	c := &Client{base: u, user: user, password: password, hc: &http.Client{}}
	for _, o := range opts {
		o(c)
	}
	return c, nil
}

// seg escapes one path segment.
func seg(s string) string { return url.PathEscape(s) }

// request builds a request for path (under /api/v1) with query q.
func (c *Client) request(ctx context.Context, method, path string, q url.Values, body io.Reader) (*http.Request, error) {
	u := *c.base
	u.Path = strings.TrimRight(c.base.Path, "/") + api.Prefix + path
	u.RawPath = strings.TrimRight(c.base.EscapedPath(), "/") + api.Prefix + path
	if len(q) > 0 {
		u.RawQuery = q.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return nil, fault.Errorf(fault.Invalid, "building request: %v", err)
	}
	req.URL.RawPath = u.RawPath
	if c.user != "" {
		req.SetBasicAuth(c.user, c.password.Reveal())
	}
	req.Header.Set("Accept", "application/json")
	return req, nil
}

// send performs req and turns a non-2xx answer into an *api.Error.
func (c *Client) send(req *http.Request) (*http.Response, error) {
	res, err := c.hc.Do(req)
	if err != nil {
		if ctxErr := req.Context().Err(); ctxErr != nil {
			return nil, ctxErr
		}
		return nil, fault.Errorf(fault.Unavailable, "cannot reach bmid at %s: %v", c.base.Host, err)
	}
	if res.StatusCode >= 200 && res.StatusCode < 300 {
		return res, nil
	}
	defer res.Body.Close()
	return nil, decodeError(res)
}

// decodeError reads an error answer.
func decodeError(res *http.Response) error {
	b, _ := io.ReadAll(io.LimitReader(res.Body, 64<<10))
	var eb api.ErrorBody
	if json.Unmarshal(b, &eb) == nil && eb.Error.Kind != "" {
		return &api.Error{Status: res.StatusCode, Kind: fault.Kind(eb.Error.Kind), Message: eb.Error.Message}
	}
	msg := strings.TrimSpace(string(b))
	if msg == "" || strings.HasPrefix(msg, "<") {
		msg = res.Status
	}
	return &api.Error{Status: res.StatusCode, Kind: kindOfStatus(res.StatusCode), Message: msg}
}

// kindOfStatus guesses a kind for an answer without an error body (a
// proxy's, say).
func kindOfStatus(st int) fault.Kind {
	switch st {
	case http.StatusNotFound:
		return fault.NotFound
	case http.StatusConflict:
		return fault.Conflict
	case http.StatusForbidden:
		return fault.Forbidden
	case http.StatusUnauthorized:
		return fault.Unauthenticated
	case http.StatusBadRequest, http.StatusMethodNotAllowed, http.StatusRequestEntityTooLarge:
		return fault.Invalid
	case http.StatusServiceUnavailable, http.StatusBadGateway, http.StatusGatewayTimeout:
		return fault.Unavailable
	}
	return fault.Internal
}

// do sends a JSON request and decodes a JSON answer into out (unless nil
// or the answer is empty). It returns the operation id header and the
// status.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, in, out any) (string, int, error) {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return "", 0, fault.Errorf(fault.Invalid, "encoding request: %v", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := c.request(ctx, method, path, q, body)
	if err != nil {
		return "", 0, err
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	res, err := c.send(req)
	if err != nil {
		return "", 0, err
	}
	defer res.Body.Close()
	op := res.Header.Get(api.OperationHeader)
	if res.StatusCode == http.StatusAccepted {
		var a api.Accepted
		if err := json.NewDecoder(res.Body).Decode(&a); err != nil {
			return op, res.StatusCode, fault.Errorf(fault.Internal, "bmid answered 202 without an operation: %v", err)
		}
		return a.Operation, res.StatusCode, nil
	}
	if out != nil && res.StatusCode != http.StatusNoContent {
		if err := json.NewDecoder(res.Body).Decode(out); err != nil {
			return op, res.StatusCode, fault.Errorf(fault.Internal, "decoding bmid's answer: %v", err)
		}
	}
	return op, res.StatusCode, nil
}

func (c *Client) get(ctx context.Context, path string, q url.Values, out any) error {
	_, _, err := c.do(ctx, http.MethodGet, path, q, nil, out)
	return err
}

func waitQuery(async bool) url.Values {
	if async {
		return url.Values{"wait": {"false"}}
	}
	return nil
}

// WaitOp waits until operation id has finished and returns it, with an
// error if it did not end done. Without progress it follows the event
// stream (GET /api/v1/events) and falls back to polling every interval if
// the stream cannot be used; with progress it polls, calling progress with
// each state seen (the stream does not carry progress).
func (c *Client) WaitOp(ctx context.Context, id string, interval time.Duration, progress func(api.Operation)) (api.Operation, error) {
	if progress == nil {
		op, ok, err := c.waitOpEvents(ctx, id)
		if err != nil {
			return op, err
		}
		if ok {
			if op.State != api.OpDone {
				return op, opError(op)
			}
			return op, nil
		}
	}
	if interval <= 0 {
		interval = 250 * time.Millisecond
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		op, err := c.Op(ctx, id)
		if err != nil {
			return op, err
		}
		if progress != nil {
			progress(op)
		}
		if op.Finished() {
			if op.State != api.OpDone {
				return op, opError(op)
			}
			return op, nil
		}
		select {
		case <-ctx.Done():
			return op, ctx.Err()
		case <-t.C:
		}
	}
}
