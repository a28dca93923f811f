package api

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"time"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"

	"github.com/aipress/aipress/internal/artefact"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

// Uploaded artefacts (POST /v1/artefacts): plugin, theme and core zips an
// organisation uploads, checked as the shards' artefact store checks them,
// kept in Config.Uploads (the control plane's: a fileblob bucket under
// <data dir>/artefacts) and fetched by shards (GET
// /v1/agent/artefacts/{sha256}) when a site's spec names one (source type
// upload, by SHA-256). The bucket holds:
//
//	archives/<sha256>.zip        the archive, once whoever uploaded it
//	orgs/<org>/<sha256>.json     the record of an organisation's upload
//	by-sha/<sha256>/<org>        (empty) which organisations uploaded it
//
// One record per organisation (not one sidecar listing them all) so that
// two organisations uploading one archive at once never race on a file.

// ArtefactUpload is an organisation's uploaded artefact: what the answer
// of POST /v1/artefacts and the items of GET /v1/artefacts hold.
type ArtefactUpload struct {
	SHA256 string `json:"sha256"`
	// Size is the archive's size in bytes.
	Size int64  `json:"size"`
	Kind string `json:"kind"`
	// Name is the archive's root folder: the plugin's or theme's slug
	// ("wordpress" for a core).
	Name    string `json:"name"`
	Version string `json:"version,omitempty"`
	// Files and Bytes are what it unpacks to.
	Files      int       `json:"files"`
	Bytes      int64     `json:"bytes"`
	Org        string    `json:"org"`
	UploadedAt time.Time `json:"uploaded_at"`
	UploadedBy string    `json:"uploaded_by,omitempty"`
}

// ArtefactList is a page of GET /v1/artefacts.
type ArtefactList struct {
	Items    []ArtefactUpload `json:"items"`
	Continue string           `json:"continue,omitempty"`
}

var sha256RE = regexp.MustCompile(`^[0-9a-f]{64}$`)

func (s *server) uploadLimits() artefact.Limits {
	l := s.cfg.UploadLimits
	if l.MaxArchiveBytes <= 0 {
		l.MaxArchiveBytes = artefact.DefaultLimits.MaxArchiveBytes
	}
	return l
}

func errNoUploads() error {
	return errorf(http.StatusNotImplemented, CodeUnimplemented, "this control plane keeps no uploaded artefacts")
}

// artefactOrg resolves the organisation of an artefact call (?org=, or
// the caller's only organisation where it has the route's permission, or
// the default organisation for platform tokens) and checks the caller's
// permission there.
func (s *server) artefactOrg(c *call) (string, error) {
	org := c.r.URL.Query().Get("org")
	if org == "" {
		switch vis := c.who.visibleOrgs(c.perm); len(vis) {
		case 0:
			if vis == nil {
				org = store.DefaultOrg
			}
		case 1:
			org = vis[0]
		default:
			return "", badRequest("name the organisation (?org=); you may act in %s", strings.Join(vis, ", "))
		}
	}
	if org == "" {
		return "", errForbidden(c)
	}
	if err := c.allow(org, orgNotFound(org)); err != nil {
		return "", err
	}
	if _, err := s.cfg.Store.GetOrg(c.r.Context(), org); errors.Is(err, store.ErrNotFound) {
		return "", orgNotFound(org)
	} else if err != nil {
		return "", internal(fmt.Errorf("get organisation %q: %w", org, err))
	}
	return org, nil
}

func archiveKey(sha string) string     { return "archives/" + sha + ".zip" }
func recordKey(org, sha string) string { return "orgs/" + org + "/" + sha + ".json" }
func bySHAKey(sha, org string) string  { return "by-sha/" + sha + "/" + org }

// uploadArtefact is POST /v1/artefacts: the body is the zip (at most
// UploadLimits.MaxArchiveBytes), ?kind= plugin, theme or core (default:
// detected), ?org= the organisation.
func (s *server) uploadArtefact(c *call) (response, error) {
	if s.cfg.Uploads == nil {
		return response{}, errNoUploads()
	}
	org, err := s.artefactOrg(c)
	if err != nil {
		return response{}, err
	}
	kind := artefact.Kind(c.r.URL.Query().Get("kind"))
	switch kind {
	case "", artefact.Plugin, artefact.Theme, artefact.Core:
	default:
		return response{}, badRequest("kind must be plugin, theme or core, got %q", kind)
	}
	lim := s.uploadLimits()
	ctx := c.r.Context()
	f, err := os.CreateTemp("", "aipress-upload-*.zip")
	if err != nil {
		return response{}, internal(err)
	}
	defer os.Remove(f.Name())
	defer f.Close()
	h := sha256.New()
	size, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(c.r.Body, lim.MaxArchiveBytes+1))
	if err != nil {
		return response{}, badRequest("read the archive: %v", err)
	}
	if size > lim.MaxArchiveBytes {
		return response{}, errorf(http.StatusRequestEntityTooLarge, CodeInvalidArgument,
			"the archive is larger than the limit of %d bytes", lim.MaxArchiveBytes)
	}
	if size == 0 {
		return response{}, badRequest("the body is empty: send the zip archive as the request body")
	}
	sha := hex.EncodeToString(h.Sum(nil))
	a, err := artefact.Inspect(f, size, kind, lim)
	if errors.Is(err, artefact.ErrRefused) {
		return response{}, errorf(http.StatusUnprocessableEntity, CodeInvalidArgument, "%s", strings.TrimPrefix(err.Error(), artefact.ErrRefused.Error()+": "))
	}
	if err != nil {
		return response{}, badRequest("%v", err)
	}
	c.target = a.Name + "@" + sha[:12]
	c.detail = fmt.Sprintf("%s %s %s (%d bytes)", a.Kind, a.Name, a.Version, size)
	rec, created, err := s.keepUpload(ctx, org, sha, f, size, a, c.who.actor())
	if err != nil {
		return response{}, internal(err)
	}
	if !created {
		// Uploading it again changes nothing.
		return response{status: http.StatusOK, body: rec, unchanged: true}, nil
	}
	return response{status: http.StatusCreated, body: rec}, nil
}

// keepUpload keeps the archive f (size bytes, SHA-256 sha, what
// artefact.Inspect found in it: a) as an upload of org, by whom: the
// archive once for every organisation, then org's marker and record.
// created is false when org had uploaded it already (rec is then the
// first upload's record).
func (s *server) keepUpload(ctx context.Context, org, sha string, f io.ReadSeeker, size int64, a *artefact.Artefact, by string) (rec *ArtefactUpload, created bool, err error) {
	b := s.cfg.Uploads
	if ok, err := b.Exists(ctx, archiveKey(sha)); err != nil {
		return nil, false, err
	} else if !ok {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return nil, false, err
		}
		if err := b.Upload(ctx, archiveKey(sha), f, &blob.WriterOptions{ContentType: "application/zip"}); err != nil {
			return nil, false, fmt.Errorf("store upload %s: %w", sha, err)
		}
	}
	if old, err := s.readUpload(ctx, org, sha); err == nil {
		return old, false, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, false, err
	}
	rec = &ArtefactUpload{SHA256: sha, Size: size, Kind: string(a.Kind), Name: a.Name, Version: a.Version,
		Files: a.Files, Bytes: a.Bytes, Org: org, UploadedAt: s.cfg.Clock().UTC(), UploadedBy: by}
	// The marker first: a crash between the two leaves a marker without
	// a record, which lists nothing and is written again by a retry.
	if err := b.WriteAll(ctx, bySHAKey(sha, org), nil, nil); err != nil {
		return nil, false, err
	}
	js, err := json.Marshal(rec)
	if err != nil {
		return nil, false, err
	}
	if err := b.WriteAll(ctx, recordKey(org, sha), js, &blob.WriterOptions{ContentType: "application/json"}); err != nil {
		return nil, false, err
	}
	return rec, true, nil
}

// readUpload reads org's record of sha (store.ErrNotFound when none).
func (s *server) readUpload(ctx context.Context, org, sha string) (*ArtefactUpload, error) {
	b, err := s.cfg.Uploads.ReadAll(ctx, recordKey(org, sha))
	if gcerrors.Code(err) == gcerrors.NotFound {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	var rec ArtefactUpload
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("upload record %s/%s: %w", org, sha, err)
	}
	return &rec, nil
}

// artefactUploaded reports whether org uploaded the archive sha (POST
// /v1/artefacts): a spec's upload source must name one of its
// organisation's uploads.
func (s *server) artefactUploaded(ctx context.Context, org, sha string) (bool, error) {
	if s.cfg.Uploads == nil || !sha256RE.MatchString(sha) || org == "" || strings.Contains(org, "/") {
		return false, nil
	}
	return s.cfg.Uploads.Exists(ctx, recordKey(org, sha))
}

// listArtefacts is GET /v1/artefacts: the organisation's uploads, by
// SHA-256, a page (limit, continue) at a time.
func (s *server) listArtefacts(c *call) (response, error) {
	if s.cfg.Uploads == nil {
		return response{}, errNoUploads()
	}
	org, err := s.artefactOrg(c)
	if err != nil {
		return response{}, err
	}
	limit, err := parseLimit(c)
	if err != nil {
		return response{}, err
	}
	var token []byte
	if v := c.r.URL.Query().Get("continue"); v != "" {
		if token, err = base64.RawURLEncoding.DecodeString(v); err != nil {
			return response{}, badRequest("invalid continue token %q", v)
		}
	} else {
		token = blob.FirstPageToken
	}
	ctx := c.r.Context()
	objs, next, err := s.cfg.Uploads.ListPage(ctx, token, limit, &blob.ListOptions{Prefix: "orgs/" + org + "/"})
	if err != nil {
		return response{}, internal(fmt.Errorf("list uploads of %s: %w", org, err))
	}
	out := ArtefactList{Items: []ArtefactUpload{}}
	for _, o := range objs {
		sha := strings.TrimSuffix(strings.TrimPrefix(o.Key, "orgs/"+org+"/"), ".json")
		rec, err := s.readUpload(ctx, org, sha)
		if errors.Is(err, store.ErrNotFound) {
			continue
		}
		if err != nil {
			return response{}, internal(err)
		}
		out.Items = append(out.Items, *rec)
	}
	if len(next) > 0 {
		out.Continue = base64.RawURLEncoding.EncodeToString(next)
	}
	return response{status: http.StatusOK, body: out}, nil
}

// agentArtefact is GET /v1/agent/artefacts/{sha256}: the archive, for a
// shard that hosts a site of an organisation that uploaded it.
func (s *server) agentArtefact(c *call) (response, error) {
	if s.cfg.Uploads == nil {
		return response{}, errNoUploads()
	}
	sha := c.r.PathValue("sha256")
	c.target = sha
	notFound := errorf(http.StatusNotFound, CodeNotFound, "no uploaded artefact %q for a site of shard %q", sha, c.who.token.Subject)
	if !sha256RE.MatchString(sha) {
		return response{}, notFound
	}
	ctx := c.r.Context()
	var orgs []string
	it := s.cfg.Uploads.List(&blob.ListOptions{Prefix: "by-sha/" + sha + "/"})
	for {
		o, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return response{}, internal(err)
		}
		orgs = append(orgs, strings.TrimPrefix(o.Key, "by-sha/"+sha+"/"))
	}
	if len(orgs) == 0 {
		return response{}, notFound
	}
	// A shard's token is trusted for its own sites: it gets an upload
	// that one of them needs (of an organisation that uploaded it).
	ok, err := s.shardNeedsUpload(ctx, c.who.token.Subject, orgs, sha)
	if err != nil {
		return response{}, internal(err)
	}
	if !ok {
		return response{}, notFound
	}
	r, err := s.cfg.Uploads.NewReader(ctx, archiveKey(sha), nil)
	if gcerrors.Code(err) == gcerrors.NotFound {
		return response{}, notFound
	}
	if err != nil {
		return response{}, internal(err)
	}
	return response{contentType: "application/zip", stream: func(w http.ResponseWriter) error {
		defer r.Close()
		_, err := io.Copy(w, r)
		return err
	}}, nil
}

// shardNeedsUpload reports whether shard holds a site of one of orgs that
// needs the upload sha: its spec names sha as an upload source, or a staged
// update of it in progress (Pending or Running) does.
func (s *server) shardNeedsUpload(ctx context.Context, shard string, orgs []string, sha string) (bool, error) {
	opts := store.ListOptions{Shard: shard, Orgs: orgs, Limit: store.MaxLimit}
	for {
		page, err := s.cfg.Store.ListSites(ctx, opts)
		if err != nil {
			return false, fmt.Errorf("list sites of shard %s: %w", shard, err)
		}
		uids := map[string]string{}
		for _, st := range page.Items {
			if namesUpload(sha, st.Spec.Plugins, st.Spec.Themes) {
				return true, nil
			}
			uids[st.Metadata.Name] = st.Metadata.UID
		}
		if len(uids) > 0 {
			jopts := store.JobListOptions{Sites: slices.Sorted(maps.Keys(uids)), Kind: store.JobUpdate,
				Phases: []store.JobPhase{store.JobPending, store.JobRunning}, Limit: store.MaxLimit}
			for {
				jobs, err := s.cfg.Store.ListJobs(ctx, jopts)
				if err != nil {
					return false, fmt.Errorf("list update jobs: %w", err)
				}
				for _, j := range jobs.Items {
					var p store.UpdateParams
					if j.SiteUID == uids[j.Site] && json.Unmarshal(j.Params, &p) == nil && namesUpload(sha, p.Plugins, p.Themes) {
						return true, nil
					}
				}
				if jobs.Continue == "" {
					break
				}
				jopts.Continue = jobs.Continue
			}
		}
		if page.Continue == "" {
			return false, nil
		}
		opts.Continue = page.Continue
	}
}

// namesUpload reports whether an extension of lists has the upload source
// sha.
func namesUpload(sha string, lists ...[]site.Extension) bool {
	for _, l := range lists {
		for _, e := range l {
			if e.Source.SourceType() == site.SourceUpload && e.Source.SHA256 == sha {
				return true
			}
		}
	}
	return false
}

// OpenUpload opens the uploaded archive sha in b (a control plane's
// Config.Uploads): how shards running in the control plane's process
// read uploads. An archive that is not there gives an error wrapping
// artefact.ErrNotFound.
func OpenUpload(ctx context.Context, b *blob.Bucket, sha string) (io.ReadCloser, error) {
	if !sha256RE.MatchString(sha) {
		return nil, fmt.Errorf("upload %q: %w", sha, artefact.ErrNotFound)
	}
	r, err := b.NewReader(ctx, archiveKey(sha), nil)
	if gcerrors.Code(err) == gcerrors.NotFound {
		return nil, fmt.Errorf("upload %s: %w", sha, artefact.ErrNotFound)
	}
	if err != nil {
		return nil, err
	}
	return r, nil
}
