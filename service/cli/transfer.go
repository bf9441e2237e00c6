package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/bmi-go/bmi/service/client"
	"github.com/bmi-go/bmi/service/clikit"
	"github.com/bmi-go/bmi/service/fault"
)

func (a *app) uploadCmd() *cobra.Command {
	var size string
	cmd := &cobra.Command{
		Use:   "upload PROJECT IMAGE FILE",
		Short: "Upload a raw disk image file as a new image (FILE - reads stdin; give --size)",
		Args:  clikit.ExactArgs("PROJECT", "IMAGE", "FILE"),
		RunE: a.run(func(ctx context.Context, c *client.Client, args []string) error {
			var r io.Reader
			var n int64
			if args[2] == "-" {
				if size == "" {
					return clikit.Usagef("uploading stdin needs --size")
				}
				r = a.env.Stdin
			} else {
				f, err := os.Open(args[2])
				if err != nil {
					return fault.Errorf(fault.Invalid, "upload: %v", err)
				}
				defer f.Close()
				st, err := f.Stat()
				if err != nil || !st.Mode().IsRegular() {
					return fault.Errorf(fault.Invalid, "upload: %s is not a regular file", args[2])
				}
				r, n = f, st.Size()
			}
			if size != "" {
				s, err := ParseSize(size)
				if err != nil {
					return err
				}
				if n > 0 && int64(s) != n {
					return fault.Errorf(fault.Invalid, "--size %s does not match %s's size %s", size, args[2], FormatSize(uint64(n)))
				}
				n = int64(s)
			}
			if n == 0 {
				return fault.Errorf(fault.Invalid, "upload: %s is empty", args[2])
			}
			p, b := a.byteBar(ctx, "upload "+args[1], n)
			im, _, err := c.Upload(ctx, args[0], args[1], proxyReader(b, r), n)
			finish(p, b, err)
			if err != nil {
				return err
			}
			return a.showImage(im)
		}),
	}
	cmd.Flags().StringVar(&size, "size", "", "size of the upload, e.g. \"10 GiB\" (needed for stdin)")
	return cmd
}

func (a *app) downloadCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "download PROJECT IMAGE FILE",
		Short: "Download an image, snapshot or disk to a file (sparse) or - for stdout",
		Args:  clikit.ExactArgs("PROJECT", "IMAGE", "FILE"),
		RunE: a.run(func(ctx context.Context, c *client.Client, args []string) error {
			rc, size, err := c.Download(ctx, args[0], args[1])
			if err != nil {
				return err
			}
			defer rc.Close()
			p, b := a.byteBar(ctx, "download "+args[1], size)
			src := proxyReader(b, rc)
			if args[2] == "-" {
				n, err := io.Copy(a.env.Stdout, src)
				if err == nil && n != size {
					err = fault.Errorf(fault.Unavailable, "download of %q ended after %d of %d bytes", args[1], n, size)
				}
				finish(p, b, err)
				return err
			}
			err = writeSparse(args[2], src, size)
			finish(p, b, err)
			if err != nil {
				return err
			}
			if a.output == "table" {
				_, err = fmt.Fprintf(a.env.Stderr, "downloaded %q (%s) to %s\n", args[1], FormatSize(uint64(size)), args[2])
				return err
			}
			return a.done(map[string]any{"project": args[0], "image": args[1], "file": args[2], "size": size}, "")
		}),
	}
}

// writeSparse writes exactly size bytes from r to path, seeking over
// all-zero blocks so that the file is as sparse as the image. It writes
// to path.part and renames it at the end: a failed download leaves no
// file behind.
func writeSparse(path string, r io.Reader, size int64) error {
	tmp := filepath.Join(filepath.Dir(path), "."+filepath.Base(path)+".part")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fault.Errorf(fault.Invalid, "download: %v", err)
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	buf := make([]byte, 64<<10)
	var off int64
	for {
		n, rerr := io.ReadFull(r, buf)
		if n > 0 {
			if !allZero(buf[:n]) {
				if _, err := f.WriteAt(buf[:n], off); err != nil {
					return fault.Errorf(fault.Unavailable, "download: %v", err)
				}
			}
			off += int64(n)
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return fault.Errorf(fault.Unavailable, "download: %v", rerr)
		}
	}
	if off != size {
		return fault.Errorf(fault.Unavailable, "download ended after %d of %d bytes", off, size)
	}
	if err := f.Truncate(size); err != nil {
		return fault.Errorf(fault.Unavailable, "download: %v", err)
	}
	if err := f.Close(); err != nil {
		return fault.Errorf(fault.Unavailable, "download: %v", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fault.Errorf(fault.Invalid, "download: %v", err)
	}
	ok = true
	return nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
