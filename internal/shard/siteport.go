package shard

// Export and import of portable archives (package siteport): a site's
// wp-content, database and manifest out as a tar.gz; a WordPress docroot
// or wp-content with its SQL dump in, as a new site of this shard.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/aipress/aipress/internal/artefact"
	"github.com/aipress/aipress/internal/mariadb"
	"github.com/aipress/aipress/internal/searchreplace"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/siteport"
	"github.com/aipress/aipress/internal/store"
	"github.com/aipress/aipress/internal/wordpress"
	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"
)

// ExportSite writes site st's portable archive to w (siteport.Export):
// its wp-content as the site has it (the core's bundled themes and
// plugins followed into their files), its database dumped in one
// transaction with the table prefix it has (wp_), and the manifest.
func (s *Shard) ExportSite(ctx context.Context, st *site.Site, w io.Writer, progress func(done int64)) (*siteport.Manifest, error) {
	n := s.NamesFor(st.Metadata.UID)
	if !fileExists(filepath.Join(n.Dir, "installed")) {
		return nil, fmt.Errorf("site %s is not installed on shard %s", st.Metadata.Name, s.cfg.Name)
	}
	dbVersion, _ := s.db.QueryString(ctx, fmt.Sprintf("SELECT option_value FROM `%s`.wp_options WHERE option_name = 'db_version'", n.DB))
	siteURL, _ := s.db.QueryString(ctx, fmt.Sprintf("SELECT option_value FROM `%s`.wp_options WHERE option_name = 'home'", n.DB))
	if siteURL == "" {
		siteURL = s.cfg.PublicURL(st.Spec.Domain)
	}
	return siteport.Export(ctx, w, siteport.ExportSource{
		WPContent:  filepath.Join(n.Docroot, "wp-content"),
		FollowInto: s.AllowedSymlinkRoots(),
		Dump:       func(ctx context.Context, w io.Writer) error { return s.db.Dump(ctx, n.DB, w) },
		Domain:     st.Spec.Domain, URL: siteURL, WordPressVersion: s.siteCoreVersion(n), DBVersion: dbVersion,
		TablePrefix: siteport.SitePrefix, Now: time.Now(), Progress: progress,
	})
}

// ExportJob is an export job: site st's archive written to the transfer
// store under store.ExportKey(uid, id).
func (s *Shard) ExportJob(ctx context.Context, st *site.Site, id string, progress func(done, total int64)) (*store.ExportResult, error) {
	b, err := s.openTransfer(ctx)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	key := store.ExportKey(st.Metadata.UID, id)
	var m *siteport.Manifest
	obj, err := writeObject(ctx, b, "export", key, func(w io.Writer) error {
		var err error
		m, err = s.ExportSite(ctx, st, w, func(done int64) {
			if progress != nil {
				progress(done, 0)
			}
		})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("export %s: %w", st.Metadata.Name, err)
	}
	return &store.ExportResult{Key: key, Bytes: obj.Size, SHA256: obj.SHA256, Files: m.Files, DatabaseBytes: m.DatabaseBytes,
		WordPressVersion: m.WordPressVersion, URL: m.URL}, nil
}

// ImportRequest is an import of an archive into a new site.
type ImportRequest struct {
	// Archive is the archive's path on this shard's disk; SQL, if set,
	// the dump's (else the archive's own is used).
	Archive, SQL string
	// Prefix picks the site when the dump holds several.
	Prefix string
	// DryRun unpacks and reads everything, reports, and changes nothing.
	DryRun bool
	// Progress, if set, is told the step and its bytes done and total.
	Progress func(step string, done, total int64)
}

// ImportReport is what an import found and did.
type ImportReport struct {
	Site   string `json:"site"`
	Domain string `json:"domain"`
	DryRun bool   `json:"dry_run"`
	// Inspection is what the archive holds (siteport.Inspect).
	*siteport.Inspection
	// CoreVersion is the core the site runs here.
	CoreVersion string `json:"core_version,omitempty"`
	NewURL      string `json:"new_url"`
	// RowsChanged and CellsChanged are the URL rewrite's; RowsScanned and
	// BytesScanned what it read (rows holding the old URL, the size of
	// their text values).
	RowsChanged  int64 `json:"rows_changed"`
	CellsChanged int64 `json:"cells_changed"`
	RowsScanned  int64 `json:"rows_scanned,omitempty"`
	BytesScanned int64 `json:"bytes_scanned,omitempty"`
	Posts        int   `json:"posts,omitempty"`
	Users        int   `json:"users,omitempty"`
	// Phases are the import's steps in order with their wall time
	// (by the shard's clock): "fetch" (the archive from the transfer
	// store; imports through the API), "unpack" (and inspect),
	// "prepare" (Unix user, database), "load" (the dump, sandboxed),
	// "rename" (tables to wp_), "files" (docroot and wp-content),
	// "rewrite" (URLs) and "finish" (counts, wp-config, pool files).
	Phases []ImportPhase `json:"phases,omitempty"`

	clock      func() time.Time
	phaseStart time.Time // the end of the last phase
}

// ImportPhase is one step of an import and how long it took.
type ImportPhase struct {
	Name    string  `json:"name"`
	Seconds float64 `json:"seconds"`
}

// startPhases starts timing the report's phases with clock.
func (r *ImportReport) startPhases(clock func() time.Time) {
	r.clock, r.phaseStart = clock, clock()
}

// phase records that step name ended now, timed from the end of the
// previous one (or from startPhases); without startPhases it does nothing.
func (r *ImportReport) phase(name string) {
	if r.clock == nil {
		return
	}
	now := r.clock()
	r.Phases = append(r.Phases, ImportPhase{Name: name, Seconds: now.Sub(r.phaseStart).Seconds()})
	r.phaseStart = now
}

// ErrSiteExists is an import into a site that has files or a database
// on this shard already.
var ErrSiteExists = errors.New("the site exists already on this shard")

// ImportSite creates site st (stored, placed on this shard, not yet
// converged) from an archive: unpacks it into a scratch directory,
// finds wp-content, the dump, the table prefix, the old URL and the
// WordPress version, and (unless DryRun) loads the dump into the site's
// new database through the sandboxed loader, renames the tables to wp_,
// builds the docroot on the archive's WordPress version where this shard
// has or can fetch it (else the spec's), puts the archive's wp-content
// in it (plugins and themes included), rewrites the old URL to the
// site's, and writes the installed marker: the next convergence serves
// it. An import that fails removes all it made (database, users, files).
//
// The caller keeps convergence away from st until ImportSite returns (a
// site converged meanwhile would be installed fresh, and the import then
// refuses it). Sites created by POST /v1/imports take the other door:
// their spec.source.import makes convergence import them
// (populateImport), which needs no such care.
func (s *Shard) ImportSite(ctx context.Context, st *site.Site, req ImportRequest) (rep *ImportReport, err error) {
	n := s.NamesFor(st.Metadata.UID)
	if fileExists(filepath.Join(n.Dir, "installed")) || fileExists(n.Docroot) {
		return nil, fmt.Errorf("import into %s: %w", st.Metadata.Name, ErrSiteExists)
	}
	if !req.DryRun {
		if ok, err := s.db.DatabaseExists(ctx, n.DB); err != nil || ok {
			return nil, errors.Join(fmt.Errorf("import into %s: %w", st.Metadata.Name, ErrSiteExists), err)
		}
	}
	progress := func(step string) func(done, total int64) {
		if req.Progress == nil {
			return nil
		}
		return func(done, total int64) { req.Progress(step, done, total) }
	}
	scratch, err := os.MkdirTemp(s.cfg.Dir, "import-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(scratch)
	rep = &ImportReport{Site: st.Metadata.Name, Domain: st.Spec.Domain, DryRun: req.DryRun, NewURL: s.cfg.PublicURL(st.Spec.Domain)}
	rep.startPhases(s.cfg.Clock)
	limit := int64(st.Spec.Limits.WithDefaults().DiskMB) << 20
	rep.Inspection, err = siteport.Inspect(ctx, siteport.InspectRequest{Archive: req.Archive, SQL: req.SQL, Prefix: req.Prefix,
		Scratch: scratch, Limits: siteport.Limits{Bytes: 4 * limit, Files: 2_000_000}, Progress: progress("unpack")})
	if err != nil {
		return nil, fmt.Errorf("import %w", err)
	}
	rep.phase("unpack")
	if req.DryRun {
		return rep, nil
	}
	unlock, err := s.lockSite(ctx, n.ID)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if err := s.importHeld(ctx, st, n, scratch, rep, progress("load")); err != nil {
		return nil, err
	}
	return rep, nil
}

// importHeld makes site st from the inspected archive in scratch, with
// the site held by the caller; a failure removes what it made.
func (s *Shard) importHeld(ctx context.Context, st *site.Site, n Names, scratch string, rep *ImportReport, progress func(done, total int64)) error {
	if fileExists(filepath.Join(n.Dir, "installed")) {
		return fmt.Errorf("import into %s: %w", st.Metadata.Name, ErrSiteExists)
	}
	err := s.importArchive(ctx, st, n, scratch, rep, progress)
	if err != nil {
		// Nothing of a failed import stays: the database, its users,
		// the site's files, pool and Unix user.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		if terr := s.teardownHeld(cctx, n); terr != nil {
			err = errors.Join(err, fmt.Errorf("remove the failed import: %w", terr))
		}
		return fmt.Errorf("import %s into %s: %w", rep.Dump, st.Metadata.Name, err)
	}
	return nil
}

// importGiveUp is an import failure that trying again cannot mend: the
// archive is gone from the transfer store, broken or hostile, its dump
// unusable or refused by the database. Convergence turns the site Failed
// with Reason (for the site's owner) and does not try again at that
// generation.
type importGiveUp struct {
	Reason string
	Err    error
}

func (e *importGiveUp) Error() string { return e.Reason + ": " + e.Err.Error() }
func (e *importGiveUp) Unwrap() error { return e.Err }

// ReasonImportFailed is the Installed condition's reason of a site whose
// import failed for good (importGiveUp).
const ReasonImportFailed = "ImportFailed"

// giveUpImport wraps err as an importGiveUp when it is permanent; other
// errors (a database down, a full disk, a cancelled context) stay as they
// are and are tried again.
func giveUpImport(err error) error {
	var reason string
	switch {
	case err == nil:
		return nil
	case gcerrors.Code(err) == gcerrors.NotFound:
		reason = "the archive is no longer in the transfer store"
	case errors.Is(err, siteport.ErrHostile), errors.Is(err, siteport.ErrBroken):
		reason = "the archive is broken or refused"
	case errors.Is(err, siteport.ErrNoOptions), errors.Is(err, siteport.ErrCharset):
		reason = "the archive's dump cannot be used"
	case errors.Is(err, mariadb.ErrDumpRefused):
		reason = "the database refused a statement of the dump"
	default:
		return err
	}
	return &importGiveUp{Reason: reason, Err: err}
}

// populateImport is populate for a site imported from an archive
// (Spec.Source.Import), with the site held: the archive is fetched from
// the transfer store into a scratch directory, inspected and imported;
// the report is kept in the site's directory (import-report.json). A
// failure leaves nothing of the site; convergence tries again, unless
// the failure is permanent (giveUpImport).
func (s *Shard) populateImport(ctx context.Context, st *site.Site, progress func(done, total int64)) error {
	return giveUpImport(s.populateImportOnce(ctx, st, progress))
}

func (s *Shard) populateImportOnce(ctx context.Context, st *site.Site, progress func(done, total int64)) error {
	imp := st.Spec.Source.Import
	n := s.NamesFor(st.Metadata.UID)
	b, err := s.openTransfer(ctx)
	if err != nil {
		return err
	}
	defer b.Close()
	scratch, err := os.MkdirTemp(s.cfg.Dir, "import-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(scratch)
	rep := &ImportReport{Site: st.Metadata.Name, Domain: st.Spec.Domain, NewURL: s.cfg.PublicURL(st.Spec.Domain)}
	rep.startPhases(s.cfg.Clock)
	archive := filepath.Join(scratch, "archive")
	if err := copyObject(ctx, b, imp.Key, archive); err != nil {
		return fmt.Errorf("fetch the archive %s: %w", imp.Key, err)
	}
	rep.phase("fetch")
	unpacked := filepath.Join(scratch, "unpacked")
	if err := os.Mkdir(unpacked, 0o700); err != nil {
		return err
	}
	limit := int64(st.Spec.Limits.WithDefaults().DiskMB) << 20
	if rep.Inspection, err = siteport.Inspect(ctx, siteport.InspectRequest{Archive: archive, Prefix: imp.Prefix, Scratch: unpacked,
		Limits: siteport.Limits{Bytes: 4 * limit, Files: 2_000_000}, Progress: progress}); err != nil {
		return fmt.Errorf("import %w", err)
	}
	rep.phase("unpack")
	if err := s.importHeld(ctx, st, n, unpacked, rep, progress); err != nil {
		return err
	}
	if js, err := json.MarshalIndent(rep, "", "  "); err == nil {
		_ = os.WriteFile(filepath.Join(n.Dir, "import-report.json"), js, 0o600)
	}
	return nil
}

func (s *Shard) importArchive(ctx context.Context, st *site.Site, n Names, scratch string, rep *ImportReport, progress func(done, total int64)) error {
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
	if err := s.db.EnsureDatabase(ctx, n.DB, sec.dbUser(n), sec.DBPassword, st.Spec.Limits.WithDefaults().DBConnections); err != nil {
		return err
	}
	// What convergence made before it handed the site over (an empty
	// database, a docroot on the default core) is replaced.
	if err := s.db.RecreateDatabase(ctx, n.DB); err != nil {
		return err
	}
	s.resetPooled(siteDBUsers(n)...)
	for _, d := range []string{n.Docroot, n.Docroot + ".building"} {
		if err := removeTree(d); err != nil {
			return fmt.Errorf("remove the docroot made before the import: %w", err)
		}
	}
	dump, renames := rep.DumpPath, rep.Renames
	rep.phase("prepare")
	rc, err := siteport.OpenDump(dump)
	if err != nil {
		return err
	}
	fi, _ := os.Stat(dump)
	var total int64
	if fi != nil {
		total = fi.Size()
	}
	pr := &progressCount{r: siteport.NewDumpFilter(rc), total: total, fn: progress}
	err = s.db.Load(ctx, n.DB, pr)
	rc.Close()
	if err != nil {
		return fmt.Errorf("load the dump: %w", err)
	}
	rep.phase("load")
	if len(renames) > 0 {
		conn, err := s.db.OpenRoot(n.DB)
		if err != nil {
			return err
		}
		for _, q := range renames {
			if _, err = conn.ExecContext(ctx, q); err != nil {
				break
			}
		}
		conn.Close()
		if err != nil {
			return fmt.Errorf("rename the tables from prefix %s to wp_: %w", rep.TablePrefix, err)
		}
	}
	if v, err := s.db.QueryString(ctx, fmt.Sprintf("SELECT COUNT(*) FROM `%s`.wp_options WHERE option_name IN ('siteurl', 'home')", n.DB)); err != nil {
		return fmt.Errorf("%w: the loaded dump has no usable wp_options table: %v", siteport.ErrNoOptions, err)
	} else if v == "0" {
		rep.Warnings = append(rep.Warnings, "wp_options has neither siteurl nor home")
	}
	rep.phase("rename")
	want := rep.WordPressVersion
	if !wordpress.ValidCoreVersion(want) {
		want = st.Spec.CoreVersion
	}
	core, err := s.coreFor(ctx, want)
	if err != nil && want != st.Spec.CoreVersion {
		rep.Warnings = append(rep.Warnings, fmt.Sprintf("WordPress %s is not available here (%v): the site runs %s; WordPress upgrades the database on its next admin visit", want, err, s.core.Version))
		core, err = s.coreFor(ctx, st.Spec.CoreVersion)
	}
	if err != nil {
		return err
	}
	rep.CoreVersion = core.Version
	if err := wordpress.BuildDocroot(core, n.Docroot); err != nil {
		return err
	}
	if err := s.dropVolume(n); err != nil {
		return err
	}
	src := filepath.Join(scratch, rep.Layout.WPContent)
	if err := s.leaveStoredExtensions(st, scratch, src, rep); err != nil {
		return fmt.Errorf("plugins and themes: %w", err)
	}
	if _, err := s.ensureVolume(ctx, n, st.Spec.Limits.WithDefaults().DiskMB, treeSize(src), uid, gid); err != nil {
		return err
	}
	if err := mergeContent(src, filepath.Join(n.Docroot, "wp-content"), uid, gid); err != nil {
		return fmt.Errorf("wp-content: %w", err)
	}
	rep.phase("files")
	for i, from := range []string{rep.OldURL, rep.OldHome} {
		if from == "" || from == rep.NewURL || (i == 1 && from == rep.OldURL) {
			continue
		}
		r, err := s.rewriteImported(ctx, n.DB, from, rep.NewURL)
		if err != nil {
			return fmt.Errorf("rewrite URLs %s → %s: %w", from, rep.NewURL, err)
		}
		rep.RowsChanged += r.RowsChanged
		rep.CellsChanged += r.CellsChanged
		rep.RowsScanned += r.RowsScanned
		rep.BytesScanned += r.BytesScanned
		rep.Warnings = append(rep.Warnings, r.Warnings...)
	}
	// siteurl and home are the site's, whatever form the old ones had.
	if err := s.db.Exec(ctx, fmt.Sprintf("UPDATE `%s`.wp_options SET option_value = ? WHERE option_name IN ('siteurl', 'home')", n.DB), rep.NewURL); err != nil {
		return err
	}
	rep.phase("rewrite")
	rep.Posts, _ = countRows(ctx, s, n.DB, "wp_posts")
	rep.Users, _ = countRows(ctx, s, n.DB, "wp_users")
	if err := s.ensureFiles(ctx, st, n, sec, uid, gid); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(n.Dir, "installed"), []byte(core.Version+"\nimported from an archive\n"), 0o600); err != nil {
		return fmt.Errorf("install marker: %w", err)
	}
	rep.phase("finish")
	s.log.Info("site imported from an archive", "site", st.Metadata.Name, "from", rep.OldURL, "prefix", rep.TablePrefix, "tables", len(rep.Tables))
	return nil
}

func countRows(ctx context.Context, s *Shard, db, table string) (int, error) {
	v, err := s.db.QueryString(ctx, fmt.Sprintf("SELECT COUNT(*) FROM `%s`.`%s`", db, table))
	if err != nil {
		return 0, err
	}
	var c int
	_, err = fmt.Sscan(v, &c)
	return c, err
}

// rewriteImported is rewriteURLs returning the report.
func (s *Shard) rewriteImported(ctx context.Context, db, from, to string) (searchreplace.Report, error) {
	conn, err := s.db.OpenRoot(db)
	if err != nil {
		return searchreplace.Report{}, err
	}
	defer conn.Close()
	return searchreplace.RewriteDatabase(ctx, conn, siteport.SitePrefix, from, to, searchreplace.Options{})
}

// leaveStoredExtensions sorts the archive's plugins and themes (under
// src, its unpacked wp-content) into rep.Extensions: each that the site's
// spec names with an upload source of the very archive
// siteport.PackExtensions makes of it (the API's import kept it as an
// upload of the site's organisation: POST /v1/imports) is removed from
// src — the site's code job links it from the artefact store instead —,
// the others stay in the site's tree with the reason.
func (s *Shard) leaveStoredExtensions(st *site.Site, scratch, src string, rep *ImportReport) error {
	if len(rep.Layout.Plugins)+len(rep.Layout.Themes) == 0 {
		return nil
	}
	pack, err := os.MkdirTemp(s.cfg.Dir, "import-pack-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(pack)
	var lim artefact.Limits
	if s.cfg.Artefacts != nil {
		lim = s.cfg.Artefacts.Limits()
	}
	exts, err := siteport.PackExtensions(scratch, rep.Layout, rep.Archive.Skipped, pack, lim)
	if err != nil {
		return err
	}
	named := map[string]string{}
	for kind, l := range map[string][]site.Extension{"plugin": st.Spec.Plugins, "theme": st.Spec.Themes} {
		for _, e := range l {
			if e.Source.SourceType() == site.SourceUpload {
				named[kind+"/"+e.Name] = e.Source.SHA256
			}
		}
	}
	var kept []string
	for i := range exts {
		e := &exts[i]
		e.Zip, e.Artefact = "", nil
		if e.Storable && named[e.Kind+"/"+e.Name] != e.SHA256 {
			e.Storable, e.Reason = false, "the site's spec names no upload of it (an import through POST /v1/imports names one)"
		}
		if !e.Storable {
			kept = append(kept, e.Kind+" "+e.Name+" ("+e.Reason+")")
			continue
		}
		if err := os.RemoveAll(filepath.Join(src, e.Kind+"s", e.Name)); err != nil {
			return err
		}
	}
	rep.Extensions = exts
	rep.Warnings = slices.DeleteFunc(rep.Warnings, func(w string) bool { return w == siteport.WarnTreeExtensions })
	if len(kept) > 0 {
		rep.Warnings = append(rep.Warnings, "kept in the site's own tree, not the shared artefact store: "+strings.Join(kept, "; "))
	}
	return nil
}

// mergeContent copies the unpacked wp-content src into the docroot's
// dst (which links the core's bundled themes and plugins, and whose
// uploads may be a mount of the site's volume): directories merge, a
// link of dst is replaced by src's entry of that name, files are
// overwritten; everything ends up the site user's.
func mergeContent(src, dst string, uid, gid int) error {
	ents, err := os.ReadDir(src)
	if err != nil {
		return err
	}
	for _, e := range ents {
		from, to := filepath.Join(src, e.Name()), filepath.Join(dst, e.Name())
		fi, err := os.Lstat(to)
		switch {
		case err == nil && e.IsDir() && fi.IsDir():
			if err := mergeContent(from, to, uid, gid); err != nil {
				return err
			}
			continue
		case err == nil:
			if err := os.RemoveAll(to); err != nil {
				return err
			}
		case !errors.Is(err, fs.ErrNotExist):
			return err
		}
		if err := copyTree(from, to, uid, gid); err != nil {
			return err
		}
	}
	return nil
}

// copyTree copies from (a file or a directory of the scratch tree, which
// holds only directories and regular files) to to, owned by uid:gid. A
// copy, not a rename: the site's volume is another file system.
func copyTree(from, to string, uid, gid int) error {
	return filepath.WalkDir(from, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		t := filepath.Join(to, rel)
		switch {
		case d.IsDir():
			if err := os.MkdirAll(t, 0o755); err != nil {
				return err
			}
		case d.Type().IsRegular():
			if err := copyFile(p, t); err != nil {
				return err
			}
		default:
			return nil
		}
		return os.Lchown(t, uid, gid)
	})
}

func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return err
	}
	_, err = io.Copy(out, in)
	return errors.Join(err, out.Close())
}

type progressCount struct {
	r           io.Reader
	done, total int64
	last        int64
	fn          func(done, total int64)
}

func (p *progressCount) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.done += int64(n)
	if p.fn != nil && (p.done-p.last >= 8<<20 || err == io.EOF) {
		p.last = p.done
		p.fn(p.done, max(p.total, p.done))
	}
	return n, err
}

// copyObject copies object key of the transfer store b into a new file
// path (root's, 0600).
func copyObject(ctx context.Context, b *blob.Bucket, key, path string) error {
	rd, err := b.NewReader(ctx, key, nil)
	if err != nil {
		return err
	}
	defer rd.Close()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, rd)
	return errors.Join(err, f.Close())
}
