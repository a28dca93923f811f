package shard

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/site"
)

// oneSite is Sites holding one site's status in memory.
type oneSite struct{ st site.Status }

func (o *oneSite) ListSites(context.Context, string) ([]site.Site, error) { return nil, nil }
func (o *oneSite) UpdateStatus(_ context.Context, _, _ string, fn func(*site.Status)) error {
	fn(&o.st)
	return nil
}
func (o *oneSite) UpdateMove(context.Context, string, string, func(*site.Move)) error { return nil }
func (o *oneSite) Finalize(context.Context, string, string) error                     { return nil }

// A pass that read a site before another pass gave its import up (Failed
// for good at this generation) reports its early steps with the phase it
// read: the site stays Failed, and a newer generation, or another site,
// takes the phase as before.
func TestReporterKeepsGivenUpImport(t *testing.T) {
	now := time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)
	s := &Shard{cfg: Config{Name: "alpha", Clock: func() time.Time { return now }}, log: slog.New(slog.DiscardHandler)}
	failed := func() site.Status {
		st := site.Status{Phase: site.PhaseFailed, Shard: "alpha"}
		st.SetCondition(site.Condition{Type: CondInstalled, Status: "False", Reason: ReasonImportFailed, Message: "import failed and is not retried", ObservedGeneration: 3}, now)
		return st
	}
	for _, tc := range []struct {
		name string
		gen  int64
		from func() site.Status
		want site.Phase
	}{
		{"stale pass, same generation", 3, failed, site.PhaseFailed},
		{"newer generation", 4, failed, site.PhaseCreating},
		{"failed otherwise", 3, func() site.Status { return site.Status{Phase: site.PhaseFailed, Shard: "alpha"} }, site.PhaseCreating},
		{"creating", 3, func() site.Status { return site.Status{Phase: site.PhaseCreating, Shard: "alpha"} }, site.PhaseCreating},
	} {
		src := &oneSite{st: tc.from()}
		rep := reporter{s: s, src: src, st: &site.Site{Metadata: site.Metadata{Name: "a.localhost", UID: "uid-a", Generation: tc.gen}}}
		rep.cond(context.Background(), CondDatabase, "True", "Ready", "database ready", site.PhaseCreating)
		if src.st.Phase != tc.want {
			t.Errorf("%s: phase %s, want %s", tc.name, src.st.Phase, tc.want)
		}
		if c := src.st.Condition(CondDatabase); c == nil || c.Status != "True" {
			t.Errorf("%s: Database condition %+v not written", tc.name, c)
		}
	}
}
