//go:build ceph_preview

package ceph

// The data path of an open Image, in our own cgo over librbd's C API
// rather than go-ceph's rbd.Image, because go-ceph has no asynchronous
// I/O. An Image uses this one handle for every read, write, flush and
// discard: two librbd handles on one image in one process would each have
// a cache of their own, and a read through one could miss a write still
// in the other's.
//
// Asynchronous reads and writes (rbd_aio_read, rbd_aio_write) complete on
// a librbd thread, in rbdio_done_cb below. It only queues the result (tag
// and return value) on the handle's completion queue and, when the queue
// was empty, writes the handle's eventfd. One goroutine per handle
// (completions) waits on that eventfd through Go's netpoller, drains the
// queue and calls each request's callback. No Go code runs on a librbd
// thread, and no OS thread blocks per request: the caller's goroutine goes
// on as soon as librbd has queued it.

/*
#cgo LDFLAGS: -lrbd
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>
#include <sys/eventfd.h>
#include <rbd/librbd.h>

typedef struct rbdio_req {
	struct rbdio_req *next;
	struct rbdio_cq *cq;
	uint64_t tag;
	int64_t ret;
} rbdio_req;

typedef struct rbdio_cq {
	pthread_mutex_t mu;
	int efd;
	rbdio_req *head, *tail;
} rbdio_cq;

typedef struct { uint64_t tag; int64_t ret; } rbdio_done;

static rbdio_cq *rbdio_cq_new(void) {
	rbdio_cq *q = calloc(1, sizeof *q);
	if (q == NULL) return NULL;
	q->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (q->efd < 0) { free(q); return NULL; }
	pthread_mutex_init(&q->mu, NULL);
	return q;
}

// rbdio_cq_free frees the queue; its eventfd belongs to the Go side then.
static void rbdio_cq_free(rbdio_cq *q) {
	rbdio_req *r = q->head;
	while (r != NULL) { rbdio_req *n = r->next; free(r); r = n; }
	pthread_mutex_destroy(&q->mu);
	free(q);
}

// rbdio_done_cb runs on a librbd thread when an aio request completes.
static void rbdio_done_cb(rbd_completion_t c, void *arg) {
	rbdio_req *r = arg;
	rbdio_cq *q = r->cq;
	r->ret = rbd_aio_get_return_value(c);
	rbd_aio_release(c);
	r->next = NULL;
	pthread_mutex_lock(&q->mu);
	int wake = q->head == NULL;
	if (q->tail != NULL) q->tail->next = r; else q->head = r;
	q->tail = r;
	pthread_mutex_unlock(&q->mu);
	if (wake) {
		uint64_t one = 1;
		ssize_t w;
		do { w = write(q->efd, &one, sizeof one); } while (w < 0 && errno == EINTR);
	}
}

// rbdio_drain moves up to max completions to out; it returns how many.
static int rbdio_drain(rbdio_cq *q, rbdio_done *out, int max) {
	int n = 0;
	pthread_mutex_lock(&q->mu);
	while (n < max && q->head != NULL) {
		rbdio_req *r = q->head;
		q->head = r->next;
		if (q->head == NULL) q->tail = NULL;
		out[n].tag = r->tag;
		out[n].ret = r->ret;
		n++;
		free(r);
	}
	pthread_mutex_unlock(&q->mu);
	return n;
}

// rbdio_aio starts an asynchronous read (write == 0) or write of len
// bytes at off; its completion goes to q under tag.
static int rbdio_aio(rbd_image_t img, rbdio_cq *q, uint64_t tag, int write, uint64_t off, size_t len, char *buf) {
	rbdio_req *r = malloc(sizeof *r);
	if (r == NULL) return -ENOMEM;
	r->cq = q;
	r->tag = tag;
	r->next = NULL;
	rbd_completion_t c;
	int e = rbd_aio_create_completion(r, rbdio_done_cb, &c);
	if (e < 0) { free(r); return e; }
	e = write ? rbd_aio_write(img, off, len, buf, c) : rbd_aio_read(img, off, len, buf, c);
	if (e < 0) { rbd_aio_release(c); free(r); return e; }
	return 0;
}
*/
import "C"

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"sync"
	"syscall"
	"unsafe"

	"github.com/ceph/go-ceph/rados"
)

// rbdErrno is a negative librbd return code. Like go-ceph's errors it
// reports the code through ErrorCode, which errnoOf (and so mapError)
// reads.
type rbdErrno int

func (e rbdErrno) Error() string {
	return fmt.Sprintf("rbd: ret=%d, %v", int(e), syscall.Errno(-e))
}

// ErrorCode is the negative errno.
func (e rbdErrno) ErrorCode() int { return int(e) }

// retErr turns a librbd return code into an error (nil when it is >= 0).
func retErr(ret C.int) error {
	if ret >= 0 {
		return nil
	}
	return rbdErrno(ret)
}

// drainBatch is how many completions one drain call moves.
const drainBatch = 64

// rbdHandle is an open librbd image: rbd_image_t plus its completion queue.
type rbdHandle struct {
	img C.rbd_image_t
	cq  *C.rbdio_cq
	efd *os.File // the queue's eventfd, in Go's netpoller

	mu      sync.Mutex
	nextTag uint64
	pending map[uint64]*aioReq
	loop    sync.WaitGroup // the completions goroutine
}

// aioReq is an asynchronous read or write in flight.
type aioReq struct {
	pin   runtime.Pinner // the buffer, while librbd holds it
	n     int            // bytes asked for
	write bool           // librbd completes a write with 0, a read with its byte count
	done  func(n int, err error)
}

// openHandle opens name in ioctx's pool, at its head (no snapshot).
func openHandle(ioctx *rados.IOContext, name string) (*rbdHandle, error) {
	cname := C.CString(name)
	defer C.free(unsafe.Pointer(cname))
	h := &rbdHandle{pending: map[uint64]*aioReq{}}
	if err := retErr(C.rbd_open(C.rados_ioctx_t(ioctx.Pointer()), cname, &h.img, nil)); err != nil {
		return nil, err
	}
	h.cq = C.rbdio_cq_new()
	if h.cq == nil {
		C.rbd_close(h.img)
		return nil, rbdErrno(-C.ENOMEM)
	}
	// The eventfd is non-blocking: os.NewFile puts it in the netpoller.
	h.efd = os.NewFile(uintptr(h.cq.efd), "rbd-aio-completions")
	h.loop.Add(1)
	go h.completions()
	return h, nil
}

// size is the image's size in bytes.
func (h *rbdHandle) size() (uint64, error) {
	var s C.uint64_t
	if err := retErr(C.rbd_get_size(h.img, &s)); err != nil {
		return 0, err
	}
	return uint64(s), nil
}

// readAt reads len(p) bytes at off and waits for them (io.EOF: fewer).
func (h *rbdHandle) readAt(p []byte, off int64) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	ret := C.rbd_read(h.img, C.uint64_t(off), C.size_t(len(p)), (*C.char)(unsafe.Pointer(&p[0])))
	return count(int64(ret), len(p), io.EOF)
}

// writeAt writes p at off and waits until librbd has taken it.
func (h *rbdHandle) writeAt(p []byte, off int64) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	ret := C.rbd_write(h.img, C.uint64_t(off), C.size_t(len(p)), (*C.char)(unsafe.Pointer(&p[0])))
	return count(int64(ret), len(p), io.ErrShortWrite)
}

// count turns the return value of a librbd call that moves want bytes
// into a byte count and an error: short when it moved fewer.
func count(ret int64, want int, short error) (int, error) {
	switch {
	case ret < 0:
		return 0, rbdErrno(ret)
	case ret < int64(want):
		return int(ret), short
	}
	return want, nil
}

// flush waits until every write so far is on the cluster.
func (h *rbdHandle) flush() error { return retErr(C.rbd_flush(h.img)) }

// discard deallocates n bytes at off.
func (h *rbdHandle) discard(off, n uint64) error {
	if ret := C.rbd_discard(h.img, C.uint64_t(off), C.uint64_t(n)); ret < 0 {
		return rbdErrno(ret)
	}
	return nil
}

// writeSame writes the pattern p over n bytes at off (n a multiple of
// len(p)), with librbd's rbd_writesame: the OSDs expand it, p crosses the
// wire once per object.
func (h *rbdHandle) writeSame(p []byte, off, n uint64) error {
	if n == 0 {
		return nil
	}
	ret := C.rbd_writesame(h.img, C.uint64_t(off), C.size_t(n), (*C.char)(unsafe.Pointer(&p[0])), C.size_t(len(p)), 0)
	_, err := count(int64(ret), int(n), io.ErrShortWrite)
	return err
}

// writeZeroes zeroes n bytes at off with librbd's rbd_write_zeroes: whole
// objects are deallocated, partial ones zeroed, so the range reads as
// zeros after (unlike discard, which skips partial pieces).
func (h *rbdHandle) writeZeroes(off, n uint64) error {
	if n == 0 {
		return nil
	}
	ret := C.rbd_write_zeroes(h.img, C.uint64_t(off), C.size_t(n), 0, 0)
	_, err := count(int64(ret), int(n), io.ErrShortWrite)
	return err
}

// readAsync starts reading len(p) bytes at off (len(p) > 0). done is
// called once, on the completions goroutine, when librbd is done with p:
// with n == len(p) and nil, or with an error. It must not block for long:
// the handle's other completions wait behind it. An error returned here
// means the read did not start and done will not be called.
func (h *rbdHandle) readAsync(p []byte, off int64, done func(n int, err error)) error {
	if len(p) == 0 {
		return errors.New("empty read")
	}
	return h.startAsync(p, off, false, done)
}

// writeAsync starts writing p at off (len(p) > 0), like readAsync: done
// is called once librbd has taken the write (as writeAt returns), with
// len(p) and nil or with an error.
func (h *rbdHandle) writeAsync(p []byte, off int64, done func(n int, err error)) error {
	if len(p) == 0 {
		return errors.New("empty write")
	}
	return h.startAsync(p, off, true, done)
}

// startAsync registers a request on p under a fresh tag and starts it.
func (h *rbdHandle) startAsync(p []byte, off int64, write bool, done func(n int, err error)) error {
	r := &aioReq{n: len(p), write: write, done: done}
	r.pin.Pin(&p[0])
	h.mu.Lock()
	h.nextTag++
	tag := h.nextTag
	h.pending[tag] = r
	h.mu.Unlock()
	w := C.int(0)
	if write {
		w = 1
	}
	if ret := C.rbdio_aio(h.img, h.cq, C.uint64_t(tag), w, C.uint64_t(off), C.size_t(len(p)), (*C.char)(unsafe.Pointer(&p[0]))); ret < 0 {
		h.mu.Lock()
		delete(h.pending, tag)
		h.mu.Unlock()
		r.pin.Unpin()
		return rbdErrno(ret)
	}
	return nil
}

// completions runs until close: it waits for the eventfd and hands each
// completed request to its callback.
func (h *rbdHandle) completions() {
	defer h.loop.Done()
	var (
		ev  [8]byte
		out [drainBatch]C.rbdio_done
	)
	for {
		// Read the eventfd before draining: a completion queued after the
		// drain writes it again, so none is missed.
		// The file is in the netpoller, which retries EAGAIN and EINTR
		// itself: a read fails only once close has closed it.
		if _, err := h.efd.Read(ev[:]); err != nil {
			return
		}
		h.drain(&out)
	}
}

// drain hands every queued completion to its request.
func (h *rbdHandle) drain(out *[drainBatch]C.rbdio_done) {
	for {
		n := int(C.rbdio_drain(h.cq, &out[0], drainBatch))
		for _, d := range out[:n] {
			h.complete(uint64(d.tag), int64(d.ret))
		}
		if n < drainBatch {
			return
		}
	}
}

// complete ends one asynchronous request.
func (h *rbdHandle) complete(tag uint64, ret int64) {
	h.mu.Lock()
	r := h.pending[tag]
	delete(h.pending, tag)
	h.mu.Unlock()
	if r == nil {
		return
	}
	r.pin.Unpin()
	if r.write && ret >= 0 {
		r.done(r.n, nil) // librbd writes all of it or fails
		return
	}
	r.done(count(ret, r.n, io.EOF))
}

// close closes the image. The caller makes sure no read is in flight
// (librbd waits for them anyway) and calls it once.
func (h *rbdHandle) close() error {
	err := retErr(C.rbd_close(h.img))
	// rbd_close has waited for every request: every completion is queued.
	// Stop the goroutine (closing the file wakes its Read), then hand out
	// what it had not taken yet.
	_ = h.efd.Close()
	h.loop.Wait()
	var out [drainBatch]C.rbdio_done
	h.drain(&out)
	C.rbdio_cq_free(h.cq)
	return err
}
