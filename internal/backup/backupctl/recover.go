package backupctl

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/aipress/aipress/internal/ctljobs"
	"time"

	"github.com/aipress/aipress/internal/backup/catalog"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

// Disaster recovery of a lost shard (a recover job): first the switch —
// every site whose Status.Shard is the lost shard and that has a snapshot
// gets Status.Shard = the target, phase Pending and Spec.Source = its
// latest snapshot, so the target shard builds it from the snapshot (it
// never contacts the lost shard) and the edge routes it there once Ready;
// the lost shard, should it come back, sees the tombstones and removes
// its copies. Then trackRecoveries follows the sites until each is Ready
// at its new generation on the target, and ends the job with the total
// time.

// Recover job progress messages.
const (
	recoverSwitching  = "switching sites to the new shard"
	recoverRebuilding = "rebuilding sites from their snapshots"
)

func decodeRecover(j *store.Job) (store.RecoverParams, store.RecoverResult) {
	var p store.RecoverParams
	var r store.RecoverResult
	_ = json.Unmarshal(j.Params, &p)
	if len(j.Result) > 0 {
		_ = json.Unmarshal(j.Result, &r)
	}
	return p, r
}

func (c *Controller) saveRecover(ctx context.Context, id string, res store.RecoverResult, p store.JobProgress) error {
	raw, err := json.Marshal(res)
	if err != nil {
		return err
	}
	_, err = c.cfg.Store.UpdateJob(ctx, id, func(j *store.Job) error {
		j.Result, j.Progress = raw, p
		return nil
	})
	c.cfg.Notify()
	return err
}

// snapshotTime is the time of a snapshot: its manifest's, when the
// repository can be read, else the catalog's.
func (c *Controller) snapshotTime(ctx context.Context, e *catalog.Entry) time.Time {
	if c.cfg.Repos != nil {
		if r, err := c.cfg.Repos.Open(ctx, e.Repo, false); err == nil {
			if snap, err := r.LoadSnapshot(ctx, e.ID); err == nil {
				return snap.Time
			}
		}
	}
	return e.Time
}

// recoverSwitch points the lost shard's sites at the target (idempotent: a
// site already switched is not on the lost shard any more, and one already
// in the result is skipped).
func (c *Controller) recoverSwitch(ctx context.Context, j *store.Job) error {
	p, res := decodeRecover(j)
	if p.From == "" || p.To == "" {
		return fmt.Errorf("recover job without from and to")
	}
	done := map[string]bool{}
	for _, s := range res.Sites {
		done[s.Site] = true
	}
	sites, err := allSites(ctx, c.cfg.Store)
	if err != nil {
		return err
	}
	for i := range sites {
		st := &sites[i]
		name := st.Metadata.Name
		if st.Status.Shard != p.From || done[name] {
			continue
		}
		rs := store.RecoveredSite{Site: name, UID: st.Metadata.UID}
		e, err := catalog.Latest(ctx, c.cfg.Store, name, st.Metadata.UID)
		if err != nil {
			return err
		}
		if e == nil {
			rs.Error = "no snapshot: the site stays on the lost shard"
		} else {
			rs.Snapshot, rs.SnapshotTime = e.Ref, c.snapshotTime(ctx, e)
			now := c.cfg.Clock().UTC()
			got, err := c.cfg.Store.UpdateSite(ctx, name, func(s *site.Site) error {
				if s.Metadata.UID != rs.UID || s.Status.Shard != p.From {
					return errSkip
				}
				s.Spec.Source = &site.Source{Snapshot: e.Ref, FromSite: name, FromURL: s.Status.URL}
				s.Status = site.Status{Phase: site.PhasePending, Shard: p.To, URL: s.Status.URL}
				s.Status.SetCondition(site.Condition{Type: "Recovered", Status: "False", Reason: "Rebuilding",
					Message: fmt.Sprintf("shard %s was lost; rebuilding on %s from %s", p.From, p.To, e.Ref)}, now)
				if s.Move.Active() {
					s.Move = nil
				}
				return nil
			})
			switch {
			case err == errSkip: //nolint:errorlint // our own sentinel, returned as is
				continue
			case err != nil:
				return fmt.Errorf("switch %s: %w", name, err)
			}
			rs.Generation = got.Metadata.Generation
			c.log.Info("recovering site", "site", name, "from", p.From, "to", p.To, "snapshot", e.Ref, "snapshot_time", rs.SnapshotTime)
		}
		res.Sites = append(res.Sites, rs)
		done[name] = true
		if err := c.saveRecover(ctx, j.ID, res, store.JobProgress{Total: int64(len(res.Sites)), Message: recoverSwitching}); err != nil {
			return err
		}
	}
	if res.Sites == nil {
		res.Sites = []store.RecoveredSite{}
	}
	return c.saveRecover(ctx, j.ID, res, store.JobProgress{Total: int64(countWithSnapshot(res)), Message: recoverRebuilding})
}

var errSkip = fmt.Errorf("skip")

func countWithSnapshot(r store.RecoverResult) int {
	n := 0
	for _, s := range r.Sites {
		if s.Snapshot != "" {
			n++
		}
	}
	return n
}

// trackRecoveries follows the recover jobs that switched their sites: a
// site is recovered once it is Ready on the target at (or after) the
// generation of its switch; when all are, the job succeeds with the time
// it took.
func (c *Controller) trackRecoveries(ctx context.Context) error {
	jobs, err := ctljobs.List(ctx, c.cfg.Store, store.JobListOptions{Kind: store.JobRecover, Phases: []store.JobPhase{store.JobRunning}})
	if err != nil {
		return err
	}
	for _, j := range jobs {
		if j.Progress.Message != recoverRebuilding {
			continue
		}
		p, res := decodeRecover(&j)
		now := c.cfg.Clock().UTC()
		ready, total, changed := 0, 0, false
		for k := range res.Sites {
			rs := &res.Sites[k]
			if rs.Snapshot == "" {
				continue
			}
			total++
			if rs.ReadyAt != nil {
				ready++
				continue
			}
			st, err := c.cfg.Store.GetSite(ctx, rs.Site)
			if err != nil || st.Metadata.UID != rs.UID {
				rs.Error, rs.ReadyAt, changed = "the site was deleted during the recovery", &now, true
				ready++
				continue
			}
			if st.Status.Shard == p.To && st.Status.Phase == site.PhaseReady && st.Status.ObservedGeneration >= rs.Generation {
				rs.ReadyAt, changed = &now, true
				ready++
			}
		}
		if !changed && ready < total {
			continue
		}
		prog := store.JobProgress{Done: int64(ready), Total: int64(total), Message: recoverRebuilding}
		if ready < total {
			if err := c.saveRecover(ctx, j.ID, res, prog); err != nil {
				return err
			}
			continue
		}
		res.Duration = now.Sub(j.CreatedAt).Round(time.Millisecond).String()
		prog.Message = "recovered"
		if err := c.saveRecover(ctx, j.ID, res, prog); err != nil {
			return err
		}
		var jobErr error
		if missing := len(res.Sites) - total; missing > 0 {
			jobErr = fmt.Errorf("%d site(s) had no snapshot and stay on the lost shard %s", missing, p.From)
		}
		c.finish(ctx, j.ID, res, jobErr)
		c.log.Info("shard recovered", "from", p.From, "to", p.To, "sites", total, "took", res.Duration)
	}
	return nil
}
