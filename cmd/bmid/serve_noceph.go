//go:build !ceph_preview

package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func serveCmd(*globals) *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Run the service (needs a build with Ceph support)",
		RunE: func(*cobra.Command, []string) error {
			return errors.New("this bmid was built without Ceph support; build it with -tags pacific,ceph_preview (make build does)")
		},
	}
}
