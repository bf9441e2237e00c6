//go:build ceph_preview

package e2e_test

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/bmi-go/bmi/internal/testenv"
	"github.com/bmi-go/bmi/service/client"
	"github.com/bmi-go/bmi/service/logging"
)

// loginFromSanboot logs in to a disk the way an external boot manager
// would, from bmid's answers only: the sanboot URI and ACL (as member, a
// project member), the CHAP secret from the credentials route (as admin,
// an administrator); then libiscsi's iscsi-inq reads the LUN's inquiry
// data through a real iSCSI login. It returns iscsi-inq's output.
func loginFromSanboot(t *testing.T, base string, member, admin [2]string, project, disk string) string {
	t.Helper()
	testenv.RequireCommand(t, "iscsi-inq", "libiscsi-bin")
	ctx := context.Background()
	mc, err := client.New(base, member[0], logging.Secret(member[1]))
	if err != nil {
		t.Fatal(err)
	}
	sb, err := mc.Sanboot(ctx, project, disk)
	if err != nil {
		t.Fatalf("sanboot %s/%s: %v", project, disk, err)
	}
	var host, iqn string
	var port, lun int
	rest, ok := strings.CutPrefix(sb.URI, "iscsi:")
	parts := strings.SplitN(rest, ":", 5)
	if !ok || len(parts) != 5 || parts[1] != "" {
		t.Fatalf("sanboot URI %q is not iscsi:<host>::<port>:<lun>:<iqn>", sb.URI)
	}
	host, iqn = parts[0], parts[4]
	if _, err := fmt.Sscanf(parts[2]+" "+parts[3], "%d %d", &port, &lun); err != nil {
		t.Fatalf("sanboot URI %q: %v", sb.URI, err)
	}
	if len(sb.Initiators) == 0 {
		t.Fatalf("sanboot of %s/%s names no initiator the ACL lets in: %+v", project, disk, sb)
	}
	ac, err := client.New(base, admin[0], logging.Secret(admin[1]))
	if err != nil {
		t.Fatal(err)
	}
	cr, err := ac.Credentials(ctx, project, disk)
	if err != nil {
		t.Fatalf("credentials %s/%s: %v", project, disk, err)
	}
	url := fmt.Sprintf("iscsi://%s%%%s@%s:%d/%s/%d", cr.CHAPUser, cr.CHAPSecret, host, port, iqn, lun)
	out, err := exec.Command("iscsi-inq", "-i", sb.Initiators[0], url).CombinedOutput()
	if err != nil {
		t.Fatalf("iscsi-inq from the sanboot answer of %s/%s (%s): %v\n%s", project, disk, sb.URI, err, out)
	}
	return string(out)
}
