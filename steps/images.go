package steps

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"strconv"

	"github.com/cucumber/godog"

	"github.com/bmi-go/bmi/service/api"
	"github.com/bmi-go/bmi/service/fault"
)

func registerImages(sc *godog.ScenarioContext) {
	sc.Step(`^an RBD image "([^"]*)" in the site's pool$`, rbdImageInPool)
	sc.Step(`^the administrator (?:imports|imported) RBD image "([^"]*)" into my project as "([^"]*)"$`, importImage)
	sc.Step(`^the administrator (copies|moves) image "([^"]*)" of (my|the other) project to (my|the other) project as "([^"]*)"$`, copyOrMove)
	sc.Step(`^I rename image "([^"]*)" to "([^"]*)"$`, renameImage)
	sc.Step(`^the administrator exports image "([^"]*)" to RBD image "([^"]*)"$`, exportImage)
	sc.Step(`^the RBD image "([^"]*)" is in the site's pool with the size of image "([^"]*)"$`, rbdSameSize)
	sc.Step(`^I upload (\d+) MiB of random data as image "([^"]*)"$`, upload)
	sc.Step(`^downloading image "([^"]*)" gives back the same bytes$`, downloadSame)
	sc.Step(`^(my|the other) project (has|does not have|still has) the image "([^"]*)"$`, projectHasImage)
	sc.Step(`^I remove (image|snapshot) "([^"]*)"$`, removeImage)
	sc.Step(`^I remove RBD image "([^"]*)"$`, removeRBD)
	sc.Step(`^the (image|snapshot) "([^"]*)" is gone from BMI and Ceph$`, imageGone)
	sc.Step(`^the RBD image "([^"]*)" is gone from the site's pool$`, rbdGone)
}

func rbdImageInPool(ctx context.Context, alias string) error {
	w := From(ctx)
	name := w.name(alias)
	if err := w.journal(Entry{Op: OpRBDImage, Name: name}); err != nil {
		return err
	}
	size := strconv.Itoa(max(w.site.ImageMiB, 8)) + "M"
	if out, err := rbdRun(ctx, w.site, "create", "--size", size, "--image-format", "2", name); err != nil {
		return fmt.Errorf("rbd create %s: %w: %s", name, err, out)
	}
	if ok, err := rbdExists(ctx, w.site, name); err != nil || !ok {
		return fmt.Errorf("rbd ls does not show %s after rbd create (%v)", name, err)
	}
	return nil
}

func importImage(ctx context.Context, rbdAlias, alias string) error {
	w := From(ctx)
	name := w.name(alias)
	if err := w.journal(Entry{Op: OpImage, Project: w.site.Project, Name: name}); err != nil {
		return err
	}
	im, _, err := w.admin.Import(ctx, w.site.Project, api.ImportRequest{Source: w.name(rbdAlias), Name: name}, false)
	if err != nil {
		return fmt.Errorf("import %s as %s: %w", w.name(rbdAlias), name, err)
	}
	return w.imageInCeph(ctx, im)
}

// imageInCeph checks BMI's record of an image against Ceph.
func (w *World) imageInCeph(ctx context.Context, im api.Image) error {
	if im.State != "ready" {
		return fmt.Errorf("image %s of project %s is %q, want ready", im.Name, im.Project, im.State)
	}
	info, err := rbdInfo(ctx, w.site, im.CephName)
	if err != nil {
		return fmt.Errorf("image %s of project %s: its Ceph image: %w", im.Name, im.Project, err)
	}
	if info.Size != im.Size {
		return fmt.Errorf("image %s: BMI says %d bytes, Ceph %d", im.Name, im.Size, info.Size)
	}
	return nil
}

func copyOrMove(ctx context.Context, verb, alias, from, to, newAlias string) error {
	w := From(ctx)
	src, dst := w.project(from), w.project(to)
	if err := w.journal(Entry{Op: OpImage, Project: dst, Name: w.name(newAlias)}); err != nil {
		return err
	}
	req := api.CopyRequest{DestProject: dst, Name: w.name(newAlias)}
	var im api.Image
	var err error
	if verb == "copies" {
		im, _, err = w.admin.Copy(ctx, src, w.name(alias), req, false)
	} else {
		im, err = w.admin.Move(ctx, src, w.name(alias), req)
		if err == nil {
			err = w.forget(OpImage, src, w.name(alias))
		}
	}
	if err != nil {
		return fmt.Errorf("%s image %s of %s to %s as %s: %w", verb, w.name(alias), src, dst, w.name(newAlias), err)
	}
	return w.imageInCeph(ctx, im)
}

func renameImage(ctx context.Context, alias, newAlias string) error {
	w := From(ctx)
	p := w.site.Project
	if err := w.journal(Entry{Op: OpImage, Project: p, Name: w.name(newAlias)}); err != nil {
		return err
	}
	im, err := w.op.Move(ctx, p, w.name(alias), api.CopyRequest{DestProject: p, Name: w.name(newAlias)})
	if err != nil {
		return fmt.Errorf("rename %s to %s: %w", w.name(alias), w.name(newAlias), err)
	}
	if err := w.forget(OpImage, p, w.name(alias)); err != nil {
		return err
	}
	return w.imageInCeph(ctx, im)
}

func exportImage(ctx context.Context, alias, rbdAlias string) error {
	w := From(ctx)
	dest := w.name(rbdAlias)
	if err := w.journal(Entry{Op: OpRBDImage, Name: dest}); err != nil {
		return err
	}
	if _, err := w.admin.Export(ctx, w.site.Project, w.name(alias), dest, false); err != nil {
		return fmt.Errorf("export %s to %s: %w", w.name(alias), dest, err)
	}
	return nil
}

func rbdSameSize(ctx context.Context, rbdAlias, alias string) error {
	w := From(ctx)
	im, err := w.op.Image(ctx, w.site.Project, w.name(alias))
	if err != nil {
		return err
	}
	info, err := rbdInfo(ctx, w.site, w.name(rbdAlias))
	if err != nil {
		return err
	}
	if info.Parent != nil {
		return fmt.Errorf("exported RBD image %s is a clone of %s, want an independent copy", info.Name, info.Parent.Image)
	}
	if info.Size != im.Size {
		return fmt.Errorf("exported RBD image %s has %d bytes, image %s %d", info.Name, info.Size, im.Name, im.Size)
	}
	return nil
}

func upload(ctx context.Context, mib int, alias string) error {
	w := From(ctx)
	data := make([]byte, mib<<20)
	if _, err := rand.Read(data); err != nil {
		return err
	}
	sum := sha256.Sum256(data)
	w.sums[alias] = sum[:]
	name := w.name(alias)
	if err := w.journal(Entry{Op: OpImage, Project: w.site.Project, Name: name}); err != nil {
		return err
	}
	im, _, err := w.op.Upload(ctx, w.site.Project, name, bytes.NewReader(data), int64(len(data)))
	if err != nil {
		return fmt.Errorf("upload %s: %w", name, err)
	}
	return w.imageInCeph(ctx, im)
}

func downloadSame(ctx context.Context, alias string) error {
	w := From(ctx)
	want, ok := w.sums[alias]
	if !ok {
		return fmt.Errorf("image %q was not uploaded in this scenario", alias)
	}
	body, size, err := w.op.Download(ctx, w.site.Project, w.name(alias))
	if err != nil {
		return err
	}
	defer body.Close()
	h := sha256.New()
	n, err := io.Copy(h, body)
	if err != nil {
		return fmt.Errorf("download %s: %w", w.name(alias), err)
	}
	if size >= 0 && n != size {
		return fmt.Errorf("download %s: %d bytes, announced %d", w.name(alias), n, size)
	}
	if got := h.Sum(nil); !bytes.Equal(got, want) {
		return fmt.Errorf("download %s: sha256 %x, uploaded %x", w.name(alias), got, want)
	}
	return nil
}

func projectHasImage(ctx context.Context, whose, verb, alias string) error {
	w := From(ctx)
	p, name := w.project(whose), w.name(alias)
	im, err := w.admin.Image(ctx, p, name)
	if verb == "does not have" {
		if !errors.Is(err, fault.ErrNotFound) {
			return fmt.Errorf("project %s still shows image %s (%v)", p, name, err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("project %s: image %s: %w", p, name, err)
	}
	return w.imageInCeph(ctx, im)
}

func removeImage(ctx context.Context, kind, alias string) error {
	w := From(ctx)
	p, name := w.site.Project, w.name(alias)
	im, err := w.op.Image(ctx, p, name)
	if err != nil {
		return err
	}
	w.cephName[alias] = im.CephName
	op := OpImage
	if kind == "snapshot" {
		op, err = OpSnapshot, w.op.RemoveSnapshot(ctx, p, name)
	} else {
		err = w.op.RemoveImage(ctx, p, name)
	}
	if err != nil {
		return fmt.Errorf("remove %s %s: %w", kind, name, err)
	}
	return w.forget(op, p, name)
}

func imageGone(ctx context.Context, kind, alias string) error {
	w := From(ctx)
	p, name := w.site.Project, w.name(alias)
	if _, err := w.op.Image(ctx, p, name); !errors.Is(err, fault.ErrNotFound) {
		return fmt.Errorf("%s %s still shown by BMI (%v)", kind, name, err)
	}
	if kind == "snapshot" {
		snaps, err := w.op.Snapshots(ctx, p)
		if err != nil {
			return err
		}
		for _, s := range snaps {
			if s.Name == name {
				return fmt.Errorf("snapshot %s still listed", name)
			}
		}
	}
	ceph := w.cephName[alias]
	if ceph == "" {
		return fmt.Errorf("%s %q was not removed by this scenario", kind, alias)
	}
	if ok, err := rbdExists(ctx, w.site, ceph); err != nil || ok {
		return fmt.Errorf("%s %s: Ceph image %s is still in the pool (%v)", kind, name, ceph, err)
	}
	return nil
}

func removeRBD(ctx context.Context, alias string) error {
	w := From(ctx)
	name := w.name(alias)
	if out, err := rbdRun(ctx, w.site, "rm", "--no-progress", name); err != nil {
		return fmt.Errorf("rbd rm %s: %w: %s", name, err, out)
	}
	return w.forget(OpRBDImage, "", name)
}

func rbdGone(ctx context.Context, alias string) error {
	w := From(ctx)
	if ok, err := rbdExists(ctx, w.site, w.name(alias)); err != nil || ok {
		return fmt.Errorf("rbd image %s is still in the pool (%v)", w.name(alias), err)
	}
	return nil
}
