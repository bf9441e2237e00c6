package cephlab

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
)

// BMIDCaps are the capabilities of bmid's own cephx user: RBD on the pool
// (images, snapshots, clones, flatten, exclusive lock) and the monitor's
// rbd profile, which also allows "osd blocklist add" for fencing a dead
// gateway. Nothing on other pools, no admin.
func BMIDCaps(pool string) []string {
	return []string{"mon", "profile rbd", "osd", "profile rbd pool=" + pool, "mgr", "profile rbd pool=" + pool}
}

var clientNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$`)

// ClientKeyringPath is where EnsureClient writes client.<name>'s keyring.
func (c *Cluster) ClientKeyringPath(name string) string {
	return filepath.Join(c.opts.Dir, "ceph.client."+name+".keyring")
}

// EnsureClient creates client.<name> with caps unless it exists (then its
// caps are left alone), writes its keyring (mode 0600) next to ceph.conf
// and returns the keyring's path.
func (c *Cluster) EnsureClient(ctx context.Context, name string, caps []string) (string, error) {
	if !clientNameRe.MatchString(name) {
		return "", fmt.Errorf("ceph lab: client name %q: want letters, digits, '.', '-' or '_'", name)
	}
	path := c.ClientKeyringPath(name)
	args := append([]string{"auth", "get-or-create", "client." + name}, caps...)
	if _, err := c.ceph(ctx, append(args, "-o", path)...); err != nil {
		return "", err
	}
	if err := os.Chmod(path, 0o600); err != nil {
		return "", fmt.Errorf("ceph lab: keyring of client.%s: %w", name, err)
	}
	return path, nil
}
