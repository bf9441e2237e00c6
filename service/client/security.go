package client

import (
	"context"
	"io"
	"net/http"
	"net/url"
	"strconv"

	"github.com/bmi-go/bmi/service/api"
)

// ACL returns the initiator ACL of a disk's iSCSI target.
func (c *Client) ACL(ctx context.Context, project, disk string) (api.ACL, error) {
	var out api.ACL
	return out, c.get(ctx, "/projects/"+seg(project)+"/targets/"+seg(disk)+"/acl", nil, &out)
}

// ChangeACL adds and removes initiator names of a disk's ACL.
func (c *Client) ChangeACL(ctx context.Context, project, disk string, ch api.ACLChange) (api.ACL, error) {
	var out api.ACL
	_, _, err := c.do(ctx, http.MethodPatch, "/projects/"+seg(project)+"/targets/"+seg(disk)+"/acl", nil, ch, &out)
	return out, err
}

// Audit returns audit log entries, newest first (administrators).
func (c *Client) Audit(ctx context.Context, q api.AuditQuery) ([]api.AuditEntry, error) {
	v := url.Values{}
	for k, s := range map[string]string{"kind": q.Kind, "actor": q.Actor, "source": q.Source} {
		if s != "" {
			v.Set(k, s)
		}
	}
	if q.Limit > 0 {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	var out []api.AuditEntry
	return out, c.get(ctx, "/audit", v, &out)
}

// RotateSecret gives a disk's target a new CHAP secret.
func (c *Client) RotateSecret(ctx context.Context, project, disk string) (api.Target, error) {
	var out api.Target
	_, _, err := c.do(ctx, http.MethodPost, "/projects/"+seg(project)+"/targets/"+seg(disk)+"/rotate-secret", nil, nil, &out)
	return out, err
}

// Credentials returns a disk's CHAP credentials (administrators only).
func (c *Client) Credentials(ctx context.Context, project, disk string) (api.Credentials, error) {
	var out api.Credentials
	return out, c.get(ctx, "/projects/"+seg(project)+"/targets/"+seg(disk)+"/credentials", nil, &out)
}

// BootScript returns the iPXE script of project's node as the node gets
// it, with the CHAP secret hidden.
func (c *Client) BootScript(ctx context.Context, project, node string) (string, error) {
	req, err := c.request(ctx, http.MethodGet, "/projects/"+seg(project)+"/nodes/"+seg(node)+"/boot.ipxe", nil, nil)
	if err != nil {
		return "", err
	}
	resp, err := c.send(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	return string(b), err
}
