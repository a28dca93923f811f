package shard

// WXR content import and export (package wxr): a WordPress export file's
// authors, terms, posts, comments, menus and attachments into an
// installed site, and a site's content out as WordPress's own export.
// WordPress writes the rows: wxr.php runs as the site's own Unix user.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
	"github.com/aipress/aipress/internal/wordpress"
	"github.com/aipress/aipress/internal/wxr"
)

// WXRImportRequest is an import of a WXR file into an installed site.
type WXRImportRequest struct {
	// File is the WXR file's path on this shard's disk.
	File string
	// DryRun reads and checks the file and reports its counts; nothing
	// is fetched or changed.
	DryRun bool
	// SkipAttachments imports no attachment (the importer's "Download
	// and import file attachments" unticked).
	SkipAttachments bool
	// Fetch bounds the attachment downloads.
	Fetch wxr.FetchLimits
	// AllowPrivateFetch lets attachment downloads reach loopback and
	// private addresses (tests; the shard's Config.AllowPrivateFetch).
	AllowPrivateFetch bool
	// Progress, if set, is told the bytes of the file read.
	Progress func(done, total int64)
}

// WXRImportReport is what a WXR import found and did.
type WXRImportReport struct {
	Site   string `json:"site"`
	Domain string `json:"domain"`
	DryRun bool   `json:"dry_run"`
	// File is what the file holds.
	File *wxr.Summary `json:"file"`
	// Imported is what WordPress inserted (absent in a dry run).
	Imported *wordpress.WXRImported `json:"imported,omitempty"`
	// Fetched counts the attachments downloaded; FetchFailures are
	// those that were not, and why.
	Fetched       int                `json:"fetched"`
	FetchFailures []wxr.FetchFailure `json:"fetch_failures,omitempty"`
}

// wxrLimits are site st's limits on a WXR file (the API's too).
func wxrLimits(st *site.Site) wxr.Limits {
	return wxr.LimitsForDisk(st.Spec.Limits.WithDefaults().DiskMB)
}

// CheckWXR reads the WXR file at path within site st's limits and
// returns its counts; a hostile or broken file is refused with the
// reason (wxr.ErrHostile, wxr.ErrBroken).
func CheckWXR(path string, lim wxr.Limits) (*wxr.Summary, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return wxr.Scan(f, lim, func(wxr.Record) error { return nil })
}

// ImportWXR imports the content of a WXR file into site st, installed
// on this shard: the file is read and checked whole first (a refusal
// changes nothing), then read again, its attachments fetched (see
// wxr.Fetcher), and its records handed to WordPress in the site's own
// context (wxr.php as the site's Unix user, with the site held). Posts a
// post of the same type, title and date stands for already are skipped
// (an import run twice adds nothing); what failed is in the report.
func (s *Shard) ImportWXR(ctx context.Context, st *site.Site, req WXRImportRequest) (*WXRImportReport, error) {
	n := s.NamesFor(st.Metadata.UID)
	if !fileExists(filepath.Join(n.Dir, "installed")) {
		return nil, fmt.Errorf("site %s is not installed on shard %s", st.Metadata.Name, s.cfg.Name)
	}
	lim := wxrLimits(st)
	sum, err := CheckWXR(req.File, lim)
	if err != nil {
		return nil, publicf("WXR import refused: %v", err)
	}
	rep := &WXRImportReport{Site: st.Metadata.Name, Domain: st.Spec.Domain, DryRun: req.DryRun, File: sum}
	if req.DryRun {
		return rep, nil
	}
	unlock, err := s.lockSite(ctx, n.ID)
	if err != nil {
		return nil, err
	}
	defer unlock()
	uid, gid, err := s.ensureSiteUser(ctx, n)
	if err != nil {
		return nil, err
	}
	scratch, err := os.MkdirTemp(s.cfg.Dir, "wxr-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(scratch)
	f, err := os.Open(req.File)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var fetcher *wxr.Fetcher
	if !req.SkipAttachments {
		fetcher = wxr.NewFetcher(req.Fetch, req.AllowPrivateFetch || s.cfg.AllowPrivateFetch)
	}
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() {
		var werr error
		rep.Fetched, rep.FetchFailures, werr = wxr.WriteRecords(ctx, f, lim, fetcher, scratch, pw, func(d int64) {
			if req.Progress != nil {
				req.Progress(d, sum.Bytes)
			}
		})
		pw.CloseWithError(werr)
		done <- werr
	}()
	run := wordpress.Runner{Docroot: n.Docroot, Host: hostOf(s.cfg.PublicURL(st.Spec.Domain)), UID: uid, GID: gid}
	imp, err := run.ImportWXR(ctx, s.wxrScript, pr)
	// The script may have stopped reading: the writer is not left
	// blocked on the pipe.
	pr.CloseWithError(errors.New("the import script ended"))
	werr := <-done
	rep.Imported = imp
	if err != nil {
		return rep, errors.Join(err, werr)
	}
	if werr != nil {
		return rep, fmt.Errorf("import WXR: %w", werr)
	}
	s.log.Info("WXR imported", "site", st.Metadata.Name, "posts", imp.Posts, "comments", imp.Comments, "terms", imp.Terms,
		"attachments", imp.Attachments, "failures", imp.FailuresTotal+len(rep.FetchFailures))
	return rep, nil
}

// ExportWXR writes site st's content as WordPress's own WXR export
// (export_wp, all content) to w, checking as it streams that it is a WXR
// file this package would import, and returns its counts.
func (s *Shard) ExportWXR(ctx context.Context, st *site.Site, w io.Writer) (*wxr.Summary, error) {
	n := s.NamesFor(st.Metadata.UID)
	if !fileExists(filepath.Join(n.Dir, "installed")) {
		return nil, fmt.Errorf("site %s is not installed on shard %s", st.Metadata.Name, s.cfg.Name)
	}
	uid, gid, err := s.ensureSiteUser(ctx, n)
	if err != nil {
		return nil, err
	}
	lim := wxr.Limits{Bytes: 4 * wxrLimits(st).Bytes}
	pr, pw := io.Pipe()
	type scanned struct {
		sum *wxr.Summary
		err error
	}
	done := make(chan scanned, 1)
	go func() {
		sum, err := wxr.Scan(pr, lim, func(wxr.Record) error { return nil })
		// What the scan does not read (after a refusal) is drained.
		_, _ = io.Copy(io.Discard, pr)
		done <- scanned{sum, err}
	}()
	run := wordpress.Runner{Docroot: n.Docroot, Host: hostOf(s.cfg.PublicURL(st.Spec.Domain)), UID: uid, GID: gid}
	err = run.ExportWXR(ctx, s.wxrScript, io.MultiWriter(w, pw), lim.Bytes)
	pw.Close()
	sc := <-done
	if err != nil {
		return nil, err
	}
	if sc.err != nil {
		return nil, fmt.Errorf("export WXR: WordPress's export is not a WXR file this platform reads: %w", sc.err)
	}
	return sc.sum, nil
}

// WXRImportJob is a WXR import job: the file at params.Key in the
// transfer store imported into site st.
func (s *Shard) WXRImportJob(ctx context.Context, st *site.Site, p store.WXRImportParams, progress func(done, total int64)) (*WXRImportReport, error) {
	b, err := s.openTransfer(ctx)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	scratch, err := os.MkdirTemp(s.cfg.Dir, "wxr-file-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(scratch)
	path := filepath.Join(scratch, "export.xml")
	if err := copyObject(ctx, b, p.Key, path); err != nil {
		return nil, fmt.Errorf("fetch the WXR file %s: %w", p.Key, err)
	}
	rep, err := s.ImportWXR(ctx, st, WXRImportRequest{File: path, SkipAttachments: p.SkipAttachments, Progress: progress})
	// Imported or failed, the file has served (a job that failed is not
	// run again; one whose shard died never got here and reads it again).
	_ = b.Delete(context.WithoutCancel(ctx), p.Key)
	return rep, err
}

// WXRExportJob is an export job with format wxr: site st's WXR file
// written to the transfer store under store.WXRExportKey(uid, id).
func (s *Shard) WXRExportJob(ctx context.Context, st *site.Site, id string, progress func(done, total int64)) (*store.ExportResult, error) {
	b, err := s.openTransfer(ctx)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	key := store.WXRExportKey(st.Metadata.UID, id)
	var sum *wxr.Summary
	obj, err := writeObject(ctx, b, "WXR export", key, func(w io.Writer) error {
		var err error
		sum, err = s.ExportWXR(ctx, st, &progressWriter{w: w, fn: progress})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("export %s: %w", st.Metadata.Name, err)
	}
	counts, _ := json.Marshal(sum)
	return &store.ExportResult{Format: store.ExportWXR, Key: key, Bytes: obj.Size, SHA256: obj.SHA256, URL: sum.Site.Link, WXR: counts}, nil
}

// progressWriter tells fn the bytes written, every MiB.
type progressWriter struct {
	w       io.Writer
	n, last int64
	fn      func(done, total int64)
}

func (p *progressWriter) Write(b []byte) (int, error) {
	n, err := p.w.Write(b)
	p.n += int64(n)
	if p.fn != nil && p.n-p.last >= 1<<20 {
		p.last = p.n
		p.fn(p.n, 0)
	}
	return n, err
}
