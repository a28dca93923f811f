package shard

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aipress/aipress/internal/backup/repo"
	"github.com/aipress/aipress/internal/pitr"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
	"github.com/aipress/aipress/internal/wordpress"
	"golang.org/x/sync/errgroup"
)

// A snapshot of a site is one repo.Snapshot in the backup repository of
// the shard that took it (the control plane keeps one repository per
// shard), referred to as "<repository>:<snapshot id>" (SnapshotRef). It
// holds three streams:
//
//	database.sql    the site's database as mariadb-dump writes it in one
//	                transaction (--single-transaction: a consistent view
//	                while the site keeps serving and writing), streamed
//	                from the dump's pipe into the repository's chunker
//	tables.json     every table's SHA-256 over its rows in that dump
//	                (tableSums), for verify-restore
//	wp-content.tar  the site's own wp-content (uploads, plugins, themes,
//	                mu-plugins) without the links into the shared core,
//	                read inside an os.Root without following links
//
// and SnapshotMeta as the manifest's Meta (encrypted like everything in
// the repository). The repository deduplicates by content-defined chunks,
// so a second snapshot of an unchanged site adds only the few chunks of the
// dump that changed (options, transients).
const (
	streamDatabase = "database.sql"
	streamTables   = "tables.json"
	streamFiles    = "wp-content.tar"
)

// SnapshotMetaVersion is the version of SnapshotMeta this code writes.
const SnapshotMetaVersion = 1

// SnapshotMeta is what a snapshot records about its site beside the
// streams.
//
// The spec is kept whole, with the admin's bcrypt password hash: rebuilding
// a lost site (disaster recovery) must let its admin log in as before, and
// the hash is also in the dumped wp_users table anyway. The WordPress salts
// travel too, so a site rebuilt under its own name keeps its users' login
// cookies valid; a clone under another domain gets new ones. The database
// password does not: every restore makes its own.
type SnapshotMeta struct {
	Version     int             `json:"version"`
	Site        string          `json:"site"`
	SiteUID     string          `json:"site_uid"`
	Domain      string          `json:"domain"`
	URL         string          `json:"url"` // WP_HOME when taken; a clone rewrites it
	Shard       string          `json:"shard"`
	CoreVersion string          `json:"core_version"`
	TablePrefix string          `json:"table_prefix"`
	Spec        site.Spec       `json:"spec"`
	Salts       wordpress.Salts `json:"salts"`
	Reason      string          `json:"reason,omitempty"`
	// GTID is the binary log position the database dump is consistent
	// with, and PITRLog the continuous log the shard shipped then
	// (pitr.go): a restore to a time replays the site's log from there.
	// Empty when the server has no binary log or shipping was off.
	GTID    string `json:"gtid,omitempty"`
	PITRLog string `json:"pitr_log,omitempty"`
}

// RepoAccess opens the backup repository called name (a shard's name: the
// control plane keeps one repository per shard, at <backup base>/<shard>/).
// The shard never closes what it returns: the provider owns and may cache
// it. In `aipress up` the control plane opens repositories directly; a
// shard agent asks the control plane for the repository's URL and access
// key (GET /v1/agent/backup-access?repo=).
type RepoAccess func(ctx context.Context, name string) (*repo.Repo, error)

// SnapshotRef is how jobs and specs name a snapshot: "<repository>:<id>".
func SnapshotRef(repoName, id string) string { return repoName + ":" + id }

// ParseSnapshotRef splits a SnapshotRef.
func ParseSnapshotRef(ref string) (repoName, id string, err error) {
	repoName, id, ok := strings.Cut(ref, ":")
	if !ok || repoName == "" || id == "" {
		return "", "", fmt.Errorf("snapshot reference %q is not <repository>:<id>", ref)
	}
	return repoName, id, nil
}

// BackupSite snapshots st (a site this shard serves) into the shard's own
// repository and returns the result. The site keeps serving: the dump is
// one transaction's view and nothing is frozen. progress, if not nil, is
// called with the bytes read so far and an estimate of the total.
func (s *Shard) BackupSite(ctx context.Context, st *site.Site, reason string, progress func(done, total int64)) (*store.BackupResult, error) {
	if s.cfg.Repos == nil {
		return nil, errors.New("no backup repository configured (shard.Config.Repos)")
	}
	if st.Status.Shard != s.cfg.Name {
		return nil, fmt.Errorf("site %s is served by shard %q, not %s", st.Metadata.Name, st.Status.Shard, s.cfg.Name)
	}
	n := s.NamesFor(st.Metadata.UID)
	if !fileExists(filepath.Join(n.Dir, "installed")) {
		return nil, fmt.Errorf("site %s is not installed yet", st.Metadata.Name)
	}
	r, err := s.cfg.Repos(ctx, s.cfg.Name)
	if err != nil {
		return nil, fmt.Errorf("backup repository %s: %w", s.cfg.Name, err)
	}
	sec, err := loadOrCreateSecrets(n.Dir)
	if err != nil {
		return nil, err
	}
	content := filepath.Join(n.Docroot, "wp-content")
	var total int64
	if dbSize, err := s.db.DataSize(ctx, n.DB); err == nil {
		total += dbSize
	}
	total += treeSize(content)

	siteURL := st.Status.URL
	if siteURL == "" {
		siteURL = s.cfg.PublicURL(st.Spec.Domain)
	}
	meta := SnapshotMeta{
		Version: SnapshotMetaVersion, Site: st.Metadata.Name, SiteUID: st.Metadata.UID,
		Domain: st.Spec.Domain, URL: siteURL, Shard: s.cfg.Name, CoreVersion: s.siteCoreVersion(n),
		TablePrefix: "wp_", Spec: st.Spec, Salts: sec.Salts, Reason: reason,
	}
	meta.Spec.Source = nil
	raw, err := json.Marshal(meta)
	if err != nil {
		return nil, err
	}
	var done atomic.Int64
	opts := repo.BackupOptions{Site: st.Metadata.Name, Host: s.cfg.Name, Meta: raw}
	if reason != "" {
		opts.Tags = []string{reason}
	}
	if progress != nil {
		opts.Progress = func(p repo.Progress) { done.Store(p.BytesRead + p.BytesReused) }
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			t := time.NewTicker(progressEvery)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					progress(done.Load(), max(total, done.Load()))
				}
			}
		}()
	}
	parent := s.parentSnapshot(ctx, r, st, n.Dir)
	b, err := r.NewBackup(ctx, opts)
	if err != nil {
		return nil, err
	}
	defer b.Abort()

	// The database and wp-content at the same time: the dump's work is
	// mostly the database server's, the files' is reading, hashing and
	// compressing here. The log named before the dump: if it changes
	// during the dump (a gap), the replay refuses the position rather than
	// trust it.
	logName := s.logName()
	var gtid string
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() (err error) { gtid, err = s.backupDatabase(gctx, b, n.DB); return err })
	g.Go(func() error {
		// Every large file (uploads, mostly) as a stream of its own, so
		// its chunks start where it starts and a file stored before — in
		// an earlier snapshot, or under another name — is not stored
		// again; one unchanged since the parent snapshot is not even read.
		// Then a tar of the tree with header-only entries for those files.
		external, err := backupLargeFiles(gctx, b, content, parent)
		if err != nil {
			return fmt.Errorf("back up wp-content: %w", err)
		}
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(tarTreeWith(content, pw, external)) }()
		_, err = b.AddStream(gctx, streamFiles, pr)
		pr.CloseWithError(errors.New("backup stream ended"))
		if err != nil {
			return fmt.Errorf("back up wp-content: %w", err)
		}
		return nil
	})
	if err := g.Wait(); err != nil {
		return nil, err
	}
	if gtid != "" && logName != "" && s.logName() == logName {
		meta.GTID, meta.PITRLog = gtid, logName
		if raw, err = json.Marshal(meta); err != nil {
			return nil, err
		}
		b.SetMeta(raw)
	}

	snap, err := b.Commit(ctx)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(n.Dir, parentFile), []byte(snap.ID+"\n"), 0o600); err != nil {
		s.log.Warn("backup: cannot record the snapshot as the next one's parent", "site", st.Metadata.Name, "err", err)
	}
	if progress != nil {
		progress(snap.Stats.TotalBytes, snap.Stats.TotalBytes)
	}
	s.log.Info("site backed up", "site", st.Metadata.Name, "snapshot", snap.ID, "bytes", snap.Stats.TotalBytes,
		"new_bytes", snap.Stats.NewBytes, "stored_bytes", snap.Stats.StoredBytes, "reused_bytes", snap.Stats.ReusedBytes,
		"took", snap.Stats.Duration)
	return &store.BackupResult{
		Snapshot: SnapshotRef(s.cfg.Name, snap.ID), TotalBytes: snap.Stats.TotalBytes,
		NewBytes: snap.Stats.NewBytes, StoredBytes: snap.Stats.StoredBytes,
	}, nil
}

// backupDatabase streams the dump of db into b (always read again: the
// repository deduplicates what did not change), then its table sums. It
// returns the binary log position the dump is consistent with ("" without
// a binary log).
func (s *Shard) backupDatabase(ctx context.Context, b *repo.Backup, db string) (string, error) {
	sums := newTableSums()
	pr, pw := io.Pipe()
	var gtid string
	go func() {
		var err error
		gtid, err = s.db.DumpAt(ctx, db, io.MultiWriter(pw, sums))
		pw.CloseWithError(err)
	}()
	_, err := b.AddStream(ctx, streamDatabase, pr)
	pr.CloseWithError(errors.New("backup stream ended"))
	if err != nil {
		return "", fmt.Errorf("back up the database: %w", err)
	}
	sumsJSON, err := json.Marshal(sums.Sums())
	if err != nil {
		return "", err
	}
	if _, err := b.AddStream(ctx, streamTables, strings.NewReader(string(sumsJSON))); err != nil {
		return "", fmt.Errorf("back up the table sums: %w", err)
	}
	return gtid, nil
}

// parentFile, in a site's directory, names the site's last snapshot in the
// shard's repository: the next backup's parent.
const parentFile = "backup-parent"

// parentSnapshot returns the snapshot the site's next backup compares its
// files with: the one parentFile names if it is still there, else the
// newest snapshot of the site (same uid) in r; nil if there is none (or
// it cannot be read: then every file is read).
func (s *Shard) parentSnapshot(ctx context.Context, r *repo.Repo, st *site.Site, dir string) *repo.Snapshot {
	ours := func(snap *repo.Snapshot) bool {
		if pitr.IsSegment(snap) {
			return false
		}
		var meta SnapshotMeta
		return snap.Site == st.Metadata.Name && json.Unmarshal(snap.Meta, &meta) == nil && meta.SiteUID == st.Metadata.UID
	}
	if id, err := os.ReadFile(filepath.Join(dir, parentFile)); err == nil {
		if id := strings.TrimSpace(string(id)); len(id) == 64 {
			if snap, err := r.LoadSnapshot(ctx, id); err == nil && ours(snap) {
				return snap
			}
		}
	}
	snaps, err := r.ListSnapshots(ctx, repo.SnapshotFilter{Site: st.Metadata.Name})
	if err != nil {
		s.log.Warn("backup: no parent snapshot, reading every file", "site", st.Metadata.Name, "err", err)
		return nil
	}
	for i := len(snaps) - 1; i >= 0; i-- {
		if ours(snaps[i]) {
			return snaps[i]
		}
	}
	return nil
}

// largeFile is the size from which a file of wp-content is backed up as a
// stream of its own rather than inside the tar (the chunker's minimum
// chunk is 512 KiB; smaller files rarely share chunks with anything).
const largeFile = 128 << 10

// largeFileReaders is how many large files are read at once.
const largeFileReaders = 3

// racyWindow: a parent entry changed less than this before its snapshot
// began is read again even if it looks unchanged (a write within the same
// timestamp tick as the parent's read would not show in its times).
const racyWindow = 2 * time.Second

// backupLargeFiles adds every regular file of at least largeFile bytes
// below dir to b as stream "wp-content/<path>", opened inside dir without
// following links, and returns path → stream name for tarTreeWith. A file
// whose size, modification and change times, mode and inode are those of
// its entry in parent is not read: the entry's chunks are referenced again
// (unless the repository lost them since). A file that vanishes before it
// is opened is left out.
func backupLargeFiles(ctx context.Context, b *repo.Backup, dir string, parent *repo.Snapshot) (map[string]string, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	var paths []string
	err = fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		info, err := d.Info()
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if info.Size() >= largeFile {
			paths = append(paths, p)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	prev := map[string]*repo.FileEntry{}
	if parent != nil {
		for i := range parent.Files {
			if f := &parent.Files[i]; strings.HasPrefix(f.Name, "wp-content/") && f.CTime.Before(parent.Time.Add(-racyWindow)) {
				prev[f.Name] = f
			}
		}
	}

	var mu sync.Mutex
	out := map[string]string{}
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(largeFileReaders)
	for _, p := range paths {
		g.Go(func() error {
			stored, err := backupFile(gctx, b, root, p, prev["wp-content/"+p])
			if err != nil {
				return fmt.Errorf("%s: %w", p, err)
			}
			if stored != "" {
				mu.Lock()
				out[p] = stored
				mu.Unlock()
			}
			return nil
		})
	}
	return out, g.Wait()
}

// backupFile adds one file of backupLargeFiles (re-referencing prev when
// the file is unchanged) and returns its stream's name, or "" if the file
// is gone or no longer a regular file.
func backupFile(ctx context.Context, b *repo.Backup, root *os.Root, p string, prev *repo.FileEntry) (string, error) {
	f, err := root.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if errors.Is(err, fs.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return "", err
	}
	if !st.Mode().IsRegular() || tenantFileRefused(root, p, st) {
		return "", nil
	}
	e := repo.FileEntry{Name: "wp-content/" + p, Size: st.Size(), Mode: st.Mode().Perm(), ModTime: st.ModTime()}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok {
		e.Inode = sys.Ino
		e.CTime = time.Unix(sys.Ctim.Unix())
	}
	if prev != nil && prev.Size == e.Size && prev.Mode == e.Mode && prev.ModTime.Equal(e.ModTime) &&
		prev.Inode != 0 && prev.Inode == e.Inode && prev.CTime.Equal(e.CTime) {
		reused := *prev
		reused.Name = e.Name
		if ok, err := b.AddUnchanged(ctx, reused); err != nil || ok {
			return e.Name, err
		}
	}
	size := e.Size
	e.Size = 0
	if _, err := b.AddStreamEntry(ctx, e, io.LimitReader(f, size)); err != nil {
		return "", err
	}
	return e.Name, nil
}

// treeSize sums the sizes of the regular files below dir (not following
// links); a progress estimate.
func treeSize(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.Type().IsRegular() {
			if info, err := d.Info(); err == nil {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

// openSnapshot loads the snapshot ref names and its meta.
func (s *Shard) openSnapshot(ctx context.Context, ref string) (*repo.Repo, *repo.Snapshot, *SnapshotMeta, error) {
	if s.cfg.Repos == nil {
		return nil, nil, nil, errors.New("no backup repository configured (shard.Config.Repos)")
	}
	name, id, err := ParseSnapshotRef(ref)
	if err != nil {
		return nil, nil, nil, err
	}
	r, err := s.cfg.Repos(ctx, name)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("backup repository %s: %w", name, err)
	}
	snap, err := r.LoadSnapshot(ctx, id)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("snapshot %s: %w", ref, err)
	}
	var meta SnapshotMeta
	if err := json.Unmarshal(snap.Meta, &meta); err != nil {
		return nil, nil, nil, fmt.Errorf("snapshot %s: meta: %w", ref, err)
	}
	if meta.Version != SnapshotMetaVersion {
		return nil, nil, nil, fmt.Errorf("snapshot %s: meta version %d, want %d", ref, meta.Version, SnapshotMetaVersion)
	}
	for _, name := range []string{streamDatabase, streamTables, streamFiles} {
		if _, ok := snap.File(name); !ok {
			return nil, nil, nil, fmt.Errorf("snapshot %s lacks %s", ref, name)
		}
	}
	return r, snap, &meta, nil
}

// readTableSums reads a snapshot's tables.json.
func readTableSums(ctx context.Context, r *repo.Repo, snap *repo.Snapshot) (map[string]string, error) {
	rc, err := r.OpenStream(ctx, snap, streamTables)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, 16<<20))
	if err != nil {
		return nil, fmt.Errorf("table sums: %w", err)
	}
	var sums map[string]string
	if err := json.Unmarshal(data, &sums); err != nil {
		return nil, fmt.Errorf("table sums: %w", err)
	}
	return sums, nil
}

// fileOwner is untarTree's owner function for a site: uploads are the site
// user's, everything else root's.
func fileOwner(uid, gid int) func(rel string) (int, int) {
	return func(rel string) (int, int) {
		if uid < 0 || os.Geteuid() != 0 {
			return -1, -1
		}
		if rel == "uploads" || strings.HasPrefix(rel, "uploads/") {
			return uid, gid
		}
		return 0, 0
	}
}
