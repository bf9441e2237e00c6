package steps

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/bmi-go/bmi/service/fault"
)

// bootScript is a node's iPXE script as the node fetches it.
type bootScript struct {
	Text      string
	NoConfig  bool   // BMI has no boot config for the MAC
	Target    string // IQN of the sanboot target
	LUN       int    // the LUN it boots
	Initiator string // the initiator name the node uses
	User      string // CHAP user
	Secret    string // CHAP secret
}

// fetchBootScript returns the boot script of project's node (boot MAC
// mac) with its credentials. With a boot URL the tests may fetch from
// (Site.BootURL: the in-process bmid, which serves scripts without the
// lease and token checks) it is fetched like the node's iPXE does.
// Otherwise (the lab, a real site: a script with its secret goes only to
// the machine that booted) it is read through the API: the script by node
// name as the operator (secret hidden), the secret as the administrator.
func fetchBootScript(ctx context.Context, site *Site, project, node, mac string) (bootScript, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if site.BootURL == "" {
		return apiBootScript(ctx, site, project, node)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(site.BootURL, "/")+"/boot/"+mac+".ipxe", nil)
	if err != nil {
		return bootScript{}, err
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		return bootScript{}, fmt.Errorf("boot script of %s: %w", mac, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if res.StatusCode != http.StatusOK {
		return bootScript{}, fmt.Errorf("boot script of %s: HTTP %d: %s", mac, res.StatusCode, strings.TrimSpace(string(b)))
	}
	return parseBootScript(string(b))
}

// apiBootScript is fetchBootScript through the API.
func apiBootScript(ctx context.Context, site *Site, project, node string) (bootScript, error) {
	op, err := site.Client(site.Operator)
	if err != nil {
		return bootScript{}, err
	}
	bc, err := op.Boot(ctx, project, node)
	if errors.Is(err, fault.ErrNotFound) {
		return bootScript{NoConfig: true}, nil
	}
	if err != nil {
		return bootScript{}, fmt.Errorf("boot config of %s: %w", node, err)
	}
	text, err := op.BootScript(ctx, project, node)
	if err != nil {
		return bootScript{}, fmt.Errorf("boot script of %s: %w", node, err)
	}
	s, err := parseBootScript(text)
	if err != nil {
		return s, err
	}
	admin, err := site.Client(site.Admin)
	if err != nil {
		return s, err
	}
	cr, err := admin.Credentials(ctx, project, bc.Disk)
	if err != nil {
		return s, fmt.Errorf("credentials of disk %s: %w", bc.Disk, err)
	}
	s.Secret = cr.CHAPSecret
	return s, nil
}

// parseBootScript reads the target and CHAP credentials out of a script.
func parseBootScript(text string) (bootScript, error) {
	s := bootScript{Text: text, NoConfig: strings.Contains(text, "BMI-NO-BOOT-CONFIG")}
	for _, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		switch {
		case f[0] == "sanboot":
			for _, a := range f[1:] {
				if strings.HasPrefix(a, "iscsi:") {
					parts := strings.Split(a, ":")
					if len(parts) < 6 {
						return s, fmt.Errorf("boot script: bad sanboot URI %q", a)
					}
					s.Target = strings.Join(parts[5:], ":")
					if _, err := fmt.Sscanf(parts[4], "%d", &s.LUN); err != nil && parts[4] != "" {
						return s, fmt.Errorf("boot script: bad LUN in %q", a)
					}
				}
			}
		case f[0] == "set" && len(f) >= 3:
			v, err := settingValue(f[1], f[2])
			if err != nil {
				return s, err
			}
			switch strings.TrimSuffix(f[1], ":hex") {
			case "initiator-iqn":
				s.Initiator = v
			case "username":
				s.User = v
			case "password":
				s.Secret = v
			}
		}
	}
	if !s.NoConfig && s.Target == "" {
		return s, fmt.Errorf("boot script has neither a sanboot target nor the no-boot-config message:\n%s", text)
	}
	return s, nil
}

func settingValue(key, v string) (string, error) {
	if !strings.HasSuffix(key, ":hex") {
		return v, nil
	}
	b, err := hex.DecodeString(strings.ReplaceAll(v, ":", ""))
	if err != nil {
		return "", fmt.Errorf("boot script: %s: %w", key, err)
	}
	return string(b), nil
}

// iscsiURL is a libiscsi URL of LUN lun of target iqn at the site's portal.
func iscsiURL(site *Site, user, secret, iqn string, lun int) string {
	cred := ""
	if user != "" {
		cred = user + "%" + secret + "@"
	}
	return fmt.Sprintf("iscsi://%s%s/%s/%d", cred, site.Portal, iqn, lun)
}

// iscsiCommand runs a libiscsi tool on the site with a bounded time.
func iscsiCommand(ctx context.Context, site *Site, name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	argv := site.command(name, args...)
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	return string(out), err
}

// readCapacity logs into the script's target and LUN with its CHAP
// credentials and returns the LUN's size in bytes (iscsi-readcapacity16).
func readCapacity(ctx context.Context, site *Site, s bootScript) (uint64, error) {
	args := []string{"-s"}
	if s.Initiator != "" {
		args = append(args, "-i", s.Initiator)
	}
	out, err := iscsiCommand(ctx, site, "iscsi-readcapacity16", append(args, iscsiURL(site, s.User, s.Secret, s.Target, s.LUN))...)
	if err != nil {
		return 0, fmt.Errorf("iscsi-readcapacity16 %s lun %d: %w: %s", s.Target, s.LUN, err, strings.TrimSpace(out))
	}
	n, err := strconv.ParseUint(strings.TrimSpace(out), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("iscsi-readcapacity16 %s: no size in %q", s.Target, out)
	}
	return n, nil
}

// discover runs a SendTargets discovery (iscsi-ls) with the script's
// CHAP credentials and initiator name: BMI's target lists the targets
// those credentials open. A refused login lists nothing.
func discover(ctx context.Context, site *Site, s bootScript) (string, error) {
	args := []string{}
	if s.Initiator != "" {
		args = append(args, "-i", s.Initiator)
	}
	cred := ""
	if s.User != "" {
		cred = s.User + "%" + s.Secret + "@"
	}
	out, err := iscsiCommand(ctx, site, "iscsi-ls", append(args, "iscsi://"+cred+site.Portal)...)
	if err != nil {
		if strings.Contains(out, "Authentication failure") || strings.Contains(out, "Login failed") {
			return "", nil
		}
		return "", fmt.Errorf("iscsi-ls %s: %w: %s", site.Portal, err, strings.TrimSpace(out))
	}
	return out, nil
}
