package legacy

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"

	_ "modernc.org/sqlite" // the "sqlite" database/sql driver

	"github.com/bmi-go/bmi/service/config"
	"github.com/bmi-go/bmi/service/fault"
)

// Options say where the original site's parts are. Empty fields come
// from the original's configuration file or the original's defaults.
type Options struct {
	// Config is the original's bmiconfig.cfg (required).
	Config string
	// DB overrides [db] path.
	DB string
	// TgtDir is tgt's configuration directory (default /etc/tgt/conf.d,
	// the directory the original wrote one file per target into).
	TgtDir string
	// PxelinuxDir and IPXEDir override [tftp] pxelinux_path and ipxe_path.
	PxelinuxDir, IPXEDir string
}

// DefaultTgtDir is where the original wrote its tgt target files.
const DefaultTgtDir = "/etc/tgt/conf.d"

// Site is what the original site holds.
type Site struct {
	// DB is the original's database file.
	DB string
	// UID, Snapshot and Pool are [bmi] uid, [bmi] snapshot ("snapshot"
	// before it was configurable) and [fs] pool.
	UID, Snapshot, Pool string
	Projects            []Project
	Images              []Image
	// Targets maps a tgt target name to its file.
	Targets map[string]string
	// Boots are the nodes the boot files boot.
	Boots []BootFile
	// TgtDir, PxelinuxDir and IPXEDir are where the files were read.
	TgtDir, PxelinuxDir, IPXEDir string
}

// Project is a row of the original's project table.
type Project struct {
	ID   int64
	Name string
}

// Image is a row of the original's image table.
type Image struct {
	ID         int64
	Name       string
	ProjectID  int64
	ParentID   int64 // 0: NULL
	IsSnapshot bool
	IsPublic   bool
}

// BootFile is a node's pair of boot files: pxelinux.cfg/01-<mac> naming
// <node>.ipxe, whose sanboot line names the target (the clone's Ceph name).
type BootFile struct {
	Node, MAC, Target string
	Files             []string
}

// ReadSite reads the original site; a missing or unreadable part, a file
// that is not the original's database or a row that breaks its schema is
// an error of kind fault.Invalid naming it.
func ReadSite(ctx context.Context, o Options) (*Site, error) {
	f, err := os.Open(o.Config)
	if err != nil {
		return nil, fault.Errorf(fault.Invalid, "the original's configuration: %v", err)
	}
	ini, err := config.ReadLegacyINI(f, o.Config)
	f.Close()
	if err != nil {
		return nil, fault.Errorf(fault.Invalid, "the original's configuration: %v", err)
	}
	get := func(sec, key string) string { return strings.TrimSpace(ini[sec][key]) }
	s := &Site{DB: first(o.DB, get("db", "path")), UID: get("bmi", "uid"), Snapshot: first(get("bmi", "snapshot"), "snapshot"),
		Pool: get("fs", "pool"), TgtDir: first(o.TgtDir, DefaultTgtDir),
		PxelinuxDir: first(o.PxelinuxDir, get("tftp", "pxelinux_path")), IPXEDir: first(o.IPXEDir, get("tftp", "ipxe_path"))}
	switch {
	case s.UID == "":
		return nil, fault.Errorf(fault.Invalid, "%s: [bmi] uid is missing", o.Config)
	case s.DB == "":
		return nil, fault.Errorf(fault.Invalid, "%s: [db] path is missing (or give --legacy-db)", o.Config)
	}
	if err := s.readDB(ctx); err != nil {
		return nil, err
	}
	if s.Targets, err = readTgt(s.TgtDir); err != nil {
		return nil, err
	}
	if s.Boots, err = readBootFiles(s.PxelinuxDir, s.IPXEDir); err != nil {
		return nil, err
	}
	return s, nil
}

func first(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}

// readDB reads the original's tables, read-only, after checking that the
// file is an intact SQLite database with the original's schema.
func (s *Site) readDB(ctx context.Context) error {
	bad := func(format string, a ...any) error {
		return fault.Errorf(fault.Invalid, "the original's database %s: "+format, append([]any{s.DB}, a...)...)
	}
	if _, err := os.Stat(s.DB); err != nil {
		return bad("%v", err)
	}
	db, err := sql.Open("sqlite", "file:"+(&url.URL{Path: s.DB}).EscapedPath()+"?mode=ro&_pragma=query_only(1)")
	if err != nil {
		return bad("%v", err)
	}
	defer db.Close()
	var check string
	if err := db.QueryRowContext(ctx, `PRAGMA quick_check`).Scan(&check); err != nil || check != "ok" {
		return bad("not an intact SQLite database (%s)", first(check, fmt.Sprint(err)))
	}
	for _, t := range []struct {
		table string
		cols  []string
	}{{"project", []string{"id", "name"}}, {"image", []string{"id", "name", "is_public", "is_snapshot", "project_id", "parent_id"}}} {
		table, cols := t.table, t.cols
		have, err := columns(ctx, db, table)
		if err != nil {
			return bad("%v", err)
		}
		for _, c := range cols {
			if !have[c] {
				return bad("not the original BMI's: table %q has no column %q", table, c)
			}
		}
	}
	rows, err := db.QueryContext(ctx, `SELECT id, name FROM project ORDER BY id`)
	if err != nil {
		return bad("%v", err)
	}
	defer rows.Close()
	for rows.Next() {
		var p Project
		var name sql.NullString
		if err := rows.Scan(&p.ID, &name); err != nil {
			return bad("project row: %v", err)
		}
		if !name.Valid || name.String == "" {
			return bad("project row %d has no name", p.ID)
		}
		p.Name = name.String
		s.Projects = append(s.Projects, p)
	}
	if err := rows.Err(); err != nil {
		return bad("%v", err)
	}
	irows, err := db.QueryContext(ctx, `SELECT id, name, is_public, is_snapshot, project_id, parent_id FROM image ORDER BY id`)
	if err != nil {
		return bad("%v", err)
	}
	defer irows.Close()
	for irows.Next() {
		var im Image
		var name sql.NullString
		var pub, snap, proj, parent sql.NullInt64
		if err := irows.Scan(&im.ID, &name, &pub, &snap, &proj, &parent); err != nil {
			return bad("image row: %v", err)
		}
		switch {
		case !name.Valid || name.String == "":
			return bad("image row %d has no name", im.ID)
		case !proj.Valid:
			return bad("image row %d (%q) has no project_id", im.ID, name.String)
		case pub.Int64 > 1 || pub.Int64 < 0 || snap.Int64 > 1 || snap.Int64 < 0:
			return bad("image row %d (%q): is_public/is_snapshot are not booleans", im.ID, name.String)
		}
		im.Name, im.ProjectID, im.ParentID, im.IsPublic, im.IsSnapshot = name.String, proj.Int64, parent.Int64, pub.Int64 == 1, snap.Int64 == 1
		s.Images = append(s.Images, im)
	}
	return irows.Err()
}

func columns(ctx context.Context, db *sql.DB, table string) (map[string]bool, error) {
	rows, err := db.QueryContext(ctx, `SELECT name FROM pragma_table_info(?)`, table)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	have := map[string]bool{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, err
		}
		have[n] = true
	}
	return have, rows.Err()
}

// readTgt reads the original's tgt files: "<target NAME>" in each *.conf.
// A missing directory is no target at all.
func readTgt(dir string) (map[string]string, error) {
	out := map[string]string{}
	files, err := filepath.Glob(filepath.Join(dir, "*.conf"))
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fault.Errorf(fault.Invalid, "tgt file %s: %v", f, err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			line = strings.TrimSpace(line)
			if name, ok := strings.CutPrefix(line, "<target "); ok {
				out[strings.TrimSpace(strings.TrimSuffix(name, ">"))] = f
			}
		}
	}
	return out, nil
}

// readBootFiles pairs each pxelinux.cfg/01-<mac> with the <node>.ipxe its
// INITRD names and takes the target from that script's iscsi: URI. Files
// that are not the original's (other names, no INITRD, no sanboot) are
// left out.
func readBootFiles(pxeDir, ipxeDir string) ([]BootFile, error) {
	if pxeDir == "" {
		return nil, nil
	}
	files, err := filepath.Glob(filepath.Join(pxeDir, "01-*"))
	if err != nil {
		return nil, err
	}
	sort.Strings(files)
	var out []BootFile
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, fault.Errorf(fault.Invalid, "boot file %s: %v", f, err)
		}
		initrd := ""
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(line), "INITRD "); ok {
				initrd = strings.TrimSpace(v)
			}
		}
		node, ok := strings.CutSuffix(filepath.Base(initrd), ".ipxe")
		if !ok || node == "" {
			continue
		}
		script := filepath.Join(ipxeDir, node+".ipxe")
		sb, err := os.ReadFile(script)
		if err != nil {
			return nil, fault.Errorf(fault.Invalid, "boot file %s names %s: %v", f, script, err)
		}
		target := ""
		for _, field := range strings.Fields(string(sb)) {
			if strings.HasPrefix(field, "iscsi:") {
				target = field[strings.LastIndex(field, ":")+1:]
			}
		}
		if target == "" {
			continue
		}
		mac := strings.ReplaceAll(strings.TrimPrefix(filepath.Base(f), "01-"), "-", ":")
		out = append(out, BootFile{Node: node, MAC: mac, Target: target, Files: []string{f, script}})
	}
	return out, nil
}
