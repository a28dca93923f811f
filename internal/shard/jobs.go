package shard

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

// progressEvery is how often a running job reports its progress.
const progressEvery = time.Second

// maxJobAttempts: a job claimed this many times without finishing (the
// shard died each time) fails instead of running again.
const maxJobAttempts = 3

// WakeJobs asks RunJobs to list the shard's jobs now.
func (s *Shard) WakeJobs() {
	select {
	case s.jobWake <- struct{}{}:
	default:
	}
}

// RunJobs runs the shard's jobs (store.Job with Shard = this shard) until
// ctx ends: backups, restores, verify-restores, secret rotations and code
// jobs (code.go). It waits for the shard
// to be Ready (Run's first pass), first removes what interrupted
// verifications left, then lists jobs every Config.JobPoll (or on WakeJobs)
// and runs at most Config.JobConcurrency at once, each in its own
// goroutine, so convergence never waits for a job (a site being restored is
// skipped by convergence until its restore ends).
//
// A job is claimed by writing Phase Running (and Attempts+1) through
// jobs.UpdateJob; a Running job that this process is not running was
// interrupted (the shard died) and is run again from scratch — backups and
// restores are safe to redo (an unfinished backup leaves only unreferenced
// packs, an unfinished restore is rolled back or forward by its marker). A
// job interrupted maxJobAttempts times fails. Progress (bytes) is reported
// every second, the result and the phase at the end.
//
// src is where the shard reads its sites (the same Sites as Run's).
func (s *Shard) RunJobs(ctx context.Context, src Sites, jobs Jobs) error {
	select {
	case <-s.ready:
	case <-ctx.Done():
		return nil
	}
	if err := s.cleanScratch(ctx); err != nil {
		s.log.Warn("remove leftover verify scratch sites", "err", err)
	}
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		running = map[string]bool{} // jobs this process runs
		ended   = map[string]bool{} // jobs this process finished (a list may predate it)
		sem     = make(chan struct{}, s.cfg.JobConcurrency)
	)
	defer wg.Wait()
	t := time.NewTicker(s.cfg.JobPoll)
	defer t.Stop()
	for {
		list, err := jobs.ListJobs(ctx, s.cfg.Name)
		if err != nil && ctx.Err() == nil {
			s.log.Warn("list jobs", "err", err)
		}
		listed := map[string]bool{}
		for _, j := range list {
			listed[j.ID] = true
			if j.Phase != store.JobPending && j.Phase != store.JobRunning {
				continue
			}
			mu.Lock()
			skip := running[j.ID] || ended[j.ID]
			mu.Unlock()
			if skip {
				continue
			}
			select {
			case sem <- struct{}{}:
			default:
				continue // full: the next listing takes it
			}
			claimed, err := s.claim(ctx, jobs, j)
			if err != nil || claimed == nil {
				<-sem
				if err != nil && ctx.Err() == nil {
					s.log.Warn("claim job", "job", j.ID, "err", err)
				}
				continue
			}
			mu.Lock()
			running[j.ID] = true
			mu.Unlock()
			wg.Add(1)
			go func(j store.Job) {
				defer wg.Done()
				defer func() { <-sem }()
				s.runJob(ctx, src, jobs, &j)
				mu.Lock()
				delete(running, j.ID)
				if ctx.Err() == nil {
					ended[j.ID] = true
				}
				mu.Unlock()
				s.WakeJobs()
			}(*claimed)
		}
		mu.Lock()
		for id := range ended {
			if !listed[id] {
				delete(ended, id) // the listing caught up
			}
		}
		mu.Unlock()
		select {
		case <-ctx.Done():
			return nil
		case <-s.jobWake:
		case <-t.C:
		}
	}
}

// claim marks j Running for this shard; nil when it is no longer to run.
// A job interrupted too often is failed instead.
func (s *Shard) claim(ctx context.Context, jobs Jobs, j store.Job) (*store.Job, error) {
	var out *store.Job
	now := s.cfg.Clock().UTC()
	err := jobs.UpdateJob(ctx, j.ID, func(cur *store.Job) {
		out = nil
		if cur.Shard != s.cfg.Name || (cur.Phase != store.JobPending && cur.Phase != store.JobRunning) {
			return
		}
		if cur.Phase == store.JobRunning && cur.Attempts >= maxJobAttempts {
			cur.Phase = store.JobFailed
			cur.Error = fmt.Sprintf("interrupted %d times (the shard stopped while running it); not retried", cur.Attempts)
			cur.FinishedAt = &now
			return
		}
		if cur.Phase == store.JobRunning {
			s.log.Warn("running an interrupted job again", "job", cur.ID, "kind", cur.Kind, "site", cur.Site, "attempts", cur.Attempts)
		}
		cur.Phase = store.JobRunning
		cur.Attempts++
		cur.StartedAt = &now
		cur.FinishedAt = nil
		cur.Error = ""
		cur.Result = nil
		cur.Progress = store.JobProgress{Message: "started"}
		c := *cur
		out = &c
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// runJob runs a claimed job and reports its end.
func (s *Shard) runJob(ctx context.Context, src Sites, jobs Jobs, j *store.Job) {
	log := s.log.With("job", j.ID, "kind", j.Kind, "site", j.Site)
	log.Info("job started", "attempt", j.Attempts)
	var last atomic.Pointer[store.JobProgress]
	progress := func(msg string) func(done, total int64) {
		return func(done, total int64) {
			p := store.JobProgress{Done: done, Total: total, Message: msg}
			if old := last.Load(); old != nil && *old == p {
				return
			}
			last.Store(&p)
			if err := jobs.UpdateJob(ctx, j.ID, func(cur *store.Job) {
				if cur.Phase == store.JobRunning {
					cur.Progress = p
				}
			}); err != nil && ctx.Err() == nil {
				log.Warn("report job progress", "err", err)
			}
		}
	}
	result, err := s.execJob(ctx, src, j, progress)
	if ctx.Err() != nil {
		// Shutting down: the job stays Running and is run again by the
		// next start.
		log.Info("job interrupted by shutdown")
		return
	}
	now := s.cfg.Clock().UTC()
	var raw json.RawMessage
	if result != nil {
		raw, _ = json.Marshal(result)
	}
	var public string
	if err != nil {
		public = s.publicMessage(log, "the "+string(j.Kind)+" job", err)
	}
	uerr := jobs.UpdateJob(ctx, j.ID, func(cur *store.Job) {
		cur.FinishedAt = &now
		cur.Result = raw
		if err != nil {
			cur.Phase = store.JobFailed
			cur.Error = public
			cur.Progress.Message = "failed"
			return
		}
		cur.Phase = store.JobSucceeded
		cur.Error = ""
		if cur.Progress.Total > 0 {
			cur.Progress.Done = cur.Progress.Total
		}
		cur.Progress.Message = "done"
	})
	if uerr != nil {
		log.Warn("report job result", "err", uerr)
	}
	if err == nil {
		log.Info("job succeeded") // a failure was logged by publicMessage
	}
}

// execJob does the work of j.
func (s *Shard) execJob(ctx context.Context, src Sites, j *store.Job, progress func(string) func(done, total int64)) (any, error) {
	switch j.Kind {
	case store.JobBackup:
		var p store.BackupParams
		if err := unmarshalParams(j.Params, &p); err != nil {
			return nil, err
		}
		st, err := s.jobSite(ctx, src, j)
		if err != nil {
			return nil, err
		}
		return s.BackupSite(ctx, st, p.Reason, progress("backing up"))
	case store.JobRestore:
		var p store.RestoreParams
		if err := unmarshalParams(j.Params, &p); err != nil {
			return nil, err
		}
		st, err := s.jobSite(ctx, src, j)
		if err != nil {
			return nil, err
		}
		if !p.InPlace {
			return nil, s.PopulateSite(ctx, st, progress("restoring"))
		}
		if p.Snapshot == "" {
			return nil, publicf("restore job without a snapshot")
		}
		if p.At != nil {
			return nil, s.RestoreInPlaceAt(ctx, src, st, p.Snapshot, p.At, progress("restoring"), progress("replaying the database log"))
		}
		return nil, s.RestoreInPlace(ctx, src, st, p.Snapshot, progress("restoring"))
	case store.JobRotateSecret:
		var p store.RotateParams
		if err := unmarshalParams(j.Params, &p); err != nil {
			return nil, err
		}
		st, err := s.jobSite(ctx, src, j)
		if err != nil {
			return nil, err
		}
		return s.RotateSecret(ctx, st, p.Kind, progress("rotating "+p.Kind))
	case store.JobCode:
		var p store.CodeParams
		if err := unmarshalParams(j.Params, &p); err != nil {
			return nil, err
		}
		get := func(ctx context.Context) (*site.Site, error) { return s.jobSite(ctx, src, j) }
		res, err := s.RunCode(ctx, src, get, j.ID, p, func(msg string) { progress(msg)(0, 0) })
		if res == nil {
			return nil, err // nil *CodeResult would marshal as "null"
		}
		return res, err
	case store.JobExport:
		st, err := s.jobSite(ctx, src, j)
		if err != nil {
			return nil, err
		}
		var p store.ExportParams
		if err := unmarshalParams(j.Params, &p); err != nil {
			return nil, err
		}
		if p.Format == store.ExportWXR {
			return s.WXRExportJob(ctx, st, j.ID, progress("exporting WXR"))
		}
		return s.ExportJob(ctx, st, j.ID, progress("exporting"))
	case store.JobWXRImport:
		var p store.WXRImportParams
		if err := unmarshalParams(j.Params, &p); err != nil {
			return nil, err
		}
		if rest, ok := strings.CutPrefix(p.Key, store.WXRImportPrefix(j.SiteUID)); !ok || rest == "" || strings.Contains(rest, "/") {
			return nil, publicf("WXR import job without its file")
		}
		st, err := s.jobSite(ctx, src, j)
		if err != nil {
			return nil, err
		}
		rep, err := s.WXRImportJob(ctx, st, p, progress("importing WXR"))
		if rep == nil {
			return nil, err
		}
		return rep, err
	case store.JobResync:
		var p store.ResyncParams
		if err := unmarshalParams(j.Params, &p); err != nil {
			return nil, err
		}
		if rest, ok := strings.CutPrefix(p.Key, store.ResyncPrefix(j.SiteUID)); !ok || rest == "" || strings.Contains(rest, "/") {
			return nil, publicf("re-sync job without its archive")
		}
		st, err := s.jobSite(ctx, src, j)
		if err != nil {
			return nil, err
		}
		rep, err := s.ResyncJob(ctx, st, p, func(step string, done, total int64) { progress(step)(done, total) })
		if rep == nil {
			return nil, err
		}
		return rep, err
	case store.JobVerifyRestore:
		var p store.RestoreParams
		if err := unmarshalParams(j.Params, &p); err != nil {
			return nil, err
		}
		if p.Snapshot == "" {
			return nil, publicf("verify-restore job without a snapshot")
		}
		res, err := s.VerifyRestore(ctx, p.Snapshot, progress("verifying"))
		if err != nil {
			return nil, err
		}
		if !res.OK {
			var why []string
			if res.HTTPStatus != 200 {
				why = append(why, fmt.Sprintf("home page answered %d", res.HTTPStatus))
			}
			if len(res.Mismatched) > 0 {
				why = append(why, "table checksums differ: "+strings.Join(res.Mismatched, ", "))
			}
			return res, publicf("verify-restore of %s: %s", p.Snapshot, strings.Join(why, "; "))
		}
		return res, nil
	}
	return nil, publicf("unknown job kind %q", j.Kind)
}

func unmarshalParams(raw json.RawMessage, v any) error {
	if len(raw) == 0 {
		return nil
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("job params: %w", err)
	}
	return nil
}

// jobSite finds the site a job names among the shard's sites.
func (s *Shard) jobSite(ctx context.Context, src Sites, j *store.Job) (*site.Site, error) {
	sites, err := src.ListSites(ctx, s.cfg.Name)
	if err != nil {
		return nil, err
	}
	for i := range sites {
		st := &sites[i]
		if st.Metadata.Name == j.Site && (j.SiteUID == "" || st.Metadata.UID == j.SiteUID) {
			if st.Metadata.DeletionRequested != nil {
				return nil, publicf("site %s is being deleted", j.Site)
			}
			return st, nil
		}
	}
	return nil, publicf("site %s is not on shard %s", j.Site, s.cfg.Name)
}
