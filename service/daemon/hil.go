package daemon

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bmi-go/bmi/service/core"
	"github.com/bmi-go/bmi/service/fault"
	"github.com/bmi-go/bmi/service/hil"
	"github.com/bmi-go/bmi/service/logging"
)

// hilAuth presents the HIL client as core.Nodes and core.Authorizer, with
// a short cache of positive answers so that every API call does not cost
// HIL round trips. Refusals are never cached: a user added to a project
// gets in at once, and a wrong password is always asked again.
type hilAuth struct {
	c   *hil.Client
	ttl time.Duration
	now func() time.Time

	mu    sync.Mutex
	cache map[string]time.Time // key → expiry of a positive answer
}

var (
	_ core.Nodes      = (*hilAuth)(nil)
	_ core.Authorizer = (*hilAuth)(nil)
)

func newHILAuth(c *hil.Client, ttl time.Duration) *hilAuth {
	return &hilAuth{c: c, ttl: ttl, now: time.Now, cache: map[string]time.Time{}}
}

func creds(who core.Principal) hil.Credentials {
	return hil.Credentials{User: who.User, Password: who.Password}
}

// key identifies a question by user, a hash of the password and what was
// asked, so a changed password never matches an old answer.
func key(who core.Principal, what string) string {
	h := sha256.Sum256([]byte(who.User + "\x00" + who.Password.Reveal()))
	return fmt.Sprintf("%x/%s", h[:12], what)
}

// cached answers a yes/no question from the cache, or asks and caches a yes.
func (a *hilAuth) cached(k string, ask func() (bool, error)) (bool, error) {
	a.mu.Lock()
	exp, ok := a.cache[k]
	a.mu.Unlock()
	if ok && a.now().Before(exp) {
		return true, nil
	}
	yes, err := ask()
	if err == nil && yes && a.ttl > 0 {
		a.mu.Lock()
		if len(a.cache) > 10000 {
			a.cache = map[string]time.Time{}
		}
		a.cache[k] = a.now().Add(a.ttl)
		a.mu.Unlock()
	}
	return yes, err
}

func (a *hilAuth) Authenticate(ctx context.Context, who core.Principal) error {
	_, err := a.cached(key(who, "auth"), func() (bool, error) {
		return true, a.c.Authenticate(ctx, creds(who))
	})
	return err
}

func (a *hilAuth) IsAdmin(ctx context.Context, who core.Principal) (bool, error) {
	return a.cached(key(who, "admin"), func() (bool, error) { return a.c.IsAdmin(ctx, creds(who)) })
}

func (a *hilAuth) ProjectAccess(ctx context.Context, who core.Principal, project string) error {
	_, err := a.cached(key(who, "project/"+project), func() (bool, error) {
		return true, a.c.CheckProjectAccess(ctx, creds(who), project)
	})
	if fault.Of(err) == fault.NotFound {
		// The same answer as for a project that exists: a non-member
		// must not learn which projects there are.
		return fault.Errorf(fault.Forbidden, "user %q has no access to project %q", who.User, project)
	}
	return err
}

func (a *hilAuth) MAC(ctx context.Context, who core.Principal, node, nic string) (string, error) {
	n, err := a.c.ShowNode(ctx, creds(who), node)
	if err != nil {
		return "", err
	}
	c, err := n.NIC(nic)
	if err != nil {
		return "", err
	}
	return c.MAC, nil
}

// hilNetworks presents BMI's own HIL account as core.Networks, making the
// calls idempotent: connecting a NIC that is already on the network, and
// detaching one that is not, succeed.
type hilNetworks struct {
	c    *hil.Client
	cred hil.Credentials
}

var _ core.Networks = hilNetworks{}

// readPassword reads the first line of a password file.
func readPassword(path string) (logging.Secret, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", fmt.Errorf("hil.password_file: %w", err)
	}
	pw, _, _ := strings.Cut(string(b), "\n")
	if pw = strings.TrimRight(pw, "\r"); pw == "" {
		return "", fmt.Errorf("hil.password_file %s: empty", path)
	}
	return logging.Secret(pw), nil
}

// on reports whether the NIC is on the network (on any channel).
func (n hilNetworks) on(ctx context.Context, node, nic, network string) (bool, error) {
	nd, err := n.c.ShowNode(ctx, n.cred, node)
	if err != nil {
		return false, err
	}
	c, err := nd.NIC(nic)
	if err != nil {
		return false, err
	}
	for _, net := range c.Networks {
		if net == network {
			return true, nil
		}
	}
	return false, nil
}

func (n hilNetworks) ConnectNetwork(ctx context.Context, node, nic, network, channel string) error {
	if ok, err := n.on(ctx, node, nic, network); err == nil && ok {
		return nil
	}
	_, err := n.c.ConnectNetwork(ctx, n.cred, node, nic, network, channel)
	if err != nil {
		if ok, oerr := n.on(ctx, node, nic, network); oerr == nil && ok {
			return nil
		}
		return fmt.Errorf("connect NIC %q of node %q to network %q: %w", nic, node, network, err)
	}
	return nil
}

func (n hilNetworks) DetachNetwork(ctx context.Context, node, nic, network string) error {
	if ok, err := n.on(ctx, node, nic, network); err == nil && !ok {
		return nil
	}
	_, err := n.c.DetachNetwork(ctx, n.cred, node, nic, network)
	if err != nil {
		if ok, oerr := n.on(ctx, node, nic, network); oerr == nil && !ok {
			return nil
		}
		return fmt.Errorf("detach NIC %q of node %q from network %q: %w", nic, node, network, err)
	}
	return nil
}

// EnsureNetwork creates a project's provisioning network as HIL's
// administrator (owner admin, open to the project only, on vlan), or
// checks the one that exists is that network.
func (n hilNetworks) EnsureNetwork(ctx context.Context, network, project string, vlan int) error {
	check := func(nw hil.Network) error {
		if id, _ := nw.VLAN(); id != strconv.Itoa(vlan) || !slices.Equal(nw.Access, []string{project}) {
			return fault.Errorf(fault.Conflict, "HIL network %q exists but is not project %q's provisioning network (VLAN %s, access %v; want VLAN %d, access %s): "+
				"remove it from HIL or from boot.networks", network, project, id, nw.Access, vlan, project)
		}
		return nil
	}
	nw, err := n.c.ShowNetwork(ctx, n.cred, network)
	if err == nil {
		return check(nw)
	}
	if !errors.Is(err, fault.ErrNotFound) {
		return err
	}
	err = n.c.CreateNetwork(ctx, n.cred, network, "admin", project, strconv.Itoa(vlan))
	if errors.Is(err, fault.ErrConflict) || errors.Is(err, fault.ErrExists) {
		if nw, serr := n.c.ShowNetwork(ctx, n.cred, network); serr == nil {
			return check(nw)
		}
	}
	if errors.Is(err, fault.ErrForbidden) {
		return fmt.Errorf("create HIL network %q: BMI's HIL account %q must be a HIL administrator to create provisioning networks: %w",
			network, n.cred.User, err)
	}
	return err
}

// DeleteNetwork deletes a provisioning network from HIL; one already gone
// is fine.
func (n hilNetworks) DeleteNetwork(ctx context.Context, network string) error {
	err := n.c.DeleteNetwork(ctx, n.cred, network)
	if errors.Is(err, fault.ErrNotFound) {
		return nil
	}
	return err
}
