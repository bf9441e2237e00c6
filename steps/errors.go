package steps

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cucumber/godog"

	"github.com/bmi-go/bmi/service/api"
	"github.com/bmi-go/bmi/service/fault"
)

func registerErrors(sc *godog.ScenarioContext) {
	sc.Step(`^the administrator tries to import RBD image "([^"]*)" into my project under the exact name "([^"]*)"$`, tryImportLiteral)
	sc.Step(`^I try to provision the unknown node "([^"]*)" from image "([^"]*)"$`, tryProvisionUnknownNode)
	sc.Step(`^I try to provision (node [AB]) through the unknown NIC "([^"]*)" from image "([^"]*)"$`, tryProvisionUnknownNIC)
	sc.Step(`^I try to provision (node [AB]) from (?:image|snapshot) "([^"]*)"(?: again)?$`, tryProvision)
	sc.Step(`^I try to remove image "([^"]*)"$`, tryRemove)
	sc.Step(`^I try to list my project's images with a wrong password$`, tryWrongPassword)
	sc.Step(`^I try to list the other project's images$`, tryOtherProject)
	sc.Step(`^the other tenant tries to remove image "([^"]*)" of my project$`, otherTriesRemove)
	sc.Step(`^it fails as "([a-z_]+)" with a one-line message naming "([^"]*)"$`, failsNaming)
	sc.Step(`^it fails as "([a-z_]+)" with a one-line message naming the (image|node|project) "([^"]*)"$`, failsNamingAlias)
	sc.Step(`^my project's images are unchanged$`, imagesUnchanged)
}

// try remembers the outcome of an operation expected to fail, and the
// project's images before it (while HIL or Ceph is down: before it went
// down; an attempt during the outage may leave a rollback to finish once
// it is back, which is not the state to compare with).
func (w *World) try(ctx context.Context, f func() error) error {
	if w.hilIsDown || w.cephIsDown { // the baseline was taken before it went down
		w.tried, w.lastErr = true, f()
		return nil
	}
	names, err := w.imageNames(ctx)
	if err != nil {
		return err
	}
	w.before, w.tried, w.lastErr = names, true, f()
	return nil
}

func (w *World) imageNames(ctx context.Context) ([]string, error) {
	ims, err := w.admin.DBImages(ctx, dbFilter(w.site.Project))
	if err != nil {
		return nil, fmt.Errorf("list the images of %s: %w", w.site.Project, err)
	}
	var names []string
	for _, im := range ims {
		names = append(names, im.Kind+" "+im.Name)
	}
	slices.Sort(names)
	return names, nil
}

func tryImportLiteral(ctx context.Context, rbdAlias, name string) error {
	w := From(ctx)
	return w.try(ctx, func() error {
		if err := w.journal(Entry{Op: OpImage, Project: w.site.Project, Name: name}); err != nil {
			return err
		}
		_, _, err := w.admin.Import(ctx, w.site.Project, api.ImportRequest{Source: w.name(rbdAlias), Name: name}, false)
		return err
	})
}

func tryProvisionUnknownNode(ctx context.Context, node, image string) error {
	w := From(ctx)
	return w.try(ctx, func() error {
		if err := w.journal(Entry{Op: OpProvision, Project: w.site.Project, Name: node}); err != nil {
			return err
		}
		_, _, err := w.op.Provision(ctx, w.site.Project, node, api.ProvisionRequest{Image: w.name(image), NIC: w.site.Nodes[0].NIC}, false)
		return err
	})
}

func tryProvisionUnknownNIC(ctx context.Context, nodeAlias, nic, image string) error {
	w := From(ctx)
	n, err := w.node(nodeAlias)
	if err != nil {
		return err
	}
	return w.try(ctx, func() error {
		if err := w.journal(Entry{Op: OpProvision, Project: w.site.Project, Name: n.Name}); err != nil {
			return err
		}
		_, _, err := w.op.Provision(ctx, w.site.Project, n.Name, api.ProvisionRequest{Image: w.name(image), NIC: nic}, false)
		return err
	})
}

func tryProvision(ctx context.Context, nodeAlias, image string) error {
	w := From(ctx)
	n, err := w.node(nodeAlias)
	if err != nil {
		return err
	}
	return w.try(ctx, func() error {
		_, _, err := w.op.Provision(ctx, w.site.Project, n.Name, api.ProvisionRequest{Image: w.name(image), NIC: n.NIC}, false)
		return err
	})
}

func tryRemove(ctx context.Context, alias string) error {
	w := From(ctx)
	return w.try(ctx, func() error { return w.op.RemoveImage(ctx, w.site.Project, w.name(alias)) })
}

func tryWrongPassword(ctx context.Context) error {
	w := From(ctx)
	bad := w.site.Operator
	bad.Password = "not-" + bad.Password
	c, err := w.site.Client(bad)
	if err != nil {
		return err
	}
	return w.try(ctx, func() error { _, err := c.Images(ctx, w.site.Project); return err })
}

func tryOtherProject(ctx context.Context) error {
	w := From(ctx)
	return w.try(ctx, func() error { _, err := w.op.Images(ctx, w.site.OtherProject); return err })
}

func otherTriesRemove(ctx context.Context, alias string) error {
	w := From(ctx)
	return w.try(ctx, func() error { return w.other.RemoveImage(ctx, w.site.Project, w.name(alias)) })
}

func failsNamingAlias(ctx context.Context, kind, what, alias string) error {
	w := From(ctx)
	switch what {
	case "node":
		n, err := w.node(alias)
		if err != nil {
			return err
		}
		return failsNaming(ctx, kind, n.Name)
	case "project":
		return failsNaming(ctx, kind, w.project(alias))
	}
	return failsNaming(ctx, kind, w.name(alias))
}

// failsNaming checks the last "try": it failed with the error kind, and a
// message of one line that names what the operator named.
func failsNaming(ctx context.Context, kind, what string) error {
	w := From(ctx)
	if !w.tried {
		return fmt.Errorf("no operation was tried")
	}
	err := w.lastErr
	if err == nil {
		return fmt.Errorf("it succeeded, want a %q error", kind)
	}
	var ae *api.Error
	if !errors.As(err, &ae) {
		return fmt.Errorf("got %v, want a %q error from BMI", err, kind)
	}
	if ae.Kind != fault.Kind(kind) {
		return fmt.Errorf("got a %q error (%s), want %q", ae.Kind, ae.Message, kind)
	}
	if msg := ae.Message; msg == "" || strings.Contains(msg, "\n") || !strings.Contains(msg, what) {
		return fmt.Errorf("message %q is not one line naming %q", msg, what)
	}
	return nil
}

func imagesUnchanged(ctx context.Context) error {
	w := From(ctx)
	if err := w.settle(ctx); err != nil {
		return err
	}
	after, err := w.imageNames(ctx)
	if err != nil {
		return err
	}
	if !slices.Equal(after, w.before) {
		return fmt.Errorf("project %s changed: before %v, after %v", w.site.Project, w.before, after)
	}
	return nil
}

// settleWait bounds how long a check waits for BMI to finish rolling back
// an operation whose rollback a dependency's outage interrupted.
const settleWait = 3 * time.Minute

// settle waits until no operation of my project is left to finish: a
// failed operation whose rollback could not finish (Ceph was down) is
// still rolling back, and BMI retries it once the dependency is back. A
// check that "nothing changed" is about the state after that, as an
// operator reads it in `bmi op ls`.
func (w *World) settle(ctx context.Context) error {
	deadline := time.Now().Add(settleWait)
	for {
		var pending []string
		for _, st := range []string{api.OpRunning, api.OpFailed} {
			ops, err := w.admin.Ops(ctx, st, 100) // the journal is the administrators'
			if err != nil {
				return err
			}
			for _, o := range ops {
				if o.Project == w.site.Project {
					pending = append(pending, fmt.Sprintf("%s %s of %s (%s: %s)", o.ID, o.Kind, o.Target, o.State, o.Error))
				}
			}
		}
		if len(pending) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("operations of project %s still unfinished after %v: %s", w.site.Project, settleWait, strings.Join(pending, "; "))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(2 * time.Second):
		}
	}
}
