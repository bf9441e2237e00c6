package steps

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"time"
)

// rbdRun runs the rbd CLI against the site's cluster and pool.
func rbdRun(ctx context.Context, site *Site, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	full := []string{"--conf", site.CephConf, "--pool", site.Pool}
	if site.CephUser != "" {
		full = append(full, "--id", site.CephUser)
	}
	argv := site.command("rbd", append(full, args...)...)
	out, err := exec.CommandContext(ctx, argv[0], argv[1:]...).CombinedOutput()
	return string(out), err
}

// rbdList lists the pool's images.
func rbdList(ctx context.Context, site *Site) ([]string, error) {
	out, err := rbdRun(ctx, site, "ls", "--format", "json")
	if err != nil {
		return nil, fmt.Errorf("rbd ls: %w: %s", err, strings.TrimSpace(out))
	}
	var names []string
	if err := json.Unmarshal([]byte(out), &names); err != nil {
		return nil, fmt.Errorf("rbd ls: %w", err)
	}
	return names, nil
}

// rbdExists says whether the pool has image name.
func rbdExists(ctx context.Context, site *Site, name string) (bool, error) {
	names, err := rbdList(ctx, site)
	return slices.Contains(names, name), err
}

// rbdImage is what `rbd info --format json` says about an image.
type rbdImage struct {
	Name   string `json:"name"`
	Size   uint64 `json:"size"`
	Parent *struct {
		Image    string `json:"image"`
		Snapshot string `json:"snapshot"`
	} `json:"parent"`
}

// rbdInfo describes image name.
func rbdInfo(ctx context.Context, site *Site, name string) (rbdImage, error) {
	out, err := rbdRun(ctx, site, "info", "--format", "json", name)
	if err != nil {
		return rbdImage{}, fmt.Errorf("rbd info %s: %w: %s", name, err, strings.TrimSpace(out))
	}
	var im rbdImage
	if err := json.Unmarshal([]byte(out), &im); err != nil {
		return rbdImage{}, fmt.Errorf("rbd info %s: %w", name, err)
	}
	return im, nil
}

// RBDList lists the site's pool (bmi-uat check and clean).
func RBDList(ctx context.Context, site *Site) ([]string, error) { return rbdList(ctx, site) }

// RBDRemove removes an image of the site's pool (bmi-uat clean removes
// the suite's own RBD images).
func RBDRemove(ctx context.Context, site *Site, name string) error {
	if out, err := rbdRun(ctx, site, "rm", "--no-progress", name); err != nil {
		return fmt.Errorf("rbd rm %s: %w: %s", name, err, strings.TrimSpace(out))
	}
	return nil
}
