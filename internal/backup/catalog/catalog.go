// Package catalog is the control plane's index of snapshots: the succeeded
// backup jobs in the store. Each one names its snapshot ("<repository>:<id>",
// the repository being the shard that ran it) with its sizes, so listing a
// site's snapshots, finding its latest one and judging its coverage are
// indexed store queries (jobs by site, kind and phase), never a scan of the
// repositories, whose manifests are only read to show or restore one
// snapshot. When retention forgets a snapshot the control plane marks its
// job (BackupResult.ForgottenAt), and the catalog leaves it out.
package catalog

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/aipress/aipress/internal/store"
)

// Entry is one snapshot as the catalog knows it.
type Entry struct {
	Ref         string    `json:"ref"`
	Repo        string    `json:"repo"`
	ID          string    `json:"id"`
	Site        string    `json:"site"`
	SiteUID     string    `json:"site_uid,omitempty"`
	Time        time.Time `json:"time"`
	TotalBytes  int64     `json:"total_bytes"`
	NewBytes    int64     `json:"new_bytes"`
	StoredBytes int64     `json:"stored_bytes"`
	Reason      string    `json:"reason,omitempty"`
	Job         string    `json:"job"`
	// Forgotten is set when retention removed the snapshot.
	Forgotten *time.Time `json:"forgotten,omitempty"`
}

// ParseRef splits a snapshot reference "<repository>:<id>".
func ParseRef(ref string) (repo, id string, err error) {
	repo, id, ok := strings.Cut(ref, ":")
	if !ok || repo == "" || id == "" || strings.ContainsAny(id, ":/") {
		return "", "", fmt.Errorf("snapshot reference %q is not <repository>:<snapshot id>", ref)
	}
	return repo, id, nil
}

// FromJob returns the catalog entry of a succeeded backup job; ok is false
// for any other job or one whose result names no snapshot.
func FromJob(j *store.Job) (e Entry, ok bool) {
	if j.Kind != store.JobBackup || j.Phase != store.JobSucceeded || len(j.Result) == 0 {
		return Entry{}, false
	}
	var res store.BackupResult
	if json.Unmarshal(j.Result, &res) != nil || res.Snapshot == "" {
		return Entry{}, false
	}
	ref := res.Snapshot
	if !strings.Contains(ref, ":") { // a bare id: the job's shard's repository
		ref = j.Shard + ":" + ref
	}
	repo, id, err := ParseRef(ref)
	if err != nil {
		return Entry{}, false
	}
	var params store.BackupParams
	_ = json.Unmarshal(j.Params, &params)
	e = Entry{
		Ref: ref, Repo: repo, ID: id, Site: j.Site, SiteUID: j.SiteUID,
		TotalBytes: res.TotalBytes, NewBytes: res.NewBytes, StoredBytes: res.StoredBytes,
		Reason: params.Reason, Job: j.ID, Forgotten: res.ForgottenAt,
	}
	switch {
	case !res.Time.IsZero():
		e.Time = res.Time
	case j.StartedAt != nil:
		e.Time = *j.StartedAt
	case j.FinishedAt != nil:
		e.Time = *j.FinishedAt
	default:
		e.Time = j.CreatedAt
	}
	return e, true
}

// succeeded selects the succeeded backup jobs (of site, if not empty).
func succeeded(site string) store.JobListOptions {
	return store.JobListOptions{Site: site, Kind: store.JobBackup, Phases: []store.JobPhase{store.JobSucceeded}}
}

// Page is one page of the catalog.
type Page struct {
	Items    []Entry `json:"items"`
	Continue string  `json:"continue,omitempty"`
}

// List returns one page of snapshots (of site, if not empty), newest
// first, without forgotten ones: a page may hold fewer than limit entries
// (even none) and still have a continue token.
func List(ctx context.Context, st store.Store, site string, limit int, cont string) (*Page, error) {
	opts := succeeded(site)
	opts.Limit, opts.Continue = limit, cont
	jobs, err := st.ListJobs(ctx, opts)
	if err != nil {
		return nil, err
	}
	p := &Page{Items: []Entry{}, Continue: jobs.Continue}
	for i := range jobs.Items {
		if e, ok := FromJob(&jobs.Items[i]); ok && e.Forgotten == nil {
			p.Items = append(p.Items, e)
		}
	}
	return p, nil
}

// All returns every snapshot of site (forgotten ones too when
// withForgotten), newest first.
func All(ctx context.Context, st store.Store, site string, withForgotten bool) ([]Entry, error) {
	opts := succeeded(site)
	opts.Limit = store.MaxLimit
	var out []Entry
	for {
		jobs, err := st.ListJobs(ctx, opts)
		if err != nil {
			return nil, err
		}
		for i := range jobs.Items {
			if e, ok := FromJob(&jobs.Items[i]); ok && (withForgotten || e.Forgotten == nil) {
				out = append(out, e)
			}
		}
		if jobs.Continue == "" {
			return out, nil
		}
		opts.Continue = jobs.Continue
	}
}

// Latest returns the newest snapshot of site that is not forgotten, of the
// site with that UID when uid is not empty; nil when there is none.
func Latest(ctx context.Context, st store.Store, site, uid string) (*Entry, error) {
	opts := succeeded(site)
	opts.Limit = 20
	for {
		jobs, err := st.ListJobs(ctx, opts)
		if err != nil {
			return nil, err
		}
		for i := range jobs.Items {
			e, ok := FromJob(&jobs.Items[i])
			if ok && e.Forgotten == nil && (uid == "" || e.SiteUID == uid) {
				return &e, nil
			}
		}
		if jobs.Continue == "" {
			return nil, nil
		}
		opts.Continue = jobs.Continue
		opts.Limit = store.MaxLimit
	}
}

// Find returns the job whose snapshot ref names, looking among site's
// backup jobs (all of them when site is empty); store.ErrNotFound when
// none does.
func Find(ctx context.Context, st store.Store, site, ref string) (*store.Job, error) {
	opts := succeeded(site)
	opts.Limit = store.MaxLimit
	for {
		jobs, err := st.ListJobs(ctx, opts)
		if err != nil {
			return nil, err
		}
		for i := range jobs.Items {
			if e, ok := FromJob(&jobs.Items[i]); ok && e.Ref == ref {
				return &jobs.Items[i], nil
			}
		}
		if jobs.Continue == "" {
			return nil, fmt.Errorf("snapshot %s: %w", ref, store.ErrNotFound)
		}
		opts.Continue = jobs.Continue
	}
}

// Forget marks the job of a snapshot as forgotten at now (a no-op write
// when it already is).
func Forget(ctx context.Context, st store.Store, jobID string, now time.Time) error {
	_, err := st.UpdateJob(ctx, jobID, func(j *store.Job) error {
		var res store.BackupResult
		if err := json.Unmarshal(j.Result, &res); err != nil {
			return fmt.Errorf("job %s: result: %w", jobID, err)
		}
		if res.ForgottenAt != nil {
			return nil
		}
		res.ForgottenAt = &now
		b, err := json.Marshal(res)
		if err != nil {
			return err
		}
		j.Result = b
		return nil
	})
	return err
}
