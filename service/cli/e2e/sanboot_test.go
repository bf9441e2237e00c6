//go:build ceph_preview

package e2e_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bmi-go/bmi/internal/testenv"
	"github.com/bmi-go/bmi/service/client"
	"github.com/bmi-go/bmi/service/logging"
)

// sanbootLogin is what an external boot manager learns from bmid's
// answers only: the sanboot URI and ACL (as member, a project member),
// the CHAP credentials from the credentials route (as admin).
type sanbootLogin struct {
	host, iqn, initiator, user, secret string
	port, lun                          int
}

func sanbootOf(t *testing.T, base string, member, admin [2]string, project, disk string) sanbootLogin {
	t.Helper()
	ctx := context.Background()
	mc, err := client.New(base, member[0], logging.Secret(member[1]))
	if err != nil {
		t.Fatal(err)
	}
	sb, err := mc.Sanboot(ctx, project, disk)
	if err != nil {
		t.Fatalf("sanboot %s/%s: %v", project, disk, err)
	}
	var l sanbootLogin
	rest, ok := strings.CutPrefix(sb.URI, "iscsi:")
	parts := strings.SplitN(rest, ":", 5)
	if !ok || len(parts) != 5 || parts[1] != "" {
		t.Fatalf("sanboot URI %q is not iscsi:<host>::<port>:<lun>:<iqn>", sb.URI)
	}
	l.host, l.iqn = parts[0], parts[4]
	if _, err := fmt.Sscanf(parts[2]+" "+parts[3], "%d %d", &l.port, &l.lun); err != nil {
		t.Fatalf("sanboot URI %q: %v", sb.URI, err)
	}
	if len(sb.Initiators) == 0 {
		t.Fatalf("sanboot of %s/%s names no initiator the ACL lets in: %+v", project, disk, sb)
	}
	l.initiator = sb.Initiators[0]
	ac, err := client.New(base, admin[0], logging.Secret(admin[1]))
	if err != nil {
		t.Fatal(err)
	}
	cr, err := ac.Credentials(ctx, project, disk)
	if err != nil {
		t.Fatalf("credentials %s/%s: %v", project, disk, err)
	}
	l.user, l.secret = cr.CHAPUser, cr.CHAPSecret
	return l
}

// loginFromSanboot logs in to a disk from bmid's answers with libiscsi's
// iscsi-inq (a real iSCSI login and INQUIRY); it returns its output.
func loginFromSanboot(t *testing.T, base string, member, admin [2]string, project, disk string) string {
	t.Helper()
	testenv.RequireCommand(t, "iscsi-inq", "libiscsi-bin")
	l := sanbootOf(t, base, member, admin, project, disk)
	url := fmt.Sprintf("iscsi://%s%%%s@%s:%d/%s/%d", l.user, l.secret, l.host, l.port, l.iqn, l.lun)
	out, err := exec.Command("iscsi-inq", "-i", l.initiator, url).CombinedOutput()
	if err != nil {
		t.Fatalf("iscsi-inq from the sanboot answer of %s/%s: %v\n%s", project, disk, err, out)
	}
	return string(out)
}

// readFromSanboot reads a whole disk over iSCSI from bmid's answers with
// QEMU's libiscsi block driver (qemu-img convert), as a node's initiator
// would read it.
func readFromSanboot(t *testing.T, base string, member, admin [2]string, project, disk string) []byte {
	t.Helper()
	testenv.RequireCommand(t, "qemu-img", "qemu-utils")
	l := sanbootOf(t, base, member, admin, project, disk)
	out := filepath.Join(t.TempDir(), disk+".raw")
	opts := fmt.Sprintf("driver=raw,file.driver=iscsi,file.transport=tcp,file.portal=%s:%d,file.target=%s,file.lun=%d,"+
		"file.user=%s,file.password=%s,file.initiator-name=%s", l.host, l.port, l.iqn, l.lun, l.user, l.secret, l.initiator)
	if b, err := exec.Command("qemu-img", "convert", "--image-opts", opts, "-O", "raw", out).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img convert from the sanboot answer of %s/%s: %v\n%s", project, disk, err, b)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
