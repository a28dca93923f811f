package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aipress/aipress/internal/store"
)

// Jobs: long operations (backups, restores, verifications, prunes,
// recoveries) with progress. Operators read them (GET /v1/jobs); a shard
// agent long-polls its own (GET /v1/agent/jobs), claims and reports them
// (PUT /v1/agent/jobs/{id}); jobs without a shard run in the control
// plane's leader.

// JobReport is the body of PUT /v1/agent/jobs/{id}: the job as the shard
// sees it after its step. The control plane takes Phase, Attempts,
// Progress, Result and Error; it sets StartedAt on a claim (Pending to
// Running, or a Running job claimed again with Attempts one higher) and
// FinishedAt when the job ends, from its own clock. ResourceVersion, when
// not zero, must be the job's current one (else 409: read it again).
type JobReport struct {
	ResourceVersion int64             `json:"resource_version,omitempty"`
	Phase           store.JobPhase    `json:"phase"`
	Attempts        int               `json:"attempts"`
	Progress        store.JobProgress `json:"progress"`
	Result          json.RawMessage   `json:"result,omitempty"`
	Error           string            `json:"error,omitempty"`
}

// AgentJobsResponse is the body of GET /v1/agent/jobs: the shard's Pending
// and Running jobs, and the revision to pass as since to wait for changes.
type AgentJobsResponse struct {
	Items    []store.Job `json:"items"`
	Revision int64       `json:"revision"`
}

// maxJobError bounds a reported error message.
const maxJobError = 4000

func jobNotFound(id string) HTTPError {
	return errorf(http.StatusNotFound, CodeNotFound, "job %q not found", id)
}

// newJobID returns a new job ID: "job-" and 16 hex digits.
func newJobID() (string, error) {
	h, err := randomHex(8)
	if err != nil {
		return "", err
	}
	return "job-" + h, nil
}

// createJob stores a new Pending job of kind for site (may be nil) on
// shard (empty: the control plane) with params.
func (s *server) createJob(ctx context.Context, kind store.JobKind, siteName, siteUID, shard string, params any) (*store.Job, error) {
	id, err := newJobID()
	if err != nil {
		return nil, internal(err)
	}
	raw, err := json.Marshal(params)
	if err != nil {
		return nil, internal(fmt.Errorf("encode job params: %w", err))
	}
	j := &store.Job{ID: id, Kind: kind, Site: siteName, SiteUID: siteUID, Shard: shard, Params: raw,
		Phase: store.JobPending, CreatedAt: s.cfg.Clock().UTC()}
	if err := s.cfg.Store.CreateJob(ctx, j); err != nil {
		return nil, internal(fmt.Errorf("create job: %w", err))
	}
	return j, nil
}

// activeJob returns a Pending or Running job of kind (of site, on shard,
// when not empty), or nil.
func (s *server) activeJob(ctx context.Context, kind store.JobKind, siteName, shard string) (*store.Job, error) {
	l, err := s.cfg.Store.ListJobs(ctx, store.JobListOptions{Site: siteName, Shard: shard, Kind: kind,
		Phases: []store.JobPhase{store.JobPending, store.JobRunning}, Limit: 1})
	if err != nil {
		return nil, internal(fmt.Errorf("list jobs: %w", err))
	}
	if len(l.Items) == 0 {
		return nil, nil
	}
	return &l.Items[0], nil
}

// parseLimit reads the limit query parameter (default DefaultListLimit).
func parseLimit(c *call) (int, error) {
	v := c.r.URL.Query().Get("limit")
	if v == "" {
		return DefaultListLimit, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > MaxListLimit {
		return 0, badRequest("limit must be an integer between 1 and %d, got %q", MaxListLimit, v)
	}
	return n, nil
}

var jobPhases = []store.JobPhase{store.JobPending, store.JobRunning, store.JobSucceeded, store.JobFailed}

func (s *server) listJobs(c *call) (response, error) {
	q := c.r.URL.Query()
	limit, err := parseLimit(c)
	if err != nil {
		return response{}, err
	}
	opts := store.JobListOptions{Site: q.Get("site"), Shard: q.Get("shard"), Kind: store.JobKind(q.Get("kind")),
		Limit: limit, Continue: q.Get("continue")}
	if v := q.Get("phase"); v != "" {
		for _, p := range strings.Split(v, ",") {
			ph, ok := parsePhase(p)
			if !ok {
				return response{}, badRequest("unknown phase %q; phases are Pending, Running, Succeeded, Failed", p)
			}
			opts.Phases = append(opts.Phases, ph)
		}
	}
	uid, err := s.siteFilter(c, opts.Site)
	if err != nil {
		return response{}, err
	}
	l, err := s.cfg.Store.ListJobs(c.r.Context(), opts)
	if errors.Is(err, store.ErrInvalid) {
		return response{}, badRequest("invalid continue token %q", opts.Continue)
	}
	if err != nil {
		return response{}, internal(fmt.Errorf("list jobs: %w", err))
	}
	if uid != "" {
		l.Items = slices.DeleteFunc(l.Items, func(j store.Job) bool { return j.SiteUID != uid })
	}
	return response{status: http.StatusOK, body: l}, nil
}

// parsePhase accepts a phase in any case.
func parsePhase(p string) (store.JobPhase, bool) {
	for _, ph := range jobPhases {
		if strings.EqualFold(string(ph), strings.TrimSpace(p)) {
			return ph, true
		}
	}
	return "", false
}

func (s *server) getJob(c *call) (response, error) {
	id := c.r.PathValue("id")
	c.target = id
	j, err := s.cfg.Store.GetJob(c.r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		return response{}, jobNotFound(id)
	}
	if err != nil {
		return response{}, internal(fmt.Errorf("get job %q: %w", id, err))
	}
	if err := s.allowSiteUID(c, j.Site, j.SiteUID, jobNotFound(id)); err != nil {
		return response{}, err
	}
	return response{status: http.StatusOK, body: j}, nil
}

// currentRevision reads the store's revision (a Changes call past any
// revision: an index lookup).
func (s *server) currentRevision(ctx context.Context) (int64, error) {
	cl, err := s.cfg.Store.Changes(ctx, math.MaxInt64, store.ChangeOptions{Limit: 1})
	if err != nil {
		return 0, err
	}
	return cl.Revision, nil
}

// shardJobs lists shard's Pending and Running jobs, oldest first (the order
// to run them in).
func (s *server) shardJobs(ctx context.Context, shard string) ([]store.Job, error) {
	opts := store.JobListOptions{Shard: shard, Phases: []store.JobPhase{store.JobPending, store.JobRunning}, Limit: store.MaxLimit}
	var out []store.Job
	for {
		l, err := s.cfg.Store.ListJobs(ctx, opts)
		if err != nil {
			return nil, err
		}
		out = append(out, l.Items...)
		if l.Continue == "" {
			break
		}
		opts.Continue = l.Continue
	}
	for i, j := 0, len(out)-1; i < j; i, j = i+1, j-1 {
		out[i], out[j] = out[j], out[i]
	}
	if out == nil {
		out = []store.Job{}
	}
	return out, nil
}

// agentJobs answers the shard's Pending and Running jobs. With since it is
// a long poll: it answers as soon as one of them was written after since,
// or with the same list when wait runs out.
func (s *server) agentJobs(c *call) (response, error) {
	q, err := parseWatchQuery(c.r)
	if err != nil {
		return response{}, err
	}
	c.longPoll = !q.list && q.wait > 0
	ctx := c.r.Context()
	shard := c.token.Subject
	waitCtx, cancel := context.WithTimeout(ctx, q.wait)
	defer cancel()
	for {
		rev, err := s.currentRevision(ctx)
		if err != nil {
			return response{}, internal(fmt.Errorf("read revision: %w", err))
		}
		jobs, err := s.shardJobs(ctx, shard)
		if err != nil {
			return response{}, internal(fmt.Errorf("list jobs of shard %q: %w", shard, err))
		}
		changed := q.list
		for _, j := range jobs {
			changed = changed || j.ResourceVersion > q.since
			rev = max(rev, j.ResourceVersion) // written after rev was read
		}
		if changed {
			return response{status: http.StatusOK, body: AgentJobsResponse{Items: jobs, Revision: rev}}, nil
		}
		// Wake only for this shard's jobs (the hub learns which shards'
		// active jobs moved), not for every write to the store.
		if _, err := s.cfg.Hub.WaitKey(waitCtx, rev, JobsKey(shard)); err != nil {
			return response{status: http.StatusOK, body: AgentJobsResponse{Items: jobs, Revision: rev}}, nil
		}
	}
}

// agentJob answers one of the shard's jobs (another shard's is not found).
func (s *server) agentJob(c *call) (response, error) {
	id := c.r.PathValue("id")
	c.target = id
	j, err := s.cfg.Store.GetJob(c.r.Context(), id)
	if errors.Is(err, store.ErrNotFound) || (err == nil && j.Shard != c.token.Subject) {
		return response{}, jobNotFound(id)
	}
	if err != nil {
		return response{}, internal(fmt.Errorf("get job %q: %w", id, err))
	}
	if err := s.allowSiteUID(c, j.Site, j.SiteUID, jobNotFound(id)); err != nil {
		return response{}, err
	}
	return response{status: http.StatusOK, body: j}, nil
}

func finished(p store.JobPhase) bool { return p == store.JobSucceeded || p == store.JobFailed }

// applyJobReport checks and applies a shard's report to cur at now.
func applyJobReport(cur *store.Job, r *JobReport, now time.Time) error {
	if r.ResourceVersion != 0 && r.ResourceVersion != cur.ResourceVersion {
		return conflict("job %q changed (resource version %d, not %d); read it again", cur.ID, cur.ResourceVersion, r.ResourceVersion)
	}
	if _, ok := parsePhase(string(r.Phase)); !ok || string(r.Phase) == "" {
		return badRequest("phase %q: want Pending, Running, Succeeded or Failed", r.Phase)
	}
	if len(r.Error) > maxJobError {
		r.Error = r.Error[:maxJobError]
	}
	from, to := cur.Phase, r.Phase
	reclaim := from == store.JobRunning && to == store.JobRunning && r.Attempts == cur.Attempts+1
	switch {
	case finished(from):
		// A finished job stays finished; a repeated final report is a
		// no-op.
		if to != from {
			return conflict("job %q already %s", cur.ID, from)
		}
		return nil
	case from == store.JobPending && to == store.JobSucceeded:
		return conflict("job %q was not claimed (report Running first)", cur.ID)
	case from == store.JobRunning && to == store.JobPending:
		return conflict("job %q is Running; it cannot go back to Pending", cur.ID)
	case r.Attempts < cur.Attempts || r.Attempts > cur.Attempts+1:
		return conflict("job %q: attempts %d, the job has %d", cur.ID, r.Attempts, cur.Attempts)
	}
	if from == store.JobPending && to == store.JobRunning || reclaim {
		cur.Attempts++
		cur.StartedAt = &now
		cur.FinishedAt = nil
	}
	if finished(to) {
		cur.FinishedAt = &now
	}
	cur.Phase = to
	cur.Progress = r.Progress
	cur.Result = r.Result
	cur.Error = r.Error
	return nil
}

func (s *server) agentReportJob(c *call) (response, error) {
	id := c.r.PathValue("id")
	c.target = id
	var req JobReport
	if err := decodeJSON(c.r, &req); err != nil {
		return response{}, err
	}
	shard := c.token.Subject
	now := s.cfg.Clock().UTC()
	var before int64
	j, err := s.cfg.Store.UpdateJob(c.r.Context(), id, func(cur *store.Job) error {
		if cur.Shard != shard {
			return jobNotFound(id)
		}
		before = cur.ResourceVersion
		return applyJobReport(cur, &req, now)
	})
	var he HTTPError
	switch {
	case errors.As(err, &he):
		return response{}, he
	case errors.Is(err, store.ErrNotFound):
		return response{}, jobNotFound(id)
	case err != nil:
		return response{}, internal(fmt.Errorf("update job %q: %w", id, err))
	}
	return response{status: http.StatusOK, body: j, unchanged: j.ResourceVersion == before}, nil
}
