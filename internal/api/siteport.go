package api

// Site export: a job on the site's shard writes the portable archive
// (package siteport) into the transfer store; its result names the
// object, which GET /v1/jobs/{id}/archive streams to the caller.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"

	"github.com/aipress/aipress/internal/liveimport"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/siteport"
	"github.com/aipress/aipress/internal/store"
	"github.com/aipress/aipress/internal/wxr"
	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"
)

func (s *server) noTransfer() error {
	if s.cfg.Transfer == nil {
		return errorf(http.StatusNotImplemented, CodeUnimplemented, "this control plane has no transfer store: exports cannot be downloaded")
	}
	return nil
}

func (s *server) exportSite(c *call) (response, error) {
	ctx := c.r.Context()
	if err := s.noTransfer(); err != nil {
		return response{}, err
	}
	name, err := siteName(c)
	if err != nil {
		return response{}, err
	}
	var req store.ExportParams
	if err := decodeOptionalJSON(c.r, &req); err != nil {
		return response{}, err
	}
	switch req.Format {
	case "", store.ExportArchive:
		req.Format = ""
	case store.ExportWXR:
	default:
		return response{}, badRequest("format %q: want %q (the default) or %q", req.Format, store.ExportArchive, store.ExportWXR)
	}
	st, err := s.getPlacedSite(ctx, name, "export")
	if err != nil {
		return response{}, err
	}
	if st.Status.Phase != site.PhaseReady && st.Status.Phase != site.PhaseSuspended {
		return response{}, conflict("site %q is %s; only a Ready or Suspended site is exported", name, st.Status.Phase)
	}
	if j, err := s.activeJob(ctx, store.JobExport, name, ""); err != nil {
		return response{}, err
	} else if j != nil {
		var p store.ExportParams
		_ = json.Unmarshal(j.Params, &p)
		if p.Format != req.Format {
			return response{}, conflict("site %q has another export running (job %s); start this one when it ends", name, j.ID)
		}
		return response{status: http.StatusOK, body: j, unchanged: true}, nil
	}
	j, err := s.createJob(ctx, store.JobExport, name, st.Metadata.UID, st.Status.Shard, req)
	if err != nil {
		return response{}, err
	}
	return response{status: http.StatusAccepted, body: j}, nil
}

func (s *server) jobArchive(c *call) (response, error) {
	ctx := c.r.Context()
	id := c.r.PathValue("id")
	c.target = id
	j, err := s.cfg.Store.GetJob(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return response{}, jobNotFound(id)
	}
	if err != nil {
		return response{}, internal(fmt.Errorf("get job %q: %w", id, err))
	}
	if err := s.allowSiteUID(c, j.Site, j.SiteUID, jobNotFound(id)); err != nil {
		return response{}, err
	}
	if err := s.noTransfer(); err != nil {
		return response{}, err
	}
	if j.Kind != store.JobExport {
		return response{}, badRequest("job %s is a %s job: only export jobs have an archive", id, j.Kind)
	}
	if j.Phase != store.JobSucceeded {
		return response{}, conflict("export job %s is %s: its archive is there once it succeeded", id, j.Phase)
	}
	var res store.ExportResult
	err = json.Unmarshal(j.Result, &res)
	want, ext, ctype := store.ExportKey(j.SiteUID, j.ID), "tar.gz", "application/gzip"
	if res.Format == store.ExportWXR {
		want, ext, ctype = store.WXRExportKey(j.SiteUID, j.ID), "xml", "application/xml"
	}
	if err != nil || res.Key != want {
		return response{}, internal(fmt.Errorf("export job %s: result %s names no archive of its own", id, j.Result))
	}
	rd, err := s.cfg.Transfer.NewReader(ctx, res.Key, nil)
	if gcerrors.Code(err) == gcerrors.NotFound {
		return response{}, errorf(http.StatusGone, "gone", "the archive of export job %s is no longer kept", id)
	}
	if err != nil {
		return response{}, internal(fmt.Errorf("open export %s: %w", res.Key, err))
	}
	h := http.Header{}
	h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s-%s.%s"`, j.Site, j.ID, ext))
	h.Set("Content-Length", fmt.Sprint(rd.Size()))
	h.Set("X-Archive-SHA256", res.SHA256)
	return response{contentType: ctype, header: h, stream: func(w http.ResponseWriter) error {
		defer rd.Close()
		_, err := io.Copy(w, rd)
		return err
	}}, nil
}

// ImportResponse is the answer of POST /v1/imports: the new site (absent
// in a dry run) and what the archive holds.
type ImportResponse struct {
	Domain     string               `json:"domain"`
	DryRun     bool                 `json:"dry_run"`
	Site       *site.Site           `json:"site,omitempty"`
	Inspection *siteport.Inspection `json:"inspection"`
}

// importSite takes an archive of a WordPress site (the request body) and
// creates a site from it: the archive is inspected here first (hostile,
// broken and unusable archives are refused with the reason, 422, before
// anything is made), put into the transfer store, and the new site's
// spec.source names it; its shard imports it as it converges.
func (s *server) importSite(c *call) (response, error) {
	ctx := c.r.Context()
	if err := s.noTransfer(); err != nil {
		return response{}, err
	}
	q := c.r.URL.Query()
	req := CreateSiteRequest{Domain: q.Get("domain"), Org: q.Get("org"), Plan: q.Get("plan"), Title: q.Get("title"),
		AdminEmail: q.Get("admin_email")}
	if req.Title == "" {
		req.Title = "Imported site"
	}
	if req.AdminEmail == "" {
		req.AdminEmail = "admin@" + req.Domain
	}
	dryRun := q.Get("dry_run") == "true" || q.Get("dry_run") == "1"
	c.target = req.Domain
	// The domain, organisation, plan and quota first: nothing is read
	// for a site that could not be made.
	pre, err := s.newSite(c, &req, nil, true)
	if err != nil {
		return response{}, err
	}
	limit := int64(pre.site.Spec.Limits.WithDefaults().DiskMB) << 20
	tmp, archive, unpacked, err := spoolArchive(c, "aipress-import-*", limit)
	if tmp != "" {
		defer os.RemoveAll(tmp)
	}
	if err != nil {
		return response{}, err
	}
	ireq := siteport.InspectRequest{Archive: archive, Prefix: q.Get("prefix"), Scratch: unpacked,
		Limits: siteport.Limits{Bytes: 4 * limit, Files: 2_000_000}}
	if s.cfg.Uploads != nil {
		// Plugins and themes go to the shared artefact store: each
		// that artefact's checks accept is packed, kept as an upload of
		// the site's organisation and named by the site's spec.
		ireq.Pack, ireq.ArtefactLimits = filepath.Join(tmp, "extensions"), s.uploadLimits()
		if err := os.Mkdir(ireq.Pack, 0o700); err != nil {
			return response{}, internal(err)
		}
	}
	in, err := siteport.Inspect(ctx, ireq)
	if err != nil {
		return response{}, errorf(http.StatusUnprocessableEntity, CodeInvalidArgument, "import refused: %v", err)
	}
	if dryRun {
		return response{status: http.StatusOK, body: ImportResponse{Domain: req.Domain, DryRun: true, Inspection: in}}, nil
	}
	_ = os.RemoveAll(unpacked)
	id, err := newUID()
	if err != nil {
		return response{}, internal(err)
	}
	key := "imports/" + id + "/archive"
	af, err := os.Open(archive)
	if err != nil {
		return response{}, internal(err)
	}
	err = s.cfg.Transfer.Upload(ctx, key, af, &blob.WriterOptions{ContentType: "application/octet-stream"})
	af.Close()
	if err != nil {
		return response{}, internal(fmt.Errorf("store the archive: %w", err))
	}
	plugins, themes, err := s.keepImportedExtensions(ctx, pre.site.Metadata.Org, c.who.actor(), in.Extensions)
	if err != nil {
		_ = s.cfg.Transfer.Delete(context.WithoutCancel(ctx), key)
		return response{}, internal(err)
	}
	n, err := s.newSite(c, &req, func(spec *site.Spec) error {
		spec.Source = &site.Source{FromURL: in.OldURL, Import: &site.ImportSource{Key: key, Prefix: in.TablePrefix}}
		spec.Plugins, spec.Themes = plugins, themes
		return nil
	}, false)
	if err != nil {
		_ = s.cfg.Transfer.Delete(context.WithoutCancel(ctx), key)
		return response{}, err
	}
	return response{status: http.StatusCreated, body: ImportResponse{Domain: req.Domain, Site: redact(n.site), Inspection: in}}, nil
}

// keepImportedExtensions keeps each storable plugin and theme of an
// archive (siteport.Extension, packed by the inspection) as an upload of
// org, as POST /v1/artefacts does, and returns the spec entries naming
// them (source upload, active as the dump had them). A site's code job
// then links them from the shard's artefact store; the import leaves
// their folders out of the site's tree.
func (s *server) keepImportedExtensions(ctx context.Context, org, by string, exts []siteport.Extension) (plugins, themes []site.Extension, err error) {
	for _, e := range exts {
		if !e.Storable {
			continue
		}
		f, err := os.Open(e.Zip)
		if err != nil {
			return nil, nil, err
		}
		fi, err := f.Stat()
		if err == nil {
			_, _, err = s.keepUpload(ctx, org, e.SHA256, f, fi.Size(), e.Artefact, by)
		}
		f.Close()
		if err != nil {
			return nil, nil, fmt.Errorf("keep imported %s %s: %w", e.Kind, e.Name, err)
		}
		x := site.Extension{Name: e.Name, Version: e.Version, Source: site.ExtensionSource{Type: site.SourceUpload, SHA256: e.SHA256}, Active: e.Active}
		if e.Kind == "theme" {
			themes = append(themes, x)
		} else {
			plugins = append(plugins, x)
		}
	}
	return plugins, themes, nil
}

// WXRImportResponse is the answer of POST /v1/sites/{name}/wxr-import:
// what the file holds and, unless a dry run, the job importing it.
type WXRImportResponse struct {
	Site   string       `json:"site"`
	DryRun bool         `json:"dry_run"`
	File   *wxr.Summary `json:"file"`
	Job    *store.Job   `json:"job,omitempty"`
}

// wxrImport takes a WXR file (the request body) for an installed site:
// it is read and checked here first (a DTD, entities, a file beyond the
// plan's disk limit or 200,000 items, anything that is not a WordPress
// export: refused with the reason, 422), then put into the transfer
// store for a wxr-import job on the site's shard, which fetches the
// attachments and has WordPress insert the content.
func (s *server) wxrImport(c *call) (response, error) {
	ctx := c.r.Context()
	if err := s.noTransfer(); err != nil {
		return response{}, err
	}
	name, err := siteName(c)
	if err != nil {
		return response{}, err
	}
	q := c.r.URL.Query()
	dryRun := q.Get("dry_run") == "true" || q.Get("dry_run") == "1"
	skip := q.Get("skip_attachments") == "true" || q.Get("skip_attachments") == "1"
	st, err := s.getPlacedSite(ctx, name, "import content into")
	if err != nil {
		return response{}, err
	}
	if st.Status.Phase != site.PhaseReady {
		return response{}, conflict("site %q is %s; content is imported into a Ready site", name, st.Status.Phase)
	}
	lim := wxr.LimitsForDisk(st.Spec.Limits.WithDefaults().DiskMB)
	tmp, err := os.CreateTemp("", "aipress-wxr-*.xml")
	if err != nil {
		return response{}, internal(err)
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	_, err = io.Copy(tmp, http.MaxBytesReader(nil, c.r.Body, lim.Bytes))
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return response{}, errorf(http.StatusRequestEntityTooLarge, CodeInvalidArgument, "the WXR file is larger than %d bytes (the plan's disk limit)", lim.Bytes)
	}
	if err != nil {
		return response{}, badRequest("read the WXR file: %v", err)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return response{}, internal(err)
	}
	sum, err := wxr.Scan(tmp, lim, func(wxr.Record) error { return nil })
	if err != nil {
		return response{}, errorf(http.StatusUnprocessableEntity, CodeInvalidArgument, "WXR import refused: %v", err)
	}
	if dryRun {
		return response{status: http.StatusOK, body: WXRImportResponse{Site: name, DryRun: true, File: sum}}, nil
	}
	if j, err := s.activeJob(ctx, store.JobWXRImport, name, ""); err != nil {
		return response{}, err
	} else if j != nil {
		return response{}, conflict("site %q has a WXR import running already (job %s)", name, j.ID)
	}
	id, err := newUID()
	if err != nil {
		return response{}, internal(err)
	}
	key := store.WXRImportKey(st.Metadata.UID, id)
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return response{}, internal(err)
	}
	if err := s.cfg.Transfer.Upload(ctx, key, tmp, &blob.WriterOptions{ContentType: "application/xml"}); err != nil {
		return response{}, internal(fmt.Errorf("store the WXR file: %w", err))
	}
	j, err := s.createJob(ctx, store.JobWXRImport, name, st.Metadata.UID, st.Status.Shard, store.WXRImportParams{Key: key, SkipAttachments: skip})
	if err != nil {
		_ = s.cfg.Transfer.Delete(context.WithoutCancel(ctx), key)
		return response{}, err
	}
	return response{status: http.StatusAccepted, body: WXRImportResponse{Site: name, File: sum, Job: j}}, nil
}

// ResyncResponse is the answer of POST /v1/sites/{name}/resync.
type ResyncResponse struct {
	Site       string               `json:"site"`
	Inspection *siteport.Inspection `json:"inspection"`
	Job        *store.Job           `json:"job"`
}

// resyncSite takes a delta archive pulled from the live site the site was
// imported from (liveimport.Pull with Since: changed files, the source's
// whole dump, the listing with deleted files) for a Ready site: it is
// inspected here first as an import's archive is (refused with the
// reason, 422), then stored for a live-resync job on the site's shard.
func (s *server) resyncSite(c *call) (response, error) {
	ctx := c.r.Context()
	if err := s.noTransfer(); err != nil {
		return response{}, err
	}
	name, err := siteName(c)
	if err != nil {
		return response{}, err
	}
	st, err := s.getPlacedSite(ctx, name, "re-sync")
	if err != nil {
		return response{}, err
	}
	if st.Status.Phase != site.PhaseReady {
		return response{}, conflict("site %q is %s; a re-sync applies to a Ready site", name, st.Status.Phase)
	}
	if j, err := s.activeJob(ctx, store.JobResync, name, ""); err != nil {
		return response{}, err
	} else if j != nil {
		return response{}, conflict("site %q has a re-sync running already (job %s)", name, j.ID)
	}
	limit := int64(st.Spec.Limits.WithDefaults().DiskMB) << 20
	tmp, archive, unpacked, err := spoolArchive(c, "aipress-resync-*", limit)
	if tmp != "" {
		defer os.RemoveAll(tmp)
	}
	if err != nil {
		return response{}, err
	}
	in, err := siteport.Inspect(ctx, siteport.InspectRequest{Archive: archive, Scratch: unpacked,
		Limits: siteport.Limits{Bytes: 4 * limit, Files: 2_000_000}})
	if err != nil {
		return response{}, errorf(http.StatusUnprocessableEntity, CodeInvalidArgument, "re-sync refused: %v", err)
	}
	if _, err := os.Stat(filepath.Join(unpacked, filepath.Dir(in.Layout.WPContent), liveimport.ListingName)); err != nil {
		return response{}, errorf(http.StatusUnprocessableEntity, CodeInvalidArgument, "re-sync refused: the archive has no %s (not a pull from a live site)", liveimport.ListingName)
	}
	_ = os.RemoveAll(unpacked)
	id, err := newUID()
	if err != nil {
		return response{}, internal(err)
	}
	key := store.ResyncKey(st.Metadata.UID, id)
	af, err := os.Open(archive)
	if err != nil {
		return response{}, internal(err)
	}
	err = s.cfg.Transfer.Upload(ctx, key, af, &blob.WriterOptions{ContentType: "application/gzip"})
	af.Close()
	if err != nil {
		return response{}, internal(fmt.Errorf("store the archive: %w", err))
	}
	j, err := s.createJob(ctx, store.JobResync, name, st.Metadata.UID, st.Status.Shard, store.ResyncParams{Key: key})
	if err != nil {
		_ = s.cfg.Transfer.Delete(context.WithoutCancel(ctx), key)
		return response{}, err
	}
	return response{status: http.StatusAccepted, body: ResyncResponse{Site: name, Inspection: in, Job: j}}, nil
}

// spoolArchive copies the request's body, an archive of at most 4×limit
// bytes (limit: the plan's disk limit), to "archive" in a new temporary
// directory dir named after pattern, and makes "unpacked" beside it for
// siteport.Inspect. The caller removes dir when it is not empty, also
// after an error.
func spoolArchive(c *call, pattern string, limit int64) (dir, archive, unpacked string, err error) {
	dir, err = os.MkdirTemp("", pattern)
	if err != nil {
		return "", "", "", internal(err)
	}
	archive = filepath.Join(dir, "archive")
	f, err := os.OpenFile(archive, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return dir, "", "", internal(err)
	}
	_, err = io.Copy(f, http.MaxBytesReader(nil, c.r.Body, 4*limit))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return dir, "", "", errorf(http.StatusRequestEntityTooLarge, CodeInvalidArgument, "the archive is larger than %d bytes (4× the plan's disk limit)", 4*limit)
	}
	if err != nil {
		return dir, "", "", badRequest("read the archive: %v", err)
	}
	unpacked = filepath.Join(dir, "unpacked")
	if err := os.Mkdir(unpacked, 0o700); err != nil {
		return dir, "", "", internal(err)
	}
	return dir, archive, unpacked, nil
}
