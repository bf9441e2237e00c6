//go:build ceph_preview

package ceph

/*
#cgo LDFLAGS: -lrbd
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <rbd/librbd.h>

// bmi_break_lock breaks the image's exclusive lock if another client holds
// it: librbd blocklists that client (rbd_blocklist_on_break_lock, on by
// default) before it removes the lock, so the old owner can never write
// again. It writes the owners it broke, space-separated, into out. Returns
// 0 (also when nobody holds the lock or the image has no exclusive-lock
// feature) or a negative errno.
static int bmi_break_lock(rbd_image_t img, const char *self, char *out, size_t outlen) {
	rbd_lock_mode_t mode;
	char *owners[16];
	size_t n = 16;
	out[0] = 0;
	int r = rbd_lock_get_owners(img, &mode, owners, &n);
	if (r == -ENOENT || r == -EINVAL) return 0;
	if (r < 0) return r;
	int ret = 0;
	for (size_t i = 0; i < n; i++) {
		if (strstr(self, owners[i]) != NULL) continue; // never fence ourselves
		int b = rbd_lock_break(img, mode, owners[i]);
		if (b < 0 && b != -ENOENT && ret == 0) ret = b;
		if (b >= 0 && strlen(out) + strlen(owners[i]) + 2 < outlen) {
			if (out[0]) strcat(out, " ");
			strcat(out, owners[i]);
		}
	}
	rbd_lock_get_owners_cleanup(owners, n);
	return ret;
}
*/
import "C"

import (
	"context"
	"fmt"
	"strings"
	"unsafe"
)

// FenceStaleOwner makes this process the image's only writer: if another
// client holds the image's exclusive lock, that client is blocklisted in
// the OSD map and its lock broken; it returns the owners fenced, by client
// address (e.g. "10.0.0.2:0/1665656050"). bmid calls it for every disk it exports at start-up:
// the owner is then the bmid that ran before, killed or lost, whose watch
// on the image the OSDs keep until osd_client_watch_timeout (30 s by
// default). Without fencing, the node's first write after the restart
// would wait that long for the lock. Fencing is what makes breaking the
// lock safe: a blocklisted client's I/O is refused by every OSD, so even a
// previous bmid that is hung rather than dead can never write to the
// disk again. The caller's cephx user needs the right to blocklist
// (`profile rbd` on the monitors grants it).
func (im *Image) FenceStaleOwner(ctx context.Context) ([]string, error) {
	img, done, err := im.io()
	if err != nil {
		return nil, mapError(err, imageAction("fence the lock owner of", im.Name()))
	}
	defer done()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	// Lock owners are named by their client address with its nonce, e.g.
	// "127.0.0.1:0/1665656050"; ours is among our own addresses.
	addrs, err := im.s.conn.GetAddrs()
	if err != nil || addrs == "" {
		return nil, mapError(fmt.Errorf("our own client address: %w", err), imageAction("fence the lock owner of", im.Name()))
	}
	self := C.CString(addrs)
	defer C.free(unsafe.Pointer(self))
	buf := make([]byte, 1024)
	ret := C.bmi_break_lock(img.img, self, (*C.char)(unsafe.Pointer(&buf[0])), C.size_t(len(buf)))
	if err := retErr(ret); err != nil {
		return nil, mapError(err, imageAction("fence the lock owner of", im.Name()))
	}
	return strings.Fields(C.GoString((*C.char)(unsafe.Pointer(&buf[0])))), nil
}
