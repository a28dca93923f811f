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
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aipress/aipress/internal/backup/repo"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
	"github.com/aipress/aipress/internal/wordpress"
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
		Domain: st.Spec.Domain, URL: siteURL, Shard: s.cfg.Name, CoreVersion: s.core.Version,
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
		opts.Progress = func(p repo.Progress) { done.Store(p.BytesRead) }
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
	b, err := r.NewBackup(ctx, opts)
	if err != nil {
		return nil, err
	}
	defer b.Abort()

	// 1. The database, from the dump's pipe into the chunker.
	sums := newTableSums()
	pr, pw := io.Pipe()
	go func() {
		pw.CloseWithError(s.db.Dump(ctx, n.DB, io.MultiWriter(pw, sums)))
	}()
	_, err = b.AddStream(ctx, streamDatabase, pr)
	pr.CloseWithError(errors.New("backup stream ended"))
	if err != nil {
		return nil, fmt.Errorf("back up the database: %w", err)
	}
	sumsJSON, err := json.Marshal(sums.Sums())
	if err != nil {
		return nil, err
	}
	if _, err := b.AddStream(ctx, streamTables, strings.NewReader(string(sumsJSON))); err != nil {
		return nil, fmt.Errorf("back up the table sums: %w", err)
	}

	// 2. wp-content: every large file (uploads, mostly) as a stream of its
	// own, so its chunks start where it starts and a file stored before —
	// in an earlier snapshot, or under another name — is not stored again;
	// then a tar of the tree with header-only entries for those files.
	external, err := backupLargeFiles(ctx, b, content)
	if err != nil {
		return nil, fmt.Errorf("back up wp-content: %w", err)
	}
	pr, pw = io.Pipe()
	go func() { pw.CloseWithError(tarTreeWith(content, pw, external)) }()
	_, err = b.AddStream(ctx, streamFiles, pr)
	pr.CloseWithError(errors.New("backup stream ended"))
	if err != nil {
		return nil, fmt.Errorf("back up wp-content: %w", err)
	}

	snap, err := b.Commit(ctx)
	if err != nil {
		return nil, err
	}
	if progress != nil {
		progress(snap.Stats.TotalBytes, snap.Stats.TotalBytes)
	}
	s.log.Info("site backed up", "site", st.Metadata.Name, "snapshot", snap.ID, "bytes", snap.Stats.TotalBytes,
		"new_bytes", snap.Stats.NewBytes, "stored_bytes", snap.Stats.StoredBytes, "took", snap.Stats.Duration)
	return &store.BackupResult{
		Snapshot: SnapshotRef(s.cfg.Name, snap.ID), TotalBytes: snap.Stats.TotalBytes,
		NewBytes: snap.Stats.NewBytes, StoredBytes: snap.Stats.StoredBytes,
	}, nil
}

// largeFile is the size from which a file of wp-content is backed up as a
// stream of its own rather than inside the tar (the chunker's minimum
// chunk is 512 KiB; smaller files rarely share chunks with anything).
const largeFile = 128 << 10

// backupLargeFiles adds every regular file of at least largeFile bytes
// below dir to b as stream "wp-content/<path>", opened inside dir without
// following links, and returns path → stream name for tarTreeWith.
func backupLargeFiles(ctx context.Context, b *repo.Backup, dir string) (map[string]string, error) {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	out := map[string]string{}
	err = fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		f, err := root.OpenFile(p, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
		if err != nil {
			return err
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			return err
		}
		if !st.Mode().IsRegular() || st.Size() < largeFile {
			return nil
		}
		name := "wp-content/" + p
		if _, err := b.AddStreamEntry(ctx, repo.FileEntry{Name: name, Mode: st.Mode().Perm(), ModTime: st.ModTime()}, io.LimitReader(f, st.Size())); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		out[p] = name
		return nil
	})
	return out, err
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
