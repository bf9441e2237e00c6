package cli

import (
	"github.com/spf13/cobra"

	"github.com/bmi-go/bmi/service/clikit"
)

// retiredCommand is a command of the original BMI (or of its seccloud
// branch) that this BMI does not keep, with the one line that names what
// replaces it.
type retiredCommand struct {
	parent, name, line string
}

// retiredCommands lists them by their parent group ("" is the root).
var retiredCommands = []retiredCommand{
	{"db", "create", "is not kept: BMI never makes an image row without its Ceph image; use `bmi import PROJECT CEPH_IMAGE` " +
		"(or `bmid migrate-legacy` to bring an original site's rows over with their Ceph images)"},
	{"iscsi", "iscsi_target_info", "is not kept: use `bmi disk sanboot PROJECT DISK` (or `bmi disk show`: portal, port, LUN and IQN)"},
	{"", "script", "is not kept: BMI runs nothing on images; boot a node from a disk of the image " +
		"(`bmi disk create`, `bmi boot set`) and run the script there"},
}

// retired returns the hidden command that prints c's line and exits 2,
// whatever arguments and flags it is given.
func retired(c retiredCommand, path string) *cobra.Command {
	return &cobra.Command{
		Use:                c.name,
		Short:              "(the original's; " + c.line + ")",
		Hidden:             true,
		DisableFlagParsing: true,
		Args:               cobra.ArbitraryArgs,
		RunE: func(*cobra.Command, []string) error {
			return clikit.Usagef("`%s` %s", path, c.line)
		},
	}
}

// addRetired adds the retired commands under their groups of root.
func addRetired(root *cobra.Command) {
	for _, rc := range retiredCommands {
		parent := root
		if rc.parent != "" {
			for _, c := range root.Commands() {
				if c.Name() == rc.parent {
					parent = c
				}
			}
		}
		parent.AddCommand(retired(rc, parent.CommandPath()+" "+rc.name))
	}
}

// errProjectID is project create's answer to the original's --id.
var errProjectID = clikit.Usagef("`bmi project create --id` is not kept: a project's id names nothing outside BMI's database " +
	"(Ceph names come from image ids), so BMI assigns it; `bmid migrate-legacy` brings an original site's projects over")
