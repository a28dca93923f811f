package api

// Site export: a job on the site's shard writes the portable archive
// (package siteport) into the transfer store; its result names the
// object, which GET /v1/jobs/{id}/archive streams to the caller.

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"

	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
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
	var req struct{}
	if err := decodeOptionalJSON(c.r, &req); err != nil {
		return response{}, err
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
		return response{status: http.StatusOK, body: j, unchanged: true}, nil
	}
	j, err := s.createJob(ctx, store.JobExport, name, st.Metadata.UID, st.Status.Shard, struct{}{})
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
	if err := json.Unmarshal(j.Result, &res); err != nil || res.Key != store.ExportKey(j.SiteUID, j.ID) {
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
	h.Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s-%s.tar.gz"`, j.Site, j.ID))
	h.Set("Content-Length", fmt.Sprint(rd.Size()))
	h.Set("X-Archive-SHA256", res.SHA256)
	return response{contentType: "application/gzip", header: h, stream: func(w http.ResponseWriter) error {
		defer rd.Close()
		_, err := io.Copy(w, rd)
		return err
	}}, nil
}
