//go:build ceph_preview

package ceph

/*
#cgo LDFLAGS: -lrbd
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <rbd/librbd.h>

// bmi_lock_owners writes the clients holding the image's exclusive lock,
// newline-separated, into out and their lock mode into mode. Returns 0
// (also when nobody holds the lock or the image has no exclusive-lock
// feature: out is then empty) or a negative errno.
static int bmi_lock_owners(rbd_image_t img, rbd_lock_mode_t *mode, char *out, size_t outlen) {
	char *owners[16];
	size_t n = 16;
	out[0] = 0;
	int r = rbd_lock_get_owners(img, mode, owners, &n);
	if (r == -ENOENT || r == -EINVAL) return 0;
	if (r < 0) return r;
	for (size_t i = 0; i < n; i++) {
		if (strlen(out) + strlen(owners[i]) + 2 < outlen) {
			strcat(out, owners[i]);
			strcat(out, "\n");
		}
	}
	rbd_lock_get_owners_cleanup(owners, n);
	return 0;
}
*/
import "C"

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"unsafe"
)

// FenceStaleOwner makes this process the image's only writer: if another
// client holds the image's exclusive lock, that client is blocklisted in
// the OSD map (once per process, however many images it held) and its
// lock broken; it returns the owners fenced, by client address (e.g.
// "10.0.0.2:0/1665656050"). bmid calls it for every disk it exports: at
// start-up the owner is the bmid that ran before, killed or lost, whose
// watch on the image the OSDs keep until osd_client_watch_timeout (30 s by
// default); without fencing, the node's first write after the restart
// would wait that long for the lock. Fencing is what makes breaking the
// lock safe: a blocklisted client's I/O is refused by every OSD, so even a
// previous bmid that is hung rather than dead can never write to the disk
// again. The caller's cephx user needs the right to blocklist (`profile
// rbd` on the monitors grants it).
func (im *Image) FenceStaleOwner(ctx context.Context) ([]string, error) {
	act := imageAction("fence the lock owner of", im.Name())
	img, done, err := im.io()
	if err != nil {
		return nil, im.fail(err, act)
	}
	defer done()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	var mode C.rbd_lock_mode_t
	buf := make([]byte, 4096)
	if err := retErr(C.bmi_lock_owners(img.img, &mode, (*C.char)(unsafe.Pointer(&buf[0])), C.size_t(len(buf)))); err != nil {
		return nil, im.fail(err, act)
	}
	owners := strings.Fields(C.GoString((*C.char)(unsafe.Pointer(&buf[0]))))
	if len(owners) == 0 {
		return nil, nil
	}
	// Lock owners are named by their client address with its nonce; ours
	// is among our own addresses.
	self, err := im.s.conn.GetAddrs()
	if err != nil || self == "" {
		return nil, im.fail(fmt.Errorf("our own client address: %w", err), act)
	}
	var fenced []string
	for _, o := range owners {
		if strings.Contains(self, o) {
			continue // never fence ourselves
		}
		if err := im.s.blocklist(o); err != nil {
			return fenced, im.fail(err, act)
		}
		co := C.CString(o)
		// The Store's connection sets rbd_blocklist_on_break_lock=false:
		// the owner is blocklisted above, once, instead of once per image
		// with a wait for a new OSD map each time.
		ret := C.rbd_lock_break(img.img, mode, co)
		C.free(unsafe.Pointer(co))
		if ret < 0 && ret != -C.ENOENT {
			return fenced, im.fail(rbdErrno(ret), act)
		}
		fenced = append(fenced, o)
	}
	return fenced, nil
}

// blocklist adds addr to the OSD map's blocklist, unless this process
// already did, and waits until this client has the OSD map that holds it:
// from then on every request this client sends makes the OSD catch up to
// that map first, so the blocklisted client's writes are refused before
// any of ours is applied.
func (s *Store) blocklist(addr string) error {
	s.fenceMu.Lock()
	defer s.fenceMu.Unlock()
	if s.fenced[addr] {
		return nil
	}
	cmd, err := json.Marshal(map[string]any{"prefix": "osd blocklist", "blocklistop": "add", "addr": addr})
	if err != nil {
		return err
	}
	if _, status, err := s.conn.MonCommand(cmd); err != nil {
		return fmt.Errorf("osd blocklist add %s: %w (%s)", addr, err, status)
	}
	if err := s.conn.WaitForLatestOSDMap(); err != nil {
		return fmt.Errorf("wait for the OSD map blocklisting %s: %w", addr, err)
	}
	if s.fenced == nil {
		s.fenced = map[string]bool{}
	}
	s.fenced[addr] = true
	s.log.Warn("blocklisted a previous client that held disks' locks", "client", addr)
	return nil
}

// ClientAddr is this process's Ceph client address in the form the OSD
// blocklist and lock owners use ("127.0.0.1:0/1665656050"): what another
// gateway blocklists to fence this one (Fence).
func (s *Store) ClientAddr() (string, error) {
	all, err := s.conn.GetAddrs()
	if err != nil {
		return "", fmt.Errorf("our own Ceph client address: %w", err)
	}
	// "[v2:127.0.0.1:0/123,v1:127.0.0.1:0/123]" or "127.0.0.1:0/123".
	for _, a := range strings.Split(strings.Trim(all, "[]"), ",") {
		for _, kind := range []string{"v1:", "v2:", "any:"} {
			a = strings.TrimPrefix(a, kind)
		}
		if strings.Contains(a, "/") {
			return a, nil
		}
	}
	return "", fmt.Errorf("our own Ceph client address: none in %q", all)
}

// Fence blocklists another process's Ceph client (addr, as ClientAddr
// gives it) in the OSD map: every OSD refuses its I/O from then on, so a
// gateway taken over, if it was paused or cut off rather than dead, can
// never write to the disks it exported again. Its exclusive locks are
// broken when their images are next opened (FenceStaleOwner). Fencing
// this process's own address is refused.
func (s *Store) Fence(ctx context.Context, addr string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if self, err := s.conn.GetAddrs(); err == nil && strings.Contains(self, addr) {
		return fmt.Errorf("fence %s: that is this process's own Ceph client", addr)
	}
	return s.blocklist(addr)
}
