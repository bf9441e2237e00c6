// Command bmi-lab-io is the verifying disk workload of the lab's stay-up
// test OS (see lab/iocheck). It is built static (CGO_ENABLED=0) and put
// into the golden image's initramfs by the image builder; /init runs it on
// the node's own iSCSI disk after the boot marker:
//
//	bmi-lab-io --node NAME --device /dev/sda --offset BYTES --size BYTES [--duration 0]
//
// It exits 0 when the run saw no error and no mismatch, 1 otherwise, and 2
// on bad flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/bmi-go/bmi/lab/iocheck"
	"github.com/bmi-go/bmi/service/version"
)

func main() {
	fs := flag.NewFlagSet("bmi-lab-io", flag.ContinueOnError)
	node := fs.String("node", "", "node name written into every block (at most 32 bytes)")
	dev := fs.String("device", "", "the disk (opened O_DIRECT|O_DSYNC)")
	off := fs.Int64("offset", 0, "scratch area offset in bytes (a multiple of 4096)")
	size := fs.Int64("size", 0, "scratch area size in bytes (a multiple of 4096, at least 8192)")
	dur := fs.Duration("duration", 0, "how long to run; 0 runs until SIGTERM/SIGINT or power off")
	pause := fs.Duration("pause", 10*time.Millisecond, "wait between two write+verify rounds")
	showVersion := fs.Bool("version", false, "print the version and exit")
	fs.SetOutput(io.Discard)
	if err := fs.Parse(os.Args[1:]); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fmt.Println("usage: bmi-lab-io --node NAME --device DISK --offset BYTES --size BYTES [--duration D] [--pause D]")
			fs.SetOutput(os.Stdout)
			fs.PrintDefaults()
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "bmi-lab-io:", err)
		os.Exit(2)
	}
	if *showVersion {
		fmt.Println("bmi-lab-io", version.String())
		return
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "bmi-lab-io: unexpected argument %q\n", fs.Arg(0))
		os.Exit(2)
	}
	if *dev == "" {
		fmt.Fprintln(os.Stderr, "bmi-lab-io: --device is required")
		os.Exit(2)
	}
	f, err := os.OpenFile(*dev, os.O_RDWR|syscall.O_DIRECT|syscall.O_DSYNC, 0)
	if err != nil {
		fmt.Fprintf(os.Stderr, "bmi-lab-io: %v\n", err)
		os.Exit(1)
	}
	defer f.Close()
	c, err := iocheck.New(iocheck.Config{Node: *node, Offset: *off, Size: *size, Duration: *dur, Pause: *pause,
		Seed: uint64(time.Now().UnixNano())}, f, os.Stdout)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bmi-lab-io:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	st := c.Run(ctx)
	if st.Errors > 0 || st.Mismatches > 0 {
		os.Exit(1)
	}
}
