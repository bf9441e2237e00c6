//go:build !ceph_preview

package main

import (
	"errors"

	"github.com/spf13/cobra"
)

func migrateCmd(*globals) *cobra.Command {
	return &cobra.Command{
		Use:   "migrate-legacy",
		Short: "Bring an original BMI site into bmid's state (needs a build with Ceph support)",
		Long:  migrateLong,
		RunE: func(*cobra.Command, []string) error {
			return errors.New("this bmid was built without Ceph support; build it with -tags pacific,ceph_preview (make build does)")
		},
	}
}
