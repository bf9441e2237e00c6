package lab

import (
	"context"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"time"

	"github.com/bmi-go/bmi/lab/internal/proc"
	"github.com/bmi-go/bmi/service/fault"
)

// The several-gateway lab's state is in a PostgreSQL of its own
// (Debian's postgresql, as scripts/with-test-postgres.sh starts one for
// the tests): initdb'd at the first `up`, on a unix socket only (no TCP:
// the gateways in their namespaces reach it through the file system),
// run as the postgres user (PostgreSQL refuses root), trust
// authentication for that socket, whose directory only root and postgres
// can enter. Its files are in postgresDir, outside the lab directory when
// that is not reachable by the postgres user (a test's temporary
// directory is 0700 root), and `down` purges them.

// pgUser is the system user PostgreSQL runs as.
const pgUser = "postgres"

// postgresDir is where the lab's PostgreSQL keeps its data and socket:
// one directory per lab name, which `down` removes.
func (l *Lab) postgresDir() string {
	return filepath.Join(os.TempDir(), "bmi-lab-"+l.Name+"-pg")
}

// PostgresDSN is the gateways' state.dsn.
func (l *Lab) PostgresDSN() string {
	return fmt.Sprintf("host=%s user=bmi dbname=bmi sslmode=disable", l.postgresDir())
}

// pgBin finds Debian's PostgreSQL programs (/usr/lib/postgresql/<v>/bin).
func pgBin() (string, error) {
	ms, _ := filepath.Glob("/usr/lib/postgresql/*/bin/postgres")
	if len(ms) == 0 {
		return "", fmt.Errorf("PostgreSQL is not installed (make deps: Debian's postgresql): %w", fault.ErrUnavailable)
	}
	return filepath.Dir(ms[len(ms)-1]), nil
}

// startPostgres starts the lab's PostgreSQL (initdb and the database bmi
// at the first start) unless it runs, and waits until it answers.
func (l *Lab) startPostgres(ctx context.Context, running proc.ID) (proc.ID, error) {
	bin, err := pgBin()
	if err != nil {
		return proc.ID{}, err
	}
	dir := l.postgresDir()
	data := filepath.Join(dir, "data")
	if running.Alive() {
		return running, l.waitPostgres(ctx, bin)
	}
	u, err := user.Lookup(pgUser)
	if err != nil {
		return proc.ID{}, fmt.Errorf("lab %q: PostgreSQL's user %q: %w", l.Name, pgUser, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	as := []string{"setpriv", "--reuid=" + u.Uid, "--regid=" + u.Gid, "--init-groups", "--"}
	if _, err := os.Stat(filepath.Join(data, "PG_VERSION")); err != nil {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return proc.ID{}, err
		}
		if err := os.Chown(dir, uid, gid); err != nil {
			return proc.ID{}, err
		}
		argv := append(as, filepath.Join(bin, "initdb"), "-D", data, "-U", "bmi", "--auth=trust", "-E", "UTF8", "--locale=C", "--no-sync")
		if _, err := proc.Run(ctx, argv...); err != nil {
			return proc.ID{}, fmt.Errorf("lab %q: initdb: %w", l.Name, err)
		}
	}
	argv := append(as, filepath.Join(bin, "postgres"), "-D", data, "-k", dir, "-c", "listen_addresses=",
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off", "-c", "max_connections=200")
	id, err := proc.StartDaemon(argv, nil, filepath.Join(l.Dir, "postgres.log"))
	if err != nil {
		return proc.ID{}, err
	}
	if err := l.waitPostgres(ctx, bin); err != nil {
		return id, err
	}
	// The database bmi, once.
	out, err := proc.Run(ctx, filepath.Join(bin, "psql"), "-h", dir, "-U", "bmi", "-d", "postgres", "-tAc", "SELECT 1 FROM pg_database WHERE datname = 'bmi'")
	if err != nil {
		return id, fmt.Errorf("lab %q: PostgreSQL: %w", l.Name, err)
	}
	if len(out) == 0 || out[0] != '1' {
		if _, err := proc.Run(ctx, filepath.Join(bin, "createdb"), "-h", dir, "-U", "bmi", "bmi"); err != nil {
			return id, fmt.Errorf("lab %q: createdb: %w", l.Name, err)
		}
	}
	return id, nil
}

// waitPostgres waits until the lab's PostgreSQL accepts connections.
func (l *Lab) waitPostgres(ctx context.Context, bin string) error {
	var err error
	for end := time.Now().Add(60 * time.Second); time.Now().Before(end); time.Sleep(200 * time.Millisecond) {
		if _, err = proc.Run(ctx, filepath.Join(bin, "pg_isready"), "-q", "-h", l.postgresDir(), "-U", "bmi"); err == nil {
			return nil
		}
	}
	return fmt.Errorf("lab %q: PostgreSQL not ready within 60 s (see %s): %w", l.Name, filepath.Join(l.Dir, "postgres.log"), err)
}

// purgePostgres removes the lab's PostgreSQL files (the server stopped).
func (l *Lab) purgePostgres() error { return os.RemoveAll(l.postgresDir()) }
