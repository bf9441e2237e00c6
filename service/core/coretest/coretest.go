// Package coretest is a test-support package (no production code imports
// it): in-memory fakes of the collaborators of service/core (the RBD pool,
// the iSCSI target, legacy boot files, HIL and its networks) with the real
// parts' semantics: Ceph's layering rules and error kinds, a removal that a
// crash can leave half done, HIL's users and node ownership. They make unit
// tests of the core, the API and the CLI fast; they never prove a feature
// (the real-Ceph, real-initiator tests do). The pool and the networks can
// persist to a file so that they survive a killed process (crash tests).
package coretest

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

// Images is an in-memory RBD pool with Ceph's layering rules and error
// kinds (see ceph-spike §2), optionally persisted to a file after every
// change so that it survives a killed process (crash tests).
type Images struct {
	mu     sync.Mutex
	path   string
	Images map[string]*Image
	// fail makes the next calls of a method fail: method → error.
	Fail map[string]error
	// Mid, when set, is called inside Remove once the image is half
	// removed (crash tests kill the process there).
	Mid func(method, name string)
}

// Image is one image of the fake pool.
type Image struct {
	Size      uint64
	Data      string
	Parent    string // image@snap
	Snaps     map[string]*Snap
	SnapOrder []string
	// HalfRemoved is an image whose removal was interrupted (librbd had
	// moved it to the trash, or removed its header): List still shows it,
	// opening it says not found, and only Remove finishes it.
	HalfRemoved bool `json:",omitempty"`
}

// Snap is one snapshot of a fake image.
type Snap struct {
	Data      string
	Protected bool
	Children  []string
}

// NewImages returns an empty pool, or the one saved in path ("" keeps it in memory).
func NewImages(path string) *Images {
	f := &Images{path: path, Images: map[string]*Image{}, Fail: map[string]error{}}
	if path != "" {
		if b, err := os.ReadFile(path); err == nil {
			_ = json.Unmarshal(b, &f.Images)
		}
	}
	return f
}

func (f *Images) save() {
	if f.path == "" {
		return
	}
	b, _ := json.Marshal(f.Images)
	tmp := f.path + ".tmp"
	_ = os.WriteFile(tmp, b, 0o600)
	_ = os.Rename(tmp, f.path)
}

func nf(what string) error { return fmt.Errorf("%s: %w", what, fault.ErrNotFound) }

func (f *Images) check(method string) error {
	if err, ok := f.Fail[method]; ok {
		return err
	}
	return nil
}

func (f *Images) get(name string) (*Image, error) {
	im, ok := f.Images[name]
	if !ok || im.HalfRemoved {
		return nil, nf("rbd image " + name)
	}
	return im, nil
}

// Size implements the core interface of the same method.
func (f *Images) Size(_ context.Context, name string) (uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	im, err := f.get(name)
	if err != nil {
		return 0, err
	}
	return im.Size, nil
}

// Parent implements the core interface of the same method.
func (f *Images) Parent(_ context.Context, name string) (string, string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	im, err := f.get(name)
	if err != nil {
		return "", "", err
	}
	p, s, _ := strings.Cut(im.Parent, "@")
	return p, s, nil
}

// Snapshots implements the core interface of the same method.
func (f *Images) Snapshots(_ context.Context, name string) ([]core.Snapshot, error) {
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

// List implements the core interface of the same method.
func (f *Images) List(_ context.Context, prefix string) ([]string, error) {
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

// Remove implements the core interface of the same method.
func (f *Images) Remove(_ context.Context, name string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.check("Remove"); err != nil {
		return err
	}
	if im, ok := f.Images[name]; ok && im.HalfRemoved {
		delete(f.Images, name) // librbd finishes an interrupted removal
		f.save()
		return nil
	}
	im, err := f.get(name)
	if err != nil {
		return err
	}
	if len(im.Snaps) > 0 {
		return fault.Errorf(fault.Conflict, "rbd image %s has snapshots", name)
	}
	f.unlinkParent(name, im)
	im.HalfRemoved = true
	f.save()
	if f.Mid != nil {
		f.Mid("Remove", name)
	}
	delete(f.Images, name)
	f.save()
	return nil
}

func (f *Images) unlinkParent(name string, im *Image) {
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

// Rename implements the core interface of the same method.
func (f *Images) Rename(_ context.Context, from, to string) error {
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

// CreateSnapshot implements the core interface of the same method.
func (f *Images) CreateSnapshot(_ context.Context, image, snap string) error {
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
		im.Snaps = map[string]*Snap{}
	}
	if _, ok := im.Snaps[snap]; ok {
		return fmt.Errorf("snapshot %s@%s: %w", image, snap, fault.ErrExists)
	}
	im.Snaps[snap] = &Snap{Data: im.Data}
	im.SnapOrder = append(im.SnapOrder, snap)
	f.save()
	return nil
}

func (f *Images) snap(image, snap string) (*Image, *Snap, error) {
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

// ProtectSnapshot implements the core interface of the same method.
func (f *Images) ProtectSnapshot(_ context.Context, image, snap string) error {
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

// UnprotectSnapshot implements the core interface of the same method.
func (f *Images) UnprotectSnapshot(_ context.Context, image, snap string) error {
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

// RemoveSnapshot implements the core interface of the same method.
func (f *Images) RemoveSnapshot(_ context.Context, image, snap string) error {
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

// Clone implements the core interface of the same method.
func (f *Images) Clone(_ context.Context, parent, snap, child string) error {
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
	f.Images[child] = &Image{Size: pi.Size, Data: sn.Data, Parent: parent + "@" + snap}
	sn.Children = append(sn.Children, child)
	f.save()
	return nil
}

// Flatten implements the core interface of the same method.
func (f *Images) Flatten(_ context.Context, name string, progress core.Progress) error {
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

// Import implements the core interface of the same method.
func (f *Images) Import(_ context.Context, name string, r io.Reader, size uint64, _ core.Progress) error {
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
	f.Images[name] = &Image{Size: size, Data: string(b)}
	f.save()
	return nil
}

// Export implements the core interface of the same method.
func (f *Images) Export(_ context.Context, name string, w io.Writer, _ core.Progress) error {
	f.mu.Lock()
	im, err := f.get(name)
	f.mu.Unlock()
	if err != nil {
		return err
	}
	_, err = io.Copy(w, bytes.NewReader([]byte(im.Data)))
	return err
}

// Create makes an image outside BMI (a golden image to import).
func (f *Images) Create(name, data string, size uint64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.Images[name] = &Image{Size: size, Data: data}
	f.save()
}

// Exporter is an in-process iSCSI target: it forgets everything when
// the process dies, like the real one.
type Exporter struct {
	mu      sync.Mutex
	Targets map[string]core.ExportSpec
	Fail    error
}

// NewExporter returns a target that exports nothing.
func NewExporter() *Exporter { return &Exporter{Targets: map[string]core.ExportSpec{}} }

// Export implements the core interface of the same method.
func (e *Exporter) Export(_ context.Context, spec core.ExportSpec) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.Fail != nil {
		return e.Fail
	}
	e.Targets[spec.IQN] = spec
	return nil
}

// Unexport implements the core interface of the same method.
func (e *Exporter) Unexport(_ context.Context, iqn string) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.Targets, iqn)
	return nil
}

// Exported implements the core interface of the same method.
func (e *Exporter) Exported(context.Context) ([]string, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for k := range e.Targets {
		out = append(out, k)
	}
	sort.Strings(out)
	return out, nil
}

// Files writes one file per node in a directory.
type Files struct{ Dir string }

// Write implements the core interface of the same method.
func (f Files) Write(_ context.Context, b core.BootFile) error {
	return os.WriteFile(filepath.Join(f.Dir, b.Node), []byte(b.MAC+" "+b.IQN), 0o644)
}

// Remove implements the core interface of the same method.
func (f Files) Remove(_ context.Context, node, _ string) error {
	err := os.Remove(filepath.Join(f.Dir, node))
	if os.IsNotExist(err) {
		return nil
	}
	return err
}

// Nodes implements the core interface of the same method.
func (f Files) Nodes(context.Context) ([]string, error) {
	ents, err := os.ReadDir(f.Dir)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out, nil
}

// HIL knows users, projects and nodes.
type HIL struct {
	Users map[string]User
	MACs  map[string]string // node/nic → MAC
	Owner map[string]string // node → project
}

// User is a HIL user.
type User struct {
	Password string
	Admin    bool
	Projects []string
}

func (h *HIL) user(who core.Principal) (User, error) {
	u, ok := h.Users[who.User]
	if !ok || u.Password != who.Password.Reveal() {
		return User{}, fault.Errorf(fault.Unauthenticated, "authentication failed for %q", who.User)
	}
	return u, nil
}

// Authenticate implements the core interface of the same method.
func (h *HIL) Authenticate(_ context.Context, who core.Principal) error {
	_, err := h.user(who)
	return err
}

// IsAdmin implements the core interface of the same method.
func (h *HIL) IsAdmin(_ context.Context, who core.Principal) (bool, error) {
	u, err := h.user(who)
	return u.Admin, err
}

// ProjectAccess implements the core interface of the same method.
func (h *HIL) ProjectAccess(_ context.Context, who core.Principal, project string) error {
	u, err := h.user(who)
	if err != nil {
		return err
	}
	if u.Admin {
		return nil
	}
	for _, p := range u.Projects {
		if p == project {
			return nil
		}
	}
	return fault.Errorf(fault.Forbidden, "user %q has no access to project %q", who.User, project)
}

// MAC implements the core interface of the same method.
func (h *HIL) MAC(ctx context.Context, who core.Principal, node, nic string) (string, error) {
	if _, err := h.user(who); err != nil {
		return "", err
	}
	p, ok := h.Owner[node]
	if !ok {
		return "", nf("node " + node)
	}
	if err := h.ProjectAccess(ctx, who, p); err != nil {
		return "", err
	}
	mac, ok := h.MACs[node+"/"+nic]
	if !ok {
		return "", nf("nic " + nic)
	}
	return mac, nil
}

// Networks records which NIC is on which network and which networks BMI
// created, persisted in a file so that it survives a killed process (HIL
// is another process).
type Networks struct {
	mu   sync.Mutex
	path string
	On   map[string]string // node/nic → network
	// Nets are the networks EnsureNetwork created: name → "project/vlan".
	Nets map[string]string
	// Mid, when set, is called in the middle of EnsureNetwork,
	// ConnectNetwork and DetachNetwork, after the change is made and before
	// it is saved (crash tests kill the process there: HIL did it, BMI
	// did not hear back).
	Mid func(method string)
	// FailConnect, when set, fails every ConnectNetwork.
	FailConnect error
}

type networksFile struct {
	On   map[string]string `json:"on"`
	Nets map[string]string `json:"nets"`
}

// NewNetworks returns the networks saved in path, or none.
func NewNetworks(path string) *Networks {
	n := &Networks{path: path, On: map[string]string{}, Nets: map[string]string{}}
	var f networksFile
	if b, err := os.ReadFile(path); err == nil && json.Unmarshal(b, &f) == nil {
		if f.On != nil {
			n.On = f.On
		}
		if f.Nets != nil {
			n.Nets = f.Nets
		}
	}
	return n
}

func (n *Networks) save(method string) {
	if n.Mid != nil {
		n.Mid(method)
	}
	b, _ := json.Marshal(networksFile{On: n.On, Nets: n.Nets})
	_ = os.WriteFile(n.path+".tmp", b, 0o600)
	_ = os.Rename(n.path+".tmp", n.path)
}

// ConnectNetwork implements the core interface of the same method. Like
// HIL, it refuses a network that does not exist (created by EnsureNetwork
// or listed in Nets by the test) unless no network was ever created.
func (n *Networks) ConnectNetwork(_ context.Context, node, nic, network, channel string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if channel == "" {
		return fault.Errorf(fault.Invalid, "no channel")
	}
	if n.FailConnect != nil {
		return n.FailConnect
	}
	if _, ok := n.Nets[network]; len(n.Nets) > 0 && !ok {
		return fault.Errorf(fault.NotFound, "network %q does not exist", network)
	}
	if have, ok := n.On[node+"/"+nic]; ok && have != network {
		return fault.Errorf(fault.Conflict, "NIC %s/%s is on network %q already", node, nic, have)
	}
	n.On[node+"/"+nic] = network
	n.save("ConnectNetwork")
	return nil
}

// DetachNetwork implements the core interface of the same method.
func (n *Networks) DetachNetwork(_ context.Context, node, nic, network string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.On[node+"/"+nic] == network {
		delete(n.On, node+"/"+nic)
		n.save("DetachNetwork")
	}
	return nil
}

// EnsureNetwork implements the core interface of the same method.
func (n *Networks) EnsureNetwork(_ context.Context, network, project string, vlan int) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	want := fmt.Sprintf("%s/%d", project, vlan)
	if have, ok := n.Nets[network]; ok {
		if have != want {
			return fault.Errorf(fault.Conflict, "network %q exists as %s, not %s", network, have, want)
		}
		return nil
	}
	n.Nets[network] = want
	n.save("EnsureNetwork")
	return nil
}

// DeleteNetwork implements the core interface of the same method; a
// network with NICs on it is refused, as HIL does.
func (n *Networks) DeleteNetwork(_ context.Context, network string) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	for k, v := range n.On {
		if v == network {
			return fault.Errorf(fault.Conflict, "network %q still has NIC %s on it", network, k)
		}
	}
	if _, ok := n.Nets[network]; ok {
		delete(n.Nets, network)
		n.save("DeleteNetwork")
	}
	return nil
}

// Data returns the content of an image and whether it exists.
func (f *Images) Data(name string) (string, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	im, ok := f.Images[name]
	if !ok {
		return "", false
	}
	return im.Data, true
}

// SetFail makes every later call of method fail with err; nil clears it.
func (f *Images) SetFail(method string, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		delete(f.Fail, method)
		return
	}
	f.Fail[method] = err
}
