package shard

// Restores (see docs/architecture.md, Backups):
//
//   - In place (RestoreInPlace): the site goes into maintenance (condition
//     Maintenance=True; the edge answers 503 with its maintenance page),
//     the snapshot is restored into a staging database (<db>_rs) and a
//     staging docroot (htdocs.restore), and only then swapped in: one
//     RENAME TABLE statement moves the live tables to <db>_ro and the
//     staged ones to the live name (atomic in MariaDB), then two directory
//     renames swap the docroot. A marker (restore.json, root's) records
//     the phase: "staging" — anything found is discarded and the original
//     is untouched; "swapping" — the staged copy is complete, so the swap
//     is finished (rolled forward). Whatever fails before the swap leaves
//     the original as it was, and the site comes back out of maintenance.
//   - Creating a site from a snapshot (Spec.Source: a clone, a restore onto
//     another shard, a disaster recovery): the convergence restores into
//     the new site's own (empty) database and docroot instead of running
//     the installer, in the background so other sites keep converging;
//     URLs are rewritten when the snapshot's differs. The installed marker
//     is written last, so an interrupted attempt starts again from scratch.
//   - Verify (VerifyRestore): a scratch database, docroot, Unix user and
//     pool, removed afterwards.

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/aipress/aipress/internal/backup/repo"
	"github.com/aipress/aipress/internal/edge"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/volume"
	"github.com/aipress/aipress/internal/wordpress"
)

// CondMaintenance is the condition a shard sets (True) while it restores a
// site in place; the edge serves its maintenance page meanwhile.
const CondMaintenance = site.CondMaintenance

// Staging names of an in-place restore.
func stagingDB(n Names) string     { return n.DB + "_rs" }
func oldDB(n Names) string         { return n.DB + "_ro" }
func stagingRoot(n Names) string   { return n.Docroot + ".restore" }
func oldRoot(n Names) string       { return n.Docroot + ".old" }
func restoreMarker(n Names) string { return filepath.Join(n.Dir, "restore.json") }

// restoreState is the in-place restore's marker.
type restoreState struct {
	Snapshot string    `json:"snapshot"`
	Phase    string    `json:"phase"` // restoreStaging or restoreSwapping
	Started  time.Time `json:"started"`
}

const (
	restoreStaging  = "staging"
	restoreSwapping = "swapping"
)

// lockSite marks the site with id busy for a restore, waiting while
// another restore holds it; unlock releases it. Convergence and cron skip
// a busy site.
func (s *Shard) lockSite(ctx context.Context, id string) (unlock func(), err error) {
	return s.holdSite(ctx, id, true)
}

// holdSite is lockSite; with wake false its unlock does not wake the
// shard (for convergence's own steps that hold a site every pass: waking
// would start the next pass at once, and the next).
func (s *Shard) holdSite(ctx context.Context, id string, wake bool) (unlock func(), err error) {
	for {
		s.mu.Lock()
		ch, held := s.busy[id]
		if !held {
			ch = make(chan struct{})
			s.busy[id] = ch
			s.mu.Unlock()
			return func() {
				s.mu.Lock()
				delete(s.busy, id)
				delete(s.converged, id) // check it in full next pass
				s.mu.Unlock()
				close(ch)
				if wake {
					s.Wake()
				}
			}, nil
		}
		s.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// tryLockSite is lockSite without waiting.
func (s *Shard) tryLockSite(id string) (unlock func(), ok bool) {
	return s.tryHoldSite(id, true)
}

// tryHoldSite is tryLockSite with holdSite's wake.
func (s *Shard) tryHoldSite(id string, wake bool) (unlock func(), ok bool) {
	s.mu.Lock()
	_, held := s.busy[id]
	s.mu.Unlock()
	if held {
		return nil, false
	}
	u, err := s.holdSite(context.Background(), id, wake)
	return u, err == nil
}

func (s *Shard) siteBusy(id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	_, held := s.busy[id]
	return held
}

// RestoreInPlace restores snapshot ref over site st, which this shard
// serves. progress, if not nil, gets the bytes restored so far and the
// total.
func (s *Shard) RestoreInPlace(ctx context.Context, src Sites, st *site.Site, ref string, progress func(done, total int64)) error {
	return s.RestoreInPlaceAt(ctx, src, st, ref, nil, progress, nil)
}

// RestoreInPlaceAt is RestoreInPlace to a point in time: with at set, the
// site's database log from the snapshot's position up to at is replayed
// into the staging database before the swap (pitr.go), as a user limited
// to that database; replayProgress, if not nil, gets the log segments
// replayed and their number.
func (s *Shard) RestoreInPlaceAt(ctx context.Context, src Sites, st *site.Site, ref string, at *time.Time, progress, replayProgress func(done, total int64)) error {
	if st.Status.Shard != s.cfg.Name {
		return fmt.Errorf("site %s is served by shard %q, not %s", st.Metadata.Name, st.Status.Shard, s.cfg.Name)
	}
	if st.Move.Active() {
		return fmt.Errorf("site %s is moving between shards", st.Metadata.Name)
	}
	n := s.NamesFor(st.Metadata.UID)
	unlock, err := s.lockSite(ctx, n.ID)
	if err != nil {
		return err
	}
	defer unlock()
	if err := s.recoverRestore(ctx, n); err != nil {
		return err
	}
	// A code job a crash interrupted is rolled back first: its rollback
	// must not undo this restore later.
	if err := s.recoverCode(ctx, st, n); err != nil {
		return err
	}
	r, snap, meta, err := s.openSnapshot(ctx, ref)
	if err != nil {
		return err
	}
	if meta.Site != st.Metadata.Name {
		s.log.Warn("restoring another site's snapshot in place", "site", st.Metadata.Name, "snapshot_site", meta.Site)
	}
	if cur := s.siteCoreVersion(n); meta.CoreVersion != cur {
		// The restored database is at the snapshot's core's version; the
		// docroot stays on the site's current core (see restoredCore).
		s.log.Warn("snapshot taken with another WordPress core", "site", st.Metadata.Name, "snapshot_core", meta.CoreVersion, "core", cur)
	}
	uid, gid := lookupIDs(n.Unix)
	rep := reporter{s: s, src: src, st: st}
	s.maintenance(ctx, rep, true, "restoring snapshot "+ref)
	swapped := false
	defer func() {
		if !swapped && ctx.Err() != nil {
			return // a shutdown: the next start recovers (recoverRestore)
		}
		s.maintenance(context.WithoutCancel(ctx), rep, false, "")
	}()

	if err := writeRestoreState(n, restoreState{Snapshot: ref, Phase: restoreStaging, Started: s.cfg.Clock().UTC()}); err != nil {
		return err
	}
	err = s.stage(ctx, st, n, r, snap, uid, gid, progress)
	if err == nil && at != nil {
		if meta.Shard != s.cfg.Name || meta.SiteUID != st.Metadata.UID {
			err = publicf("restore to a time needs a snapshot this shard took of this site (the snapshot is of %s on shard %s)", meta.Site, meta.Shard)
		} else {
			_, err = s.replayTo(ctx, r, meta, *at, func(fn func(*sql.Conn, string) error) error {
				return s.db.AsDatabaseUser(ctx, stagingDB(n), func(c *sql.Conn) error { return fn(c, stagingDB(n)) })
			}, replayProgress)
		}
	}
	if err != nil {
		if ctx.Err() == nil {
			if derr := s.discardRestore(context.WithoutCancel(ctx), n); derr != nil {
				err = errors.Join(err, derr)
			}
		}
		return err
	}
	if err := s.crashPoint("staged"); err != nil {
		return err
	}
	if err := writeRestoreState(n, restoreState{Snapshot: ref, Phase: restoreSwapping, Started: s.cfg.Clock().UTC()}); err != nil {
		return err
	}
	// From here on the restore is finished, even after a crash.
	swapped = true
	if err := s.crashPoint("swapping"); err != nil {
		swapped = false
		return err
	}
	if err := s.finishSwap(context.WithoutCancel(ctx), n); err != nil {
		return err
	}
	sec, err := loadOrCreateSecrets(n.Dir)
	if err != nil {
		return err
	}
	if err := s.ensureFiles(ctx, st, n, sec, uid, gid); err != nil {
		return err
	}
	s.purgeSite(ctx, st)
	s.log.Info("site restored in place", "site", st.Metadata.Name, "snapshot", ref)
	return nil
}

func (s *Shard) crashPoint(point string) error {
	if s.crashAt == nil {
		return nil
	}
	return s.crashAt(point)
}

// maintenance sets or clears the site's Maintenance condition.
func (s *Shard) maintenance(ctx context.Context, rep reporter, on bool, msg string) {
	now := s.cfg.Clock()
	gen := rep.st.Metadata.Generation
	rep.update(ctx, func(stt *site.Status) {
		if on {
			stt.SetCondition(site.Condition{Type: CondMaintenance, Status: "True", Reason: "Restoring", Message: msg, ObservedGeneration: gen}, now)
			return
		}
		if c := stt.Condition(CondMaintenance); c != nil && c.Status != "False" {
			stt.SetCondition(site.Condition{Type: CondMaintenance, Status: "False", Reason: "Restored", Message: "out of maintenance", ObservedGeneration: gen}, now)
		}
	})
}

// stage restores the snapshot into the staging database and docroot.
func (s *Shard) stage(ctx context.Context, st *site.Site, n Names, r *repo.Repo, snap *repo.Snapshot, uid, gid int, progress func(done, total int64)) error {
	if err := s.clearStaging(ctx, n); err != nil {
		return err
	}
	if err := s.db.CreateSchema(ctx, stagingDB(n)); err != nil {
		return err
	}
	root := stagingRoot(n)
	// On the core the live docroot runs: its wp-config.php is copied below.
	core, err := s.docrootCore(ctx, n.Docroot)
	if err != nil {
		return err
	}
	if err := wordpress.BuildDocroot(core, root); err != nil {
		return err
	}
	onVolume, err := s.stageUploads(n, root, uid, gid)
	if err != nil {
		return err
	}
	if err := s.loadStreams(ctx, r, snap, stagingDB(n), filepath.Join(root, "wp-content"), uid, gid, progress); err != nil {
		if onVolume && errors.Is(err, syscall.ENOSPC) {
			return fmt.Errorf("the snapshot's files do not fit on the site's volume beside its current files (raise the site's disk limit, or restore it as a new site): %w", err)
		}
		return err
	}
	if err := wordpress.LinkMUPlugin(root, s.cachePlugin); err != nil {
		return err
	}
	// The live wp-config.php works unchanged after the swap (same database
	// name, user and paths); ensureFiles renders it again afterwards.
	cfg, err := os.ReadFile(filepath.Join(n.Docroot, "wp-config.php"))
	if err != nil {
		return fmt.Errorf("staging wp-config.php: %w", err)
	}
	if err := writeIfChanged(filepath.Join(root, "wp-config.php"), cfg, 0o640, 0, gid); err != nil {
		return err
	}
	return chownMode(root, 0o755, 0, 0)
}

// stageUploads gives the staging docroot root an uploads directory on the
// site's volume, if it has one mounted: uploads.restore in the volume,
// bound at root's uploads, which the swap renames to uploads (root may
// write it beyond the site's limit: the volume is twice the limit).
func (s *Shard) stageUploads(n Names, root string, uid, gid int) (bool, error) {
	v := siteVolume(n)
	if m, err := v.Mounted(); err != nil || m == nil {
		return false, err
	}
	dir := filepath.Join(v.Dir, "uploads.restore")
	if err := os.RemoveAll(dir); err != nil {
		return true, fmt.Errorf("restore staging: %w", err)
	}
	if err := ensureDir(dir, 0o755, uid, gid); err != nil {
		return true, err
	}
	return true, volume.Bind(dir, filepath.Join(root, "wp-content", "uploads"))
}

// swapUploads makes the staged uploads on the volume the live ones (each
// step only if it is not done yet): the live docroot's bind, made on the
// staging docroot, follows the directory.
func (s *Shard) swapUploads(n Names) error {
	v := siteVolume(n)
	if m, err := v.Mounted(); err != nil || m == nil {
		return err
	}
	staged := filepath.Join(v.Dir, "uploads.restore")
	if !fileExists(staged) {
		return nil
	}
	live, old := filepath.Join(v.Dir, "uploads"), filepath.Join(v.Dir, "uploads.old")
	if fileExists(live) {
		if err := os.RemoveAll(old); err != nil {
			return fmt.Errorf("swap uploads: %w", err)
		}
		if err := os.Rename(live, old); err != nil {
			return fmt.Errorf("swap uploads: %w", err)
		}
	}
	if err := os.Rename(staged, live); err != nil {
		return fmt.Errorf("swap uploads: %w", err)
	}
	return nil
}

// loadStreams loads a snapshot's database into db and extracts its
// wp-content into content (which must exist).
func (s *Shard) loadStreams(ctx context.Context, r *repo.Repo, snap *repo.Snapshot, db, content string, uid, gid int, progress func(done, total int64)) error {
	dbe, _ := snap.File(streamDatabase)
	fe, _ := snap.File(streamFiles)
	var total int64
	for _, f := range snap.Files {
		if f.Name != streamTables {
			total += f.Size
		}
	}
	var done atomic.Int64
	if progress != nil {
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
					progress(done.Load(), total)
				}
			}
		}()
	}
	rc, err := r.OpenFile(ctx, dbe)
	if err != nil {
		return fmt.Errorf("restore database: %w", err)
	}
	err = s.db.Load(ctx, db, &countingReader{r: rc, n: &done})
	rc.Close()
	if err != nil {
		return fmt.Errorf("restore database: %w", err)
	}
	rc, err = r.OpenFile(ctx, fe)
	if err != nil {
		return fmt.Errorf("restore wp-content: %w", err)
	}
	defer rc.Close()
	cr := &countingReader{r: rc, n: &done}
	open := func(stream string) (io.ReadCloser, error) {
		e, ok := snap.File(stream)
		if !ok {
			return nil, fmt.Errorf("snapshot lacks stream %s", stream)
		}
		rc, err := r.OpenFile(ctx, e)
		if err != nil {
			return nil, err
		}
		return readCloser{&countingReader{r: rc, n: &done}, rc}, nil
	}
	if err := untarTreeWith(content, cr, fileOwner(uid, gid), open); err != nil {
		return fmt.Errorf("restore wp-content: %w", err)
	}
	// The tar ends before the stream does; reading to EOF checks the
	// stream's SHA-256.
	if _, err := io.Copy(io.Discard, cr); err != nil {
		return fmt.Errorf("restore wp-content: %w", err)
	}
	if progress != nil {
		progress(total, total)
	}
	return nil
}

type countingReader struct {
	r io.Reader
	n *atomic.Int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n.Add(int64(n))
	return n, err
}

type readCloser struct {
	io.Reader
	io.Closer
}

// clearStaging removes every staging leftover of an in-place restore.
func (s *Shard) clearStaging(ctx context.Context, n Names) error {
	for _, db := range []string{stagingDB(n), oldDB(n), codeStagingDB(n), codeOldDB(n)} {
		if err := s.db.DropSchema(ctx, db); err != nil {
			return err
		}
	}
	for _, d := range []string{stagingRoot(n), stagingRoot(n) + ".building", oldRoot(n)} {
		if err := removeTree(d); err != nil {
			return fmt.Errorf("remove restore staging: %w", err)
		}
	}
	if v := siteVolume(n); v.Exists() {
		if m, err := v.Mounted(); err == nil && m != nil {
			for _, d := range []string{"uploads.restore", "uploads.old"} {
				if err := os.RemoveAll(filepath.Join(v.Dir, d)); err != nil {
					return fmt.Errorf("remove restore staging: %w", err)
				}
			}
		}
	}
	return nil
}

// discardRestore abandons an unfinished staging: the original is as it
// was.
func (s *Shard) discardRestore(ctx context.Context, n Names) error {
	if err := s.clearStaging(ctx, n); err != nil {
		return err
	}
	if err := os.Remove(restoreMarker(n)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("restore marker: %w", err)
	}
	return nil
}

// finishSwap swaps the staged database and docroot in (each step only if
// it is not done yet, so it also finishes a swap a crash interrupted), then
// removes what was replaced and the marker.
func (s *Shard) finishSwap(ctx context.Context, n Names) error {
	staged, err := s.db.Tables(ctx, stagingDB(n))
	if err != nil {
		return err
	}
	if len(staged) > 0 {
		if err := s.db.SwapTables(ctx, n.DB, stagingDB(n), oldDB(n)); err != nil {
			return err
		}
	}
	if fileExists(stagingRoot(n)) {
		if fileExists(n.Docroot) {
			if err := os.RemoveAll(oldRoot(n)); err != nil {
				return fmt.Errorf("swap docroot: %w", err)
			}
			if err := os.Rename(n.Docroot, oldRoot(n)); err != nil {
				return fmt.Errorf("swap docroot: %w", err)
			}
		}
		if err := os.Rename(stagingRoot(n), n.Docroot); err != nil {
			return fmt.Errorf("swap docroot: %w", err)
		}
	}
	if err := s.swapUploads(n); err != nil {
		return err
	}
	return s.discardRestore(ctx, n)
}

// recoverRestore finishes or discards what an interrupted in-place restore
// of the site left, by its marker.
func (s *Shard) recoverRestore(ctx context.Context, n Names) error {
	// The staged uploads are on the volume (not mounted after a reboot).
	if err := s.mountVolume(ctx, n); err != nil {
		return err
	}
	data, err := os.ReadFile(restoreMarker(n))
	if errors.Is(err, os.ErrNotExist) {
		return s.clearStaging(ctx, n)
	}
	if err != nil {
		return fmt.Errorf("restore marker: %w", err)
	}
	var rs restoreState
	if json.Unmarshal(data, &rs) == nil && rs.Phase == restoreSwapping {
		s.log.Warn("finishing an interrupted restore", "dir", n.Dir, "snapshot", rs.Snapshot)
		return s.finishSwap(ctx, n)
	}
	s.log.Warn("discarding an interrupted restore; the site is as it was", "dir", n.Dir, "snapshot", rs.Snapshot)
	return s.discardRestore(ctx, n)
}

// recoverInterrupted is the convergence's check for a restore a crash
// interrupted: it recovers the site and takes it out of maintenance. It
// reports whether the site is busy with a running restore (the pass must
// skip it).
func (s *Shard) recoverInterrupted(ctx context.Context, rep reporter, n Names) (busy bool, err error) {
	if s.siteBusy(n.ID) {
		return true, nil
	}
	inMaint := false
	if c := rep.st.Status.Condition(CondMaintenance); c != nil && c.Status == "True" {
		inMaint = true
	}
	if !inMaint && !fileExists(restoreMarker(n)) {
		return false, nil
	}
	unlock, ok := s.tryLockSite(n.ID)
	if !ok {
		return true, nil
	}
	defer unlock()
	if err := s.recoverRestore(ctx, n); err != nil {
		return false, err
	}
	s.maintenance(ctx, rep, false, "")
	return false, nil
}

func writeRestoreState(n Names, rs restoreState) error {
	b, err := json.Marshal(rs)
	if err != nil {
		return err
	}
	tmp := restoreMarker(n) + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("restore marker: %w", err)
	}
	if err := os.Rename(tmp, restoreMarker(n)); err != nil {
		return fmt.Errorf("restore marker: %w", err)
	}
	return nil
}

// purgeSite asks the edge to drop the site's cached pages (best effort).
func (s *Shard) purgeSite(ctx context.Context, st *site.Site) {
	if s.cfg.PurgeURL == "" || s.cfg.PurgeKey == nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.cfg.PurgeURL, strings.NewReader(`{"all":true}`))
	if err != nil {
		return
	}
	req.Host = hostOf(s.cfg.PublicURL(st.Spec.Domain))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-AIPress-Purge-Key", s.cfg.PurgeKey(st.Metadata.Name))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		s.log.Warn("purge after restore", "site", st.Metadata.Name, "err", err)
		return
	}
	resp.Body.Close()
}

// populate makes site st, which has Spec.Source and is not installed, from
// its snapshot: its (empty) database and a fresh docroot are filled from
// the snapshot, URLs are rewritten when the snapshot's differs from the
// site's, and the installed marker is written last.
func (s *Shard) populate(ctx context.Context, st *site.Site, progress func(done, total int64)) error {
	src := st.Spec.Source
	if src.Import != nil {
		return s.populateImport(ctx, st, progress)
	}
	n := s.NamesFor(st.Metadata.UID)
	r, snap, meta, err := s.openSnapshot(ctx, src.Snapshot)
	if err != nil {
		return err
	}
	uid, gid, err := s.ensureSiteUser(ctx, n)
	if err != nil {
		return err
	}
	if err := ensureDir(n.Dir, 0o750, 0, gid); err != nil {
		return err
	}
	sec, err := loadOrCreateSecrets(n.Dir)
	if err != nil {
		return err
	}
	sameSite := meta.Site == st.Metadata.Name && meta.SiteUID == st.Metadata.UID
	if sameSite && sec.Salts != meta.Salts && meta.Salts.AuthKey != "" {
		// The same site rebuilt elsewhere: its users stay logged in.
		sec.Salts = meta.Salts
		if err := writeSecrets(n.Dir, sec); err != nil {
			return err
		}
	}
	if err := s.db.EnsureDatabase(ctx, n.DB, sec.dbUser(n), sec.DBPassword, st.Spec.Limits.WithDefaults().DBConnections); err != nil {
		return err
	}
	if err := s.db.RecreateDatabase(ctx, n.DB); err != nil {
		return err
	}
	s.resetPooled(siteDBUsers(n)...)
	for _, d := range []string{n.Docroot, n.Docroot + ".building"} {
		if err := removeTree(d); err != nil {
			return fmt.Errorf("remove partial restore: %w", err)
		}
	}
	core, err := s.restoredCore(ctx, st, meta)
	if err != nil {
		return err
	}
	if err := wordpress.BuildDocroot(core, n.Docroot); err != nil {
		return err
	}
	// A fresh volume, big enough for the snapshot's files even when they
	// exceed the site's limit.
	if err := s.dropVolume(n); err != nil {
		return err
	}
	var need int64
	for _, f := range snap.Files {
		need += f.Size
	}
	if _, err := s.ensureVolume(ctx, n, st.Spec.Limits.WithDefaults().DiskMB, need, uid, gid); err != nil {
		return err
	}
	if err := s.loadStreams(ctx, r, snap, n.DB, filepath.Join(n.Docroot, "wp-content"), uid, gid, progress); err != nil {
		return err
	}
	if src.At != nil {
		// The source site's log up to At, as this site's own user, before
		// URLs are rewritten (the log carries the source's).
		_, err := s.replayTo(ctx, r, meta, *src.At, func(fn func(*sql.Conn, string) error) error {
			db, err := s.db.OpenAs(sec.dbUser(n), sec.DBPassword, n.DB)
			if err != nil {
				return err
			}
			defer db.Close()
			c, err := db.Conn(ctx)
			if err != nil {
				return fmt.Errorf("connect as the site's database user: %w", err)
			}
			defer c.Close()
			return fn(c, n.DB)
		}, nil)
		if err != nil {
			return err
		}
	}
	from := src.FromURL
	if from == "" {
		from = meta.URL
	}
	to := s.cfg.PublicURL(st.Spec.Domain)
	if from != "" && from != to {
		if err := s.rewriteURLs(ctx, n.DB, from, to); err != nil {
			return fmt.Errorf("rewrite URLs %s → %s: %w", from, to, err)
		}
	}
	if !sameSite && st.Spec.Admin.PasswordHash != "" && st.Spec.Admin.User != "" {
		// A clone: its admin logs in with the password its spec was given.
		if err := s.db.Exec(ctx, fmt.Sprintf("UPDATE `%s`.`wp_users` SET user_pass = ? WHERE user_login = ?", n.DB),
			st.Spec.Admin.PasswordHash, st.Spec.Admin.User); err != nil {
			return fmt.Errorf("clone admin password: %w", err)
		}
	}
	if err := s.ensureFiles(ctx, st, n, sec, uid, gid); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(n.Dir, "installed"), []byte(core.Version+"\nrestored from "+src.Snapshot+"\n"), 0o600); err != nil {
		return fmt.Errorf("install marker: %w", err)
	}
	s.log.Info("site created from snapshot", "site", st.Metadata.Name, "snapshot", src.Snapshot, "from", meta.Site)
	return nil
}

// restoredCore is the core a site made from a snapshot (a clone, a restore
// onto another shard, a verification) is built on: the one the snapshot
// was taken on (its database is at that core's version), fetched if this
// shard has not got it; when this shard cannot get that one, the site's
// spec's (the shard's default for "").
func (s *Shard) restoredCore(ctx context.Context, st *site.Site, meta *SnapshotMeta) (*wordpress.Core, error) {
	want := meta.CoreVersion
	if want == "" {
		want = st.Spec.CoreVersion
	}
	core, err := s.coreFor(ctx, want)
	if err == nil || want == st.Spec.CoreVersion {
		return core, err
	}
	s.log.Warn("the snapshot's WordPress core is not available here: using the site's spec's",
		"site", st.Metadata.Name, "snapshot_core", want, "spec_core", st.Spec.CoreVersion, "err", err)
	return s.coreFor(ctx, st.Spec.CoreVersion)
}

// populateFailure is a failed populate of a site at a generation.
type populateFailure struct {
	generation int64
	err        error
}

// startPopulate runs populate for st in the background unless it runs
// already; convergence calls it and moves on. It reports the last failure,
// if any (the next call tries again), except a permanent one
// (importGiveUp), which every later call at that generation reports
// without trying again: also a pass that read the site before the pass
// that reported it turned it Failed.
func (s *Shard) startPopulate(ctx context.Context, st *site.Site) error {
	n := s.NamesFor(st.Metadata.UID)
	s.mu.Lock()
	last := s.populateErr[n.ID]
	var giveUp *importGiveUp
	permanent := errors.As(last.err, &giveUp) && last.generation == st.Metadata.Generation
	if !permanent {
		delete(s.populateErr, n.ID)
	}
	s.mu.Unlock()
	if permanent {
		return last.err // not tried again: the caller marks the site Failed
	}
	unlock, ok := s.tryLockSite(n.ID)
	if !ok {
		return nil
	}
	cp := *st
	go func() {
		defer unlock()
		err := s.populate(ctx, &cp, nil)
		if err != nil && ctx.Err() == nil {
			s.log.Warn("create site from snapshot", "site", cp.Metadata.Name, "err", err)
			s.mu.Lock()
			s.populateErr[n.ID] = populateFailure{generation: cp.Metadata.Generation, err: err}
			s.mu.Unlock()
		}
	}()
	return last.err
}

// PopulateSite is a restore job for a site created from a snapshot: it
// creates the site from its Spec.Source now (waiting for a restore the
// convergence started) unless it is created already.
func (s *Shard) PopulateSite(ctx context.Context, st *site.Site, progress func(done, total int64)) error {
	if st.Spec.Source == nil {
		return fmt.Errorf("site %s was not created from a snapshot", st.Metadata.Name)
	}
	n := s.NamesFor(st.Metadata.UID)
	unlock, err := s.lockSite(ctx, n.ID)
	if err != nil {
		return err
	}
	defer unlock()
	if fileExists(filepath.Join(n.Dir, "installed")) {
		return nil
	}
	return s.populate(ctx, st, progress)
}

// VerifyResult is what a verify-restore job reports.
type VerifyResult struct {
	Snapshot   string   `json:"snapshot"`
	Site       string   `json:"site"`
	HTTPStatus int      `json:"http_status"`
	Tables     int      `json:"tables"`
	Mismatched []string `json:"mismatched_tables,omitempty"`
	OK         bool     `json:"ok"`
}

// VerifyRestore restores snapshot ref into a scratch database, docroot,
// Unix user and pool on this shard, compares every table's checksum with
// the snapshot's, asks WordPress for its home page through the edge's
// FastCGI client, removes the scratch copy and reports. An error means the
// check could not run or the snapshot could not be restored (a damaged
// chunk shows here); a result that is not OK names what differed.
func (s *Shard) VerifyRestore(ctx context.Context, ref string, progress func(done, total int64)) (*VerifyResult, error) {
	r, snap, meta, err := s.openSnapshot(ctx, ref)
	if err != nil {
		return nil, err
	}
	want, err := readTableSums(ctx, r, snap)
	if err != nil {
		return nil, err
	}
	n := s.namesForID(scratchID())
	defer func() {
		tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if err := s.teardown(tctx, n); err != nil {
			s.log.Warn("remove verify scratch site", "dir", n.Dir, "err", err)
		}
	}()
	uid, gid, err := s.ensureSiteUser(ctx, n)
	if err != nil {
		return nil, err
	}
	if err := ensureDir(n.Dir, 0o750, 0, gid); err != nil {
		return nil, err
	}
	sec := &secrets{DBPassword: newDBPassword(), Salts: wordpress.NewSalts()}
	if err := writeSecrets(n.Dir, sec); err != nil {
		return nil, err
	}
	if err := s.db.EnsureDatabase(ctx, n.DB, n.DBUser, sec.DBPassword, meta.Spec.Limits.WithDefaults().DBConnections); err != nil {
		return nil, err
	}
	core, err := s.restoredCore(ctx, &site.Site{Metadata: site.Metadata{Name: meta.Site}, Spec: meta.Spec}, meta)
	if err != nil {
		return nil, err
	}
	if err := wordpress.BuildDocroot(core, n.Docroot); err != nil {
		return nil, err
	}
	if err := s.loadStreams(ctx, r, snap, n.DB, filepath.Join(n.Docroot, "wp-content"), uid, gid, progress); err != nil {
		return nil, err
	}
	// Checksums before WordPress runs (a page view may write options).
	sums := newTableSums()
	if err := s.db.Dump(ctx, n.DB, sums); err != nil {
		return nil, err
	}
	res := &VerifyResult{Snapshot: ref, Site: meta.Site, Tables: len(want)}
	res.Mismatched = diffSums(want, sums.Sums())

	st := &site.Site{Metadata: site.Metadata{Name: meta.Site, UID: "verify-" + n.ID}, Spec: meta.Spec}
	st.Spec.Domain = meta.Domain
	siteURL := s.cfg.PublicURL(meta.Domain)
	cfg := wordpress.Config{
		Domain: meta.Domain, URL: siteURL, Docroot: n.Docroot, CoreDir: core.Tree,
		DBName: n.DB, DBUser: sec.dbUser(n), DBPassword: sec.DBPassword,
		DBHost: s.clientHost(), Salts: sec.Salts,
	}
	s.noteLimits(n.ID, meta.Spec.Limits)
	s.syncPooler()
	if err := wordpress.LinkMUPlugin(n.Docroot, s.cachePlugin); err != nil {
		return nil, err
	}
	if err := writeIfChanged(filepath.Join(n.Docroot, "wp-config.php"), cfg.Render(), 0o640, 0, gid); err != nil {
		return nil, err
	}
	if err := sitePermissions(n, uid, gid); err != nil {
		return nil, err
	}
	if err := s.fpm.EnsurePool(ctx, s.poolFor(st, n, uid)); err != nil {
		return nil, err
	}
	res.HTTPStatus = s.fetchHome(ctx, meta.Site, meta.Domain, siteURL, n)
	res.OK = res.HTTPStatus == http.StatusOK && len(res.Mismatched) == 0
	return res, nil
}

// scratchID names a verify-restore's scratch site: "v" and 8 hex digits,
// which orphan collection (12 hex digits) never takes for a site's.
func scratchID() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return "v" + hex.EncodeToString(b)
}

// cleanScratch removes scratch sites a crash left behind.
func (s *Shard) cleanScratch(ctx context.Context) error {
	ents, err := os.ReadDir(s.sitesDir())
	if err != nil {
		return nil
	}
	var errs []error
	for _, e := range ents {
		if len(e.Name()) == 9 && e.Name()[0] == 'v' {
			if _, err := hex.DecodeString(e.Name()[1:]); err == nil {
				errs = append(errs, s.teardown(ctx, s.namesForID(e.Name())))
			}
		}
	}
	return errors.Join(errs...)
}

// fetchHome requests the home page of a site through the edge's FastCGI
// path and returns the status.
func (s *Shard) fetchHome(ctx context.Context, name, domain, siteURL string, n Names) int {
	ed := edge.New(edge.Config{Logger: s.log, AllowedSymlinkRoots: s.AllowedSymlinkRoots(), DialTimeout: 10 * time.Second})
	host := hostOf(siteURL)
	ed.SetTable(edge.NewTable([]edge.Route{{
		Host: domain, Site: name, Docroot: n.Docroot, Endpoint: s.endpoint(n),
		State: edge.Serving, Options: edge.RouteOptions{WAFMode: site.WAFOff},
	}}))
	req := httptest.NewRequestWithContext(ctx, http.MethodGet, siteURL+"/", nil)
	req.Host = host
	req.RemoteAddr = "127.0.0.1:1"
	rec := httptest.NewRecorder()
	ed.ServeHTTP(rec, req)
	if rec.Code != http.StatusOK {
		s.log.Warn("verify restore: home page", "site", name, "status", rec.Code, "body", truncate(rec.Body.String(), 300))
	}
	return rec.Code
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}
