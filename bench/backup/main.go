// Command backup benchmarks AIPress's site backups against restic on the
// same site data.
//
// It starts one real shard (its own MariaDB and php-fpm, in a temporary
// directory), creates a WordPress site on it, and fills it: -posts posts
// inserted in SQL (with a few postmeta rows each) and about -uploads-mb MiB
// of uploads — random bytes, which compress no better than real JPEGs, with
// one file in -dup-every a copy of an earlier one (the same image uploaded
// twice). Then, on that site:
//
//   - restic (Debian's `restic`, anchor): `mariadb-dump --single-transaction
//     | restic backup --stdin` plus `restic backup wp-content`, a first run
//     and a second one of the unchanged site, then a restore: `restic dump
//     … | mariadb` into a fresh database and `restic restore` of the files;
//   - AIPress: the shard's backup (shard.BackupSite: the dump streamed into
//     the deduplicating repository, table checksums, a tar of wp-content),
//     first and second run, then a restore in place (staging database and
//     docroot, swap).
//
// It prints the times and repository sizes side by side and the goal (at
// least restic's speed and no more than its size). Both tools get the same
// machine, data and MariaDB server, one after the other; their repositories
// are local directories.
//
//	go run ./bench/backup [-posts 3000] [-uploads-mb 200] [-keep] [-json] [-cpuprofile f]
//
// or `make bench-backup`. Run it as root (the shard creates a Unix user for
// the site). Without restic only AIPress is measured.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"syscall"
	"time"

	"github.com/aipress/aipress/bench/internal/benchplatform"
	"github.com/aipress/aipress/internal/backup/repo"
	"github.com/aipress/aipress/internal/fsperm"
	"github.com/aipress/aipress/internal/shard"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store/sqlite"
)

func main() {
	posts := flag.Int("posts", 3000, "posts to generate")
	uploadsMB := flag.Int("uploads-mb", 200, "MiB of uploads to generate")
	dupEvery := flag.Int("dup-every", 10, "every n-th upload is a copy of an earlier one (0: none)")
	keep := flag.Bool("keep", false, "keep the temporary directory")
	asJSON := flag.Bool("json", false, "print the report as JSON")
	flag.StringVar(&cpuProfile, "cpuprofile", "", "write a CPU profile of AIPress's backups to this file")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	rep, err := run(ctx, *posts, *uploadsMB, *dupEvery, *keep)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench-backup:", err)
		os.Exit(1)
	}
	if *asJSON {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(rep)
		return
	}
	rep.Table().Print(os.Stdout)
	fmt.Println()
	for _, l := range rep.Verdict() {
		fmt.Println(l)
	}
}

// cpuProfile, if set, is where the CPU profile of AIPress's two backups
// goes (go tool pprof).
var cpuProfile string

func run(ctx context.Context, posts, uploadsMB, dupEvery int, keep bool) (*Report, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("run as root: the shard creates a Unix user per site")
	}
	dir, err := os.MkdirTemp("", "aipress-bench-backup-")
	if err != nil {
		return nil, err
	}
	if _, err := fsperm.EnsureTraversable(dir); err != nil {
		return nil, err
	}
	benchplatform.Logf("working in %s", dir)
	st, err := sqlite.Open(ctx, filepath.Join(dir, "cp.db"))
	if err != nil {
		return nil, err
	}
	defer st.Close()
	kek := []byte("bench-backup-key-0123456789abcde")
	aipressRepo := filepath.Join(dir, "aipress-repo")
	if err := os.MkdirAll(aipressRepo, 0o700); err != nil {
		return nil, err
	}
	// metadata=skip: no sidecar file (and MD5) per object, as OpenURL
	// would add anyway.
	r, err := repo.OpenURL(ctx, "file://"+aipressRepo+"?metadata=skip", kek, true, nil)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	sh := shard.New(shard.Config{
		Name: "bench", Dir: filepath.Join(dir, "shard"), Logger: log, CronInterval: -1, Resync: time.Hour,
		Repos: func(context.Context, string) (*repo.Repo, error) { return r, nil },
	})
	if err := sh.Prepare(ctx); err != nil {
		return nil, err
	}
	src := shard.FromStore(st)
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- sh.Run(runCtx, src) }()
	const domain, uid = "bench-backup.localhost", "bench-backup-site"
	defer func() {
		// Remove the site (and its Unix user) before the shard stops.
		if _, err := st.UpdateSite(context.WithoutCancel(ctx), domain, func(s *site.Site) error {
			now := time.Now().UTC()
			s.Metadata.DeletionRequested = &now
			return nil
		}); err == nil {
			_ = sh.Converge(context.WithoutCancel(ctx), src)
		}
		cancel()
		<-done
		if keep {
			benchplatform.Logf("kept %s", dir)
		} else {
			// What the deletion left (the shard's spare pools' users).
			if _, err := shard.RemoveUsersUnder(context.WithoutCancel(ctx), dir); err != nil {
				benchplatform.Logf("removing the shard's Unix users: %v", err)
			}
			_ = os.RemoveAll(dir)
		}
	}()
	select {
	case <-sh.Ready():
	case err := <-done:
		return nil, fmt.Errorf("shard: %v", err)
	case <-ctx.Done():
		return nil, ctx.Err()
	}

	benchplatform.Logf("creating the site")
	s := &site.Site{
		Metadata: site.Metadata{Name: domain, UID: uid, CreatedAt: time.Now().UTC()},
		Spec:     site.Spec{Domain: domain, Title: "Backup bench", Plan: "basic", Admin: site.Admin{User: "admin", Email: "a@example.com"}},
		Status:   site.Status{Phase: site.PhasePending, Shard: "bench"},
	}
	if err := st.CreateSite(ctx, s); err != nil {
		return nil, err
	}
	for i := 0; ; i++ {
		err := sh.Converge(ctx, src)
		if s, _ = st.GetSite(ctx, domain); s.Status.Phase == site.PhaseReady {
			break
		}
		if i == 5 {
			return nil, fmt.Errorf("site not ready: %v", err)
		}
	}
	n := sh.NamesFor(uid)
	benchplatform.Logf("generating %d posts and %d MiB of uploads", posts, uploadsMB)
	if err := fillDatabase(ctx, sh, n.DB, posts); err != nil {
		return nil, err
	}
	content := filepath.Join(n.Docroot, "wp-content")
	if err := writeUploads(filepath.Join(content, "uploads"), planUploads(int64(uploadsMB)<<20, dupEvery)); err != nil {
		return nil, err
	}
	uid0, gid0 := ownerOf(filepath.Join(content, "uploads"))
	_ = filepath.WalkDir(filepath.Join(content, "uploads"), func(p string, _ fs.DirEntry, err error) error {
		if err == nil {
			_ = os.Lchown(p, uid0, gid0)
		}
		return nil
	})
	dbSize, err := dumpSize(ctx, sh, n.DB)
	if err != nil {
		return nil, err
	}
	rep := &Report{Posts: posts, DumpBytes: dbSize, UploadBytes: dirSize(filepath.Join(content, "uploads")), LoadBefore: loadAvg()}
	benchplatform.Logf("site data: dump %s, uploads %s", mib(rep.DumpBytes), mib(rep.UploadBytes))

	// restic.
	if _, err := exec.LookPath("restic"); err != nil {
		benchplatform.Logf("restic not installed: only AIPress is measured (make bench-backup installs it)")
	} else {
		rr := &restic{repo: filepath.Join(dir, "restic-repo"), password: "bench", cnf: filepath.Join(sh.DB().Dir, "root-client.cnf")}
		res, err := rr.bench(ctx, n.DB, content, filepath.Join(dir, "restic-restore"), func(db string) error {
			return sh.DB().CreateSchema(ctx, db)
		})
		if err != nil {
			return nil, fmt.Errorf("restic: %w", err)
		}
		rep.Restic = res
	}

	// AIPress.
	var a Result
	a.Tool = "aipress"
	if cpuProfile != "" {
		f, err := os.Create(cpuProfile)
		if err != nil {
			return nil, err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			return nil, err
		}
		defer f.Close()
	}
	for i := 0; i < 2; i++ {
		s, _ = st.GetSite(ctx, domain)
		t0 := time.Now()
		res, err := sh.BackupSite(ctx, s, "bench", nil)
		if err != nil {
			return nil, fmt.Errorf("aipress backup: %w", err)
		}
		d := time.Since(t0)
		size := dirSize(aipressRepo)
		benchplatform.Logf("aipress backup %d: %s, new %s, repository %s", i+1, d.Round(time.Millisecond), mib(res.NewBytes), mib(size))
		if i == 0 {
			a.First, a.SizeAfterFirst, a.Snapshot = d, size, res.Snapshot
		} else {
			a.Second, a.SizeAfterSecond = d, size
		}
	}
	if cpuProfile != "" {
		pprof.StopCPUProfile()
	}
	t0 := time.Now()
	if err := sh.RestoreInPlace(ctx, src, s, a.Snapshot, nil); err != nil {
		return nil, fmt.Errorf("aipress restore: %w", err)
	}
	a.Restore = time.Since(t0)
	benchplatform.Logf("aipress restore: %s", a.Restore.Round(time.Millisecond))
	rep.AIPress = &a
	rep.LoadAfter = loadAvg()
	return rep, nil
}

// restic runs Debian's restic against a local repository.
type restic struct {
	repo, password, cnf string
}

func (r *restic) cmd(ctx context.Context, args ...string) *exec.Cmd {
	c := exec.CommandContext(ctx, "restic", append([]string{"--repo", r.repo, "--quiet", "--no-cache"}, args...)...)
	c.Env = append(os.Environ(), "RESTIC_PASSWORD="+r.password)
	return c
}

// dumpArgs are the mariadb-dump options AIPress's backup uses too.
func dumpArgs(cnf, db string) []string {
	return []string{"--defaults-file=" + cnf, "--single-transaction", "--quick", "--skip-lock-tables", "--hex-blob",
		"--skip-comments", "--default-character-set=utf8mb4", "--add-drop-table", "--triggers", "--skip-routines", "--skip-events", "--", db}
}

func (r *restic) bench(ctx context.Context, db, content, restoreDir string, createDB func(string) error) (*Result, error) {
	if out, err := r.cmd(ctx, "init").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("init: %w: %s", err, out)
	}
	res := &Result{Tool: "restic"}
	for i := 0; i < 2; i++ {
		t0 := time.Now()
		dump := exec.CommandContext(ctx, "mariadb-dump", dumpArgs(r.cnf, db)...)
		backup := r.cmd(ctx, "backup", "--stdin", "--stdin-filename", "database.sql", "--host", "bench")
		if err := pipe(dump, backup); err != nil {
			return nil, fmt.Errorf("backup --stdin: %w", err)
		}
		if out, err := r.cmd(ctx, "backup", "--host", "bench", content).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("backup wp-content: %w: %s", err, out)
		}
		d := time.Since(t0)
		size := dirSize(r.repo)
		benchplatform.Logf("restic backup %d: %s, repository %s", i+1, d.Round(time.Millisecond), mib(size))
		if i == 0 {
			res.First, res.SizeAfterFirst = d, size
		} else {
			res.Second, res.SizeAfterSecond = d, size
		}
	}
	// Restore: the dump into a fresh database, the files into a directory.
	target := db + "_restic"
	if err := createDB(target); err != nil {
		return nil, err
	}
	t0 := time.Now()
	dump := r.cmd(ctx, "dump", "--path", "/database.sql", "latest", "database.sql")
	load := exec.CommandContext(ctx, "mariadb", "--defaults-file="+r.cnf, "--default-character-set=utf8mb4", "--batch", "--", target)
	if err := pipe(dump, load); err != nil {
		return nil, fmt.Errorf("dump | mariadb: %w", err)
	}
	if out, err := r.cmd(ctx, "restore", "latest", "--path", content, "--target", restoreDir).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("restore: %w: %s", err, out)
	}
	res.Restore = time.Since(t0)
	benchplatform.Logf("restic restore: %s", res.Restore.Round(time.Millisecond))
	return res, nil
}

// pipe runs a | b and waits for both.
func pipe(a, b *exec.Cmd) error {
	out, err := a.StdoutPipe()
	if err != nil {
		return err
	}
	b.Stdin = out
	var aErr, bErr strings.Builder
	a.Stderr, b.Stderr = &aErr, &bErr
	if err := a.Start(); err != nil {
		return err
	}
	if err := b.Start(); err != nil {
		_ = a.Process.Kill()
		_ = a.Wait()
		return err
	}
	ea := a.Wait()
	eb := b.Wait()
	if ea != nil {
		return fmt.Errorf("%s: %w: %s", a.Path, ea, aErr.String())
	}
	if eb != nil {
		return fmt.Errorf("%s: %w: %s", b.Path, eb, bErr.String())
	}
	return nil
}

// dumpSize is the size of the database's dump.
func dumpSize(ctx context.Context, sh *shard.Shard, db string) (int64, error) {
	var c countWriter
	if err := sh.DB().Dump(ctx, db, &c); err != nil {
		return 0, err
	}
	return int64(c), nil
}

type countWriter int64

func (c *countWriter) Write(p []byte) (int, error) { *c += countWriter(len(p)); return len(p), nil }

// dirSize is the size of the regular files below dir.
func dirSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

func ownerOf(p string) (int, int) {
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil {
		return 0, 0
	}
	return int(st.Uid), int(st.Gid)
}

// fillDatabase inserts posts (and postmeta) in batches as root.
func fillDatabase(ctx context.Context, sh *shard.Shard, db string, posts int) error {
	conn, err := sh.DB().OpenRoot(db)
	if err != nil {
		return err
	}
	defer conn.Close()
	const batch = 200
	for start := 0; start < posts; start += batch {
		end := min(start+batch, posts)
		if _, err := conn.ExecContext(ctx, postsSQL(start, end)); err != nil {
			return fmt.Errorf("insert posts: %w", err)
		}
		if _, err := conn.ExecContext(ctx, postmetaSQL(start, end)); err != nil {
			return fmt.Errorf("insert postmeta: %w", err)
		}
	}
	return nil
}

var _ io.Writer = (*countWriter)(nil)
