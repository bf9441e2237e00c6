package core_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"

	"github.com/bmi-go/bmi/service/core"
	"github.com/bmi-go/bmi/service/fault"
)

// fakeImages is an in-memory RBD pool with Ceph's layering rules and error
// kinds (see ceph-spike §2), optionally persisted to a file after every
// change so that it survives a killed process (crash tests).
type fakeImages struct {
	mu     sync.Mutex
	path   string
	Images map[string]*fakeImage
	// fail makes the next calls of a method fail: method → error.
	fail map[string]error
}

type fakeImage struct {
	Size      uint64
	Data      string
	Parent    string // image@snap
	Snaps     map[string]*fakeSnap
	SnapOrder []string
}

type fakeSnap struct {
	Data      string
	Protected bool
	Children  []string
}

func newFakeImages(path string) *fakeImages {
	f := &fakeImages{path: path, Images: map[string]*fakeImage{}, fail: map[string]error{}}
	if path != "" {
		if b, err := os.ReadFile(path); err == nil {
			_ = json.Unmarshal(b, &f.Images)
		}
	}
	return f
}

func (f *fakeImages) save() {
	if f.path == "" {
		return
	}
	b, _ := json.Marshal(f.Images)
	tmp := f.path + ".tmp"
	_ = os.WriteFile(tmp, b, 0o600)
	_ = os.Rename(tmp, f.path)
}

func nf(what string) error { return fmt.Errorf("%s: %w", what, fault.ErrNotFound) }

func (f *fakeImages) check(method string) error {
	if err, ok := f.fail[method]; ok {
		return err
	}
	return nil
}

func (f *fakeImages) get(name string) (*fakeImage, error) {
	im, ok := f.Images[name]
	if !ok {
		return nil, nf("rbd image " + name)
	}
	return im, nil
}

func (f *fakeImages) Size(_ context.Context, name string) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	im, err := f.get(name)
	if err != nil {
		return 0, err
	}
	return im.Size, nil
}

func (f *fakeImages) Parent(_ context.Context, name string) (string, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	im, err := f.get(name)
	if err != nil {
		return "", "", err
	}
	p, s, _ := strings.Cut(im.Parent, "@")
	return p, s, nil
}

func (f *fakeImages) Snapshots(_ context.Context, name string) ([]core.Snapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	im, err := f.get(name)
	if err != nil {
		return nil, err
	}
	var out []core.Snapshot
	for _, n := range im.SnapOrder {
		out = append(out, core.Snapshot{Name: n, Protected: im.Snaps[n].Protected})
	}
	return out, nil
}

func (f *fakeImages) List(_ context.Context, prefix string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for n := range f.Images {
		if strings.HasPrefix(n, prefix) {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out, nil
}

func (f *fakeImages) Remove(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.check("Remove"); err != nil {
		return err
	}
	im, err := f.get(name)
	if err != nil {
		return err
	}
	if len(im.Snaps) > 0 {
		return fault.Errorf(fault.Conflict, "rbd image %s has snapshots", name)
	}
	f.unlinkParent(name, im)
	delete(f.Images, name)
	f.save()
	return nil
}

func (f *fakeImages) unlinkParent(name string, im *fakeImage) {
	if im.Parent == "" {
		return
	}
	p, s, _ := strings.Cut(im.Parent, "@")
	if pi, ok := f.Images[p]; ok {
		if sn, ok := pi.Snaps[s]; ok {
			var kids []string
			for _, k := range sn.Children {
				if k != name {
					kids = append(kids, k)
				}
			}
			sn.Children = kids
		}
	}
	im.Parent = ""
}

func (f *fakeImages) Rename(_ context.Context, from, to string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	im, err := f.get(from)
	if err != nil {
		return err
	}
	if _, ok := f.Images[to]; ok {
		return fmt.Errorf("rbd image %s: %w", to, fault.ErrExists)
	}
	if len(im.Snaps) > 0 || im.Parent != "" {
		return fault.Errorf(fault.Invalid, "fake rename supports only flat images without snapshots")
	}
	delete(f.Images, from)
	f.Images[to] = im
	f.save()
	return nil
}

func (f *fakeImages) CreateSnapshot(_ context.Context, image, snap string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.check("CreateSnapshot"); err != nil {
		return err
	}
	im, err := f.get(image)
	if err != nil {
		return err
	}
	if im.Snaps == nil {
		im.Snaps = map[string]*fakeSnap{}
	}
	if _, ok := im.Snaps[snap]; ok {
		return fmt.Errorf("snapshot %s@%s: %w", image, snap, fault.ErrExists)
	}
	im.Snaps[snap] = &fakeSnap{Data: im.Data}
	im.SnapOrder = append(im.SnapOrder, snap)
	f.save()
	return nil
}

func (f *fakeImages) snap(image, snap string) (*fakeImage, *fakeSnap, error) {
	im, err := f.get(image)
	if err != nil {
		return nil, nil, err
	}
	sn, ok := im.Snaps[snap]
	if !ok {
		return nil, nil, nf("snapshot " + image + "@" + snap)
	}
	return im, sn, nil
}

func (f *fakeImages) ProtectSnapshot(_ context.Context, image, snap string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, sn, err := f.snap(image, snap)
	if err != nil {
		return err
	}
	if sn.Protected {
		return fault.Errorf(fault.Conflict, "snapshot %s@%s is already protected", image, snap)
	}
	sn.Protected = true
	f.save()
	return nil
}

func (f *fakeImages) UnprotectSnapshot(_ context.Context, image, snap string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, sn, err := f.snap(image, snap)
	if err != nil {
		return err
	}
	if !sn.Protected {
		return fault.Errorf(fault.Invalid, "snapshot %s@%s is not protected", image, snap)
	}
	if len(sn.Children) > 0 {
		return fault.Errorf(fault.Conflict, "snapshot %s@%s has children", image, snap)
	}
	sn.Protected = false
	f.save()
	return nil
}

func (f *fakeImages) RemoveSnapshot(_ context.Context, image, snap string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	im, sn, err := f.snap(image, snap)
	if err != nil {
		return err
	}
	if sn.Protected {
		return fault.Errorf(fault.Conflict, "snapshot %s@%s is protected", image, snap)
	}
	delete(im.Snaps, snap)
	var order []string
	for _, n := range im.SnapOrder {
		if n != snap {
			order = append(order, n)
		}
	}
	im.SnapOrder = order
	f.save()
	return nil
}

func (f *fakeImages) Clone(_ context.Context, parent, snap, child string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.check("Clone"); err != nil {
		return err
	}
	pi, sn, err := f.snap(parent, snap)
	if err != nil {
		return err
	}
	if !sn.Protected {
		return fault.Errorf(fault.Invalid, "snapshot %s@%s is not protected", parent, snap)
	}
	if _, ok := f.Images[child]; ok {
		return fmt.Errorf("rbd image %s: %w", child, fault.ErrExists)
	}
	f.Images[child] = &fakeImage{Size: pi.Size, Data: sn.Data, Parent: parent + "@" + snap}
	sn.Children = append(sn.Children, child)
	f.save()
	return nil
}

func (f *fakeImages) Flatten(_ context.Context, name string, progress core.Progress) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.check("Flatten"); err != nil {
		return err
	}
	im, err := f.get(name)
	if err != nil {
		return err
	}
	if im.Parent == "" {
		return fault.Errorf(fault.Invalid, "rbd image %s has no parent", name)
	}
	f.unlinkParent(name, im)
	if progress != nil {
		progress(1, 1)
	}
	f.save()
	return nil
}

func (f *fakeImages) Import(_ context.Context, name string, r io.Reader, size uint64, _ core.Progress) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.check("Import"); err != nil {
		return err
	}
	if _, ok := f.Images[name]; ok {
		return fmt.Errorf("rbd image %s: %w", name, fault.ErrExists)
	}
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	f.Images[name] = &fakeImage{Size: size, Data: string(b)}
	f.save()
	return nil
}

func (f *fakeImages) Export(_ context.Context, name string, w io.Writer, _ core.Progress) error {
	f.mu.Lock()
	im, err := f.get(name)
	f.mu.Unlock()
	if err != nil {
		return err
	}
	_, err = io.Copy(w, bytes.NewReader([]byte(im.Data)))
	return err
}

// create makes a golden image outside BMI.
func (f *fakeImages) create(name, data string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Images[name] = &fakeImage{Size: 1 << 30, Data: data}
	f.save()
}

// fakeExporter is an in-process iSCSI target: it forgets everything when
// the process dies, like the real one.
type fakeExporter struct {
	mu      sync.Mutex
	targets map[string]core.ExportSpec
	fail    error
}

func newFakeExporter() *fakeExporter { return &fakeExporter{targets: map[string]core.ExportSpec{}} }

func (e *fakeExporter) Export(_ context.Context, spec core.ExportSpec) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.fail != nil {
		return e.fail
	}
	e.targets[spec.IQN] = spec
	return nil
}

func (e *fakeExporter) Unexport(_ context.Context, iqn string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.targets, iqn)
	return nil
}

func (e *fakeExporter) Exported(context.Context) ([]string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for k := range e.targets {
		out = append(out, k)
	}
	sort.Strings(out)
	return out, nil
}

// fakeFiles writes one file per node in a directory.
type fakeFiles struct{ dir string }

func (f fakeFiles) Write(_ context.Context, b core.BootFile) error {
	return os.WriteFile(filepath.Join(f.dir, b.Node), []byte(b.MAC+" "+b.IQN), 0o644)
}

func (f fakeFiles) Remove(_ context.Context, node, _ string) error {
	err := os.Remove(filepath.Join(f.dir, node))
	if os.IsNotExist(err) {
		return nil
	}
	return err
}

func (f fakeFiles) Nodes(context.Context) ([]string, error) {
	ents, err := os.ReadDir(f.dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out, nil
}

// fakeHIL knows users, projects and nodes.
type fakeHIL struct {
	users map[string]fakeUser
	macs  map[string]string // node/nic → MAC
	owner map[string]string // node → project
}

type fakeUser struct {
	password string
	admin    bool
	projects []string
}

func (h *fakeHIL) user(who core.Principal) (fakeUser, error) {
	u, ok := h.users[who.User]
	if !ok || u.password != who.Password.Reveal() {
		return fakeUser{}, fault.Errorf(fault.Unauthenticated, "authentication failed for %q", who.User)
	}
	return u, nil
}

func (h *fakeHIL) Authenticate(_ context.Context, who core.Principal) error {
	_, err := h.user(who)
	return err
}

func (h *fakeHIL) IsAdmin(_ context.Context, who core.Principal) (bool, error) {
	u, err := h.user(who)
	return u.admin, err
}

func (h *fakeHIL) ProjectAccess(_ context.Context, who core.Principal, project string) error {
	u, err := h.user(who)
	if err != nil {
		return err
	}
	if u.admin {
		return nil
	}
	for _, p := range u.projects {
		if p == project {
			return nil
		}
	}
	return fault.Errorf(fault.Forbidden, "user %q has no access to project %q", who.User, project)
}

func (h *fakeHIL) MAC(ctx context.Context, who core.Principal, node, nic string) (string, error) {
	if _, err := h.user(who); err != nil {
		return "", err
	}
	p, ok := h.owner[node]
	if !ok {
		return "", nf("node " + node)
	}
	if err := h.ProjectAccess(ctx, who, p); err != nil {
		return "", err
	}
	mac, ok := h.macs[node+"/"+nic]
	if !ok {
		return "", nf("nic " + nic)
	}
	return mac, nil
}

// fakeNetworks records which NIC is on which network, persisted in a file
// so that it survives a killed process (HIL is another process).
type fakeNetworks struct {
	mu   sync.Mutex
	path string
	On   map[string]string // node/nic → network
}

func newFakeNetworks(path string) *fakeNetworks {
	n := &fakeNetworks{path: path, On: map[string]string{}}
	if b, err := os.ReadFile(path); err == nil {
		_ = json.Unmarshal(b, &n.On)
	}
	return n
}

func (n *fakeNetworks) save() {
	b, _ := json.Marshal(n.On)
	_ = os.WriteFile(n.path+".tmp", b, 0o600)
	_ = os.Rename(n.path+".tmp", n.path)
}

func (n *fakeNetworks) ConnectNetwork(_ context.Context, node, nic, network, channel string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if channel == "" {
		return fault.Errorf(fault.Invalid, "no channel")
	}
	n.On[node+"/"+nic] = network
	n.save()
	return nil
}

func (n *fakeNetworks) DetachNetwork(_ context.Context, node, nic, network string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.On[node+"/"+nic] == network {
		delete(n.On, node+"/"+nic)
		n.save()
	}
	return nil
}
