package hil

import (
	"context"
	"io"
	"net/http"

	"github.com/bmi-go/bmi/service/fault"
)

// Console opens GET /v0/node/<node>/console, HIL's show_console: the
// node's serial console output as a byte stream from now on, until ctx
// ends or the caller closes it (real HIL answers with a redirect to its
// OBM daemon, which the client follows). The stream is not bound by the
// client's per-request timeout. HIL answers 409 when the node's OBM is
// not enabled.
func (c *Client) Console(ctx context.Context, cred Credentials, node string) (io.ReadCloser, error) {
	op := "console of node " + quote(node)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+"/node/"+p(node)+"/console", nil)
	if err != nil {
		return nil, fault.Errorf(fault.Invalid, "hil: %s: %v", op, err)
	}
	req.SetBasicAuth(cred.User, cred.Password.Reveal())
	hc := *c.hc
	hc.Timeout = 0 // a stream; ctx bounds it
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fault.Errorf(fault.Unavailable, "hil: %s: cannot reach HIL at %s: %v", op, c.base, err)
	}
	if resp.StatusCode >= 300 {
		defer resp.Body.Close()
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		e := answerError(op, resp.StatusCode, raw)
		if e.Status == http.StatusUnauthorized {
			e.Kind = c.classify401(ctx, cred)
		}
		return nil, e
	}
	return resp.Body, nil
}
