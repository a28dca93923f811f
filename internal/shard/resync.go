package shard

// Re-sync of a site imported from a live server (package liveimport):
// a delta archive — the changed files of wp-content, the source's whole
// database dump again, and the source's listing with the files deleted
// since the last pull — applied to the site in place.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"time"

	"github.com/aipress/aipress/internal/liveimport"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/siteport"
	"github.com/aipress/aipress/internal/store"
)

// ResyncJob is a re-sync job: the delta archive fetched from the
// transfer store and applied (ResyncSite); the object is removed after.
func (s *Shard) ResyncJob(ctx context.Context, st *site.Site, p store.ResyncParams, progress func(step string, done, total int64)) (*ResyncReport, error) {
	b, err := s.openTransfer(ctx)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	scratch, err := os.MkdirTemp(s.cfg.Dir, "resync-file-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(scratch)
	archive := filepath.Join(scratch, "delta.tar.gz")
	if err := copyObject(ctx, b, p.Key, archive); err != nil {
		return nil, fmt.Errorf("fetch the re-sync archive %s: %w", p.Key, err)
	}
	rep, err := s.ResyncSite(ctx, st, archive, progress)
	_ = b.Delete(context.WithoutCancel(ctx), p.Key)
	return rep, err
}

// ResyncReport is what a re-sync did.
type ResyncReport struct {
	Site   string `json:"site"`
	Source string `json:"source,omitempty"`
	// Files and Bytes are the files written, Deleted those removed
	// (deleted on the source since the previous pull).
	Files   int      `json:"files"`
	Bytes   int64    `json:"bytes"`
	Deleted []string `json:"deleted,omitempty"`
	// The database: the dump's, loaded in place of the site's.
	DumpBytes    int64    `json:"dump_bytes"`
	Tables       int      `json:"tables"`
	TablePrefix  string   `json:"table_prefix"`
	OldURL       string   `json:"old_url"`
	NewURL       string   `json:"new_url"`
	RowsChanged  int64    `json:"rows_changed"`
	CellsChanged int64    `json:"cells_changed"`
	Posts        int      `json:"posts"`
	Warnings     []string `json:"warnings,omitempty"`
	// Duration is how long the site was held (database replaced and
	// files applied).
	Duration time.Duration `json:"duration_ns"`
}

// ResyncSite applies the delta archive at archive (liveimport.Pull with
// Since) to installed site st: the archive is unpacked and inspected
// first (as an import's: the same refusals), then, with the site held,
// its database is dumped aside, replaced by the archive's dump (through
// the sandboxed loader, tables renamed to wp_, URLs rewritten to the
// site's), and the changed files are written into its wp-content and the
// deleted ones removed — through an os.Root on wp-content, so a link the
// site's user planted there cannot send a write or a removal elsewhere.
// If loading the dump fails, the database dumped aside is loaded back:
// the site is left as it was.
func (s *Shard) ResyncSite(ctx context.Context, st *site.Site, archive string, progress func(step string, done, total int64)) (*ResyncReport, error) {
	n := s.NamesFor(st.Metadata.UID)
	if !fileExists(filepath.Join(n.Dir, "installed")) {
		return nil, fmt.Errorf("re-sync %s: the site is not installed on shard %s", st.Metadata.Name, s.cfg.Name)
	}
	step := func(name string) func(done, total int64) {
		if progress == nil {
			return nil
		}
		return func(done, total int64) { progress(name, done, total) }
	}
	scratch, err := os.MkdirTemp(s.cfg.Dir, "resync-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(scratch)
	unpacked := filepath.Join(scratch, "unpacked")
	if err := os.Mkdir(unpacked, 0o700); err != nil {
		return nil, err
	}
	limit := int64(st.Spec.Limits.WithDefaults().DiskMB) << 20
	in, err := siteport.Inspect(ctx, siteport.InspectRequest{Archive: archive, Scratch: unpacked,
		Limits: siteport.Limits{Bytes: 4 * limit, Files: 2_000_000}, Progress: step("unpack")})
	if err != nil {
		return nil, fmt.Errorf("re-sync %s: %w", st.Metadata.Name, err)
	}
	root := filepath.Dir(filepath.Join(unpacked, in.Layout.WPContent))
	var rec liveimport.Record
	if b, err := os.ReadFile(filepath.Join(root, liveimport.ListingName)); err != nil {
		return nil, fmt.Errorf("re-sync %s: the archive has no %s: not a pull from a live site", st.Metadata.Name, liveimport.ListingName)
	} else if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("re-sync %s: %s: %w", st.Metadata.Name, liveimport.ListingName, err)
	}
	rep := &ResyncReport{Site: st.Metadata.Name, Source: rec.Source, DumpBytes: in.DumpBytes, Tables: len(in.Tables),
		TablePrefix: in.TablePrefix, OldURL: in.OldURL, NewURL: s.cfg.PublicURL(st.Spec.Domain), Warnings: in.Warnings}
	for _, d := range rec.Deleted {
		if d == "wp-includes/version.php" {
			continue // not the site's: the core is the platform's
		}
		if _, err := contentRel(d); err != nil {
			return nil, fmt.Errorf("re-sync %s: deleted file %q: %w", st.Metadata.Name, d, err)
		}
	}
	unlock, err := s.lockSite(ctx, n.ID)
	if err != nil {
		return nil, err
	}
	defer unlock()
	start := time.Now()
	uid, gid, err := s.ensureSiteUser(ctx, n)
	if err != nil {
		return nil, err
	}
	if err := s.resyncDatabase(ctx, n, scratch, in, rep, step("load")); err != nil {
		return nil, fmt.Errorf("re-sync %s: %w", st.Metadata.Name, err)
	}
	if err := applyContent(filepath.Join(unpacked, in.Layout.WPContent), filepath.Join(n.Docroot, "wp-content"), rec.Deleted, uid, gid, rep); err != nil {
		return nil, fmt.Errorf("re-sync %s: files: %w", st.Metadata.Name, err)
	}
	rep.Duration = time.Since(start)
	if js, err := json.MarshalIndent(rep, "", "  "); err == nil {
		_ = os.WriteFile(filepath.Join(n.Dir, "resync-report.json"), js, 0o600)
	}
	s.log.Info("site re-synced from its live source", "site", st.Metadata.Name, "source", rec.Source, "files", rep.Files, "deleted", len(rep.Deleted))
	return rep, nil
}

// resyncDatabase replaces site n's database by the inspected dump's,
// restoring the previous one if that fails.
func (s *Shard) resyncDatabase(ctx context.Context, n Names, scratch string, in *siteport.Inspection, rep *ResyncReport, progress func(done, total int64)) error {
	aside := filepath.Join(scratch, "before.sql")
	f, err := os.OpenFile(aside, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	err = s.db.Dump(ctx, n.DB, f)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("dump the site's database aside: %w", err)
	}
	err = s.loadImported(ctx, n, in, rep, progress)
	if err == nil {
		return nil
	}
	// Put the site's database back as it was.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Minute)
	defer cancel()
	rerr := s.db.RecreateDatabase(cctx, n.DB)
	if rerr == nil {
		var rf *os.File
		if rf, rerr = os.Open(aside); rerr == nil {
			rerr = s.db.Load(cctx, n.DB, rf)
			rf.Close()
		}
	}
	if rerr != nil {
		return errors.Join(err, fmt.Errorf("restore the database as it was: %w", rerr))
	}
	return fmt.Errorf("%w (the site's database is as it was)", err)
}

// loadImported empties site n's database and loads the inspected dump
// into it: sandboxed, filtered, renamed to wp_, URLs rewritten.
func (s *Shard) loadImported(ctx context.Context, n Names, in *siteport.Inspection, rep *ResyncReport, progress func(done, total int64)) error {
	if err := s.db.RecreateDatabase(ctx, n.DB); err != nil {
		return err
	}
	s.resetPooled(siteDBUsers(n)...)
	rc, err := siteport.OpenDump(in.DumpPath)
	if err != nil {
		return err
	}
	err = s.db.Load(ctx, n.DB, &progressCount{r: siteport.NewDumpFilter(rc), total: in.DumpBytes, fn: progress})
	rc.Close()
	if err != nil {
		return fmt.Errorf("load the dump: %w", err)
	}
	if len(in.Renames) > 0 {
		conn, err := s.db.OpenRoot(n.DB)
		if err != nil {
			return err
		}
		for _, q := range in.Renames {
			if _, err = conn.ExecContext(ctx, q); err != nil {
				break
			}
		}
		conn.Close()
		if err != nil {
			return fmt.Errorf("rename the tables from prefix %s to wp_: %w", in.TablePrefix, err)
		}
	}
	for i, from := range []string{in.OldURL, in.OldHome} {
		if from == "" || from == rep.NewURL || (i == 1 && from == in.OldURL) {
			continue
		}
		r, err := s.rewriteImported(ctx, n.DB, from, rep.NewURL)
		if err != nil {
			return fmt.Errorf("rewrite URLs %s → %s: %w", from, rep.NewURL, err)
		}
		rep.RowsChanged += r.RowsChanged
		rep.CellsChanged += r.CellsChanged
		rep.Warnings = append(rep.Warnings, r.Warnings...)
	}
	if err := s.db.Exec(ctx, fmt.Sprintf("UPDATE `%s`.wp_options SET option_value = ? WHERE option_name IN ('siteurl', 'home')", n.DB), rep.NewURL); err != nil {
		return err
	}
	rep.Posts, _ = countRows(ctx, s, n.DB, "wp_posts")
	return nil
}

// contentRel is a listing path's place under wp-content ("wp-content/a/b"
// → "a/b"), refused if it is anything but a plain relative path there.
func contentRel(p string) (string, error) {
	rel, ok := strings.CutPrefix(p, "wp-content/")
	if !ok || rel == "" || path.IsAbs(rel) || path.Clean(rel) != rel || rel == ".." || strings.HasPrefix(rel, "../") || strings.Contains(rel, "\\") {
		return "", errors.New("not a path under wp-content")
	}
	return rel, nil
}

// applyContent writes the files of the unpacked src (the delta's
// wp-content) into the site's wp-content dst and removes deleted (listing
// paths), all through an os.Root on dst: a link inside the site's tree
// leading out of it is not followed (the write or removal fails).
// Directories made and files written are the site user's.
func applyContent(src, dst string, deleted []string, uid, gid int, rep *ResyncReport) error {
	r, err := os.OpenRoot(dst)
	if err != nil {
		return err
	}
	defer r.Close()
	err = filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if rel == "." {
			return nil
		}
		if d.IsDir() {
			if fi, err := r.Lstat(rel); err == nil && !fi.IsDir() {
				// A file or a link (the core's bundled theme) where the
				// source has a directory: the source's wins.
				if err := r.RemoveAll(rel); err != nil {
					return err
				}
			}
			if err := r.MkdirAll(rel, 0o755); err != nil {
				return err
			}
			return r.Lchown(rel, uid, gid)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		n, err := writeRooted(r, rel, p, uid, gid)
		if err != nil {
			return fmt.Errorf("write %s: %w", rel, err)
		}
		rep.Files++
		rep.Bytes += n
		return nil
	})
	if err != nil {
		return err
	}
	for _, d := range deleted {
		rel, err := contentRel(d)
		if err != nil {
			continue // wp-includes/version.php (ResyncSite refused anything else)
		}
		if err := r.Remove(rel); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("remove %s: %w", d, err)
		}
		rep.Deleted = append(rep.Deleted, d)
	}
	return nil
}

// writeRooted copies file from to rel in r: into a temporary file beside
// it, then renamed over it (a reader never sees half a file).
func writeRooted(r *os.Root, rel, from string, uid, gid int) (int64, error) {
	in, err := os.Open(from)
	if err != nil {
		return 0, err
	}
	defer in.Close()
	if fi, err := r.Lstat(rel); err == nil && fi.IsDir() {
		if err := r.RemoveAll(rel); err != nil {
			return 0, err
		}
	}
	tmp := path.Join(path.Dir(filepath.ToSlash(rel)), ".aipress-resync-"+path.Base(filepath.ToSlash(rel)))
	out, err := r.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return 0, err
	}
	n, err := io.Copy(out, in)
	if err = errors.Join(err, out.Close()); err == nil {
		err = r.Lchown(tmp, uid, gid)
	}
	if err == nil {
		err = r.Rename(tmp, rel)
	}
	if err != nil {
		_ = r.Remove(tmp)
		return 0, err
	}
	return n, nil
}
