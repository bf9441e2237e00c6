// Package hil is BMI's client of HIL, the Hardware Isolation Layer: the
// /v0 REST calls BMI needs (those the original BMI made) to look up a
// node's NICs and MACs, connect and detach NICs to and from VLAN networks
// (waiting for HIL's asynchronous networking action to finish), control
// power and boot device, and resolve an operator's credentials into a
// principal (authenticated? admin? member of a project?).
//
// Credentials are given per call: BMI forwards the operator's own HIL user
// and password, so HIL's authorisation applies to what BMI does on their
// behalf. HIL's errors are classified into service/fault kinds (see Error).
package hil

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/bmi-go/bmi/service/fault"
	"github.com/bmi-go/bmi/service/logging"
)

// Credentials are an operator's HIL user name and password (HTTP basic).
type Credentials struct {
	User     string
	Password logging.Secret
}

// LogValue shows the user only.
func (c Credentials) LogValue() slog.Value { return slog.StringValue(c.User) }

// Client calls one HIL. It is safe for concurrent use.
type Client struct {
	base          string // ends in /v0
	hc            *http.Client
	log           *slog.Logger
	pollMin       time.Duration
	pollMax       time.Duration
	actionTimeout time.Duration
}

// Option configures a Client.
type Option func(*Client)

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(c *Client) { c.log = l } }

// withPolling sets the back-off of the networking-action wait: the first
// delay and the largest one (defaults 50ms and 1s; each delay doubles).
// Tests shorten it (export_test.go).
func withPolling(first, max time.Duration) Option {
	return func(c *Client) {
		if first > 0 {
			c.pollMin = first
		}
		if max >= c.pollMin {
			c.pollMax = max
		}
	}
}

// WithActionTimeout bounds the wait for one networking action (default 2
// minutes); the context's deadline, if earlier, wins.
func WithActionTimeout(d time.Duration) Option {
	return func(c *Client) {
		if d > 0 {
			c.actionTimeout = d
		}
	}
}

// New returns a client of the HIL at baseURL ("http://hil:5000"; a
// trailing "/v0" is optional). hc nil means an http.Client with a 30 s
// timeout per request.
func New(baseURL string, hc *http.Client, opts ...Option) *Client {
	base := strings.TrimRight(baseURL, "/")
	if !strings.HasSuffix(base, "/v0") {
		base += "/v0"
	}
	if hc == nil {
		hc = &http.Client{Timeout: 30 * time.Second}
	}
	c := &Client{base: base, hc: hc, log: logging.Discard(), pollMin: 50 * time.Millisecond,
		pollMax: time.Second, actionTimeout: 2 * time.Minute}
	for _, o := range opts {
		o(c)
	}
	return c
}

// do sends one call and decodes a 2xx JSON answer into out (if not nil).
// path segments must already be escaped (use p()).
func (c *Client) do(ctx context.Context, cred Credentials, op, method, path string, in, out any) error {
	err := c.send(ctx, cred, op, method, path, in, out)
	var he *Error
	if errors.As(err, &he) && he.Status == http.StatusUnauthorized {
		he.Kind = c.classify401(ctx, cred)
	}
	return err
}

func (c *Client) send(ctx context.Context, cred Credentials, op, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fault.Errorf(fault.Internal, "hil: %s: encode request: %v", op, err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, body)
	if err != nil {
		return fault.Errorf(fault.Invalid, "hil: %s: %v", op, err)
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.SetBasicAuth(cred.User, cred.Password.Reveal())
	start := time.Now()
	resp, err := c.hc.Do(req)
	if err != nil {
		c.log.Debug("hil call failed", "op", op, "user", cred.User, "err", err)
		return fault.Errorf(fault.Unavailable, "hil: %s: cannot reach HIL at %s: %v", op, c.base, err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return fault.Errorf(fault.Unavailable, "hil: %s: read answer: %v", op, err)
	}
	c.log.Debug("hil call", "op", op, "user", cred.User, "status", resp.StatusCode, "took", time.Since(start))
	if resp.StatusCode >= 300 {
		return answerError(op, resp.StatusCode, raw)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fault.Errorf(fault.Internal, "hil: %s: answer is not the JSON expected: %v", op, err)
	}
	return nil
}

// answerError builds the Error of a non-2xx answer: HIL's {"type", "msg"}
// when the body is that, else the start of the body as the message.
func answerError(op string, status int, raw []byte) *Error {
	e := &Error{Op: op, Status: status}
	var eb struct{ Type, Msg string }
	if json.Unmarshal(raw, &eb) == nil && eb.Type != "" {
		e.Type, e.Msg = eb.Type, eb.Msg
	} else {
		e.Msg = strings.ToValidUTF8(strings.TrimSpace(string(raw)), "?")
		if len(e.Msg) > 200 {
			e.Msg = strings.ToValidUTF8(e.Msg[:200], "") + "..."
		}
		if e.Msg == "" {
			e.Msg = "no message"
		}
	}
	e.Kind = kindOf(e.Status, e.Type)
	return e
}

// probeNode is the node the authentication probe asks for. No site names a
// node so; HIL authenticates a caller before looking the node up, so valid
// credentials get 404 "Node bmi-auth-probe.invalid does not exist." and
// refused ones 401.
const probeNode = "bmi-auth-probe.invalid"

// probe checks the credentials with GET /v0/node/<probeNode>, a call any
// user may make in every HIL version (GET /v0/nodes/free became admin-only
// after v0.3). HIL's database auth backend answers an unknown user with
// 404 "User x does not exist." rather than 401; a 404 that does not name
// the probe node is therefore a refusal too.
func (c *Client) probe(ctx context.Context, cred Credentials) error {
	op := "authenticate user " + quote(cred.User)
	err := c.send(ctx, cred, op, http.MethodGet, "/node/"+p(probeNode), nil, nil)
	var he *Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &he) && he.Status == http.StatusNotFound && strings.Contains(he.Msg, probeNode):
		return nil
	case errors.As(err, &he) && (he.Status == http.StatusNotFound || he.Status == http.StatusUnauthorized):
		he.Kind = fault.Unauthenticated
		return err
	}
	return err
}

// classify401 tells the two meanings of HIL's 401 apart: if the same
// credentials are refused by the probe, they are wrong (Unauthenticated);
// otherwise the user lacks access (Forbidden). It costs one more request,
// on refusals only. If the probe itself fails, the refusal is read as a
// refusal of the credentials, the safer reading.
func (c *Client) classify401(ctx context.Context, cred Credentials) fault.Kind {
	if c.probe(ctx, cred) == nil {
		return fault.Forbidden
	}
	return fault.Unauthenticated
}

// p escapes one path segment.
func p(s string) string { return url.PathEscape(s) }

func quote(s string) string { return fmt.Sprintf("%q", s) }
