package assistant

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sort"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

type corpusCase struct {
	Request string `json:"request"`
	Calls   []Step `json:"calls"`
}

func loadCorpus(t testing.TB) []corpusCase {
	t.Helper()
	data, err := os.ReadFile("testdata/requests.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cs []corpusCase
	if err := yaml.Unmarshal(data, &cs); err != nil {
		t.Fatal(err)
	}
	return cs
}

// canon is a plan's steps as canonical JSON (numbers, key order).
func canon(steps []Step) string {
	if len(steps) == 0 {
		return "[]"
	}
	b, _ := json.Marshal(steps)
	var v any
	_ = json.Unmarshal(b, &v)
	b, _ = json.Marshal(v)
	return string(b)
}

// corpusAccuracy runs the corpus through Parse and returns the exact
// matches, the total and a table of every request.
func corpusAccuracy(t testing.TB) (ok, total int, table string, misses []string) {
	var b strings.Builder
	fmt.Fprintf(&b, "%-4s %-70s %s\n", "OK", "REQUEST", "CALLS")
	for _, c := range loadCorpus(t) {
		plan, err := Parse(c.Request)
		var got string
		switch {
		case err != nil:
			var nu *NotUnderstood
			if !errors.As(err, &nu) {
				t.Fatalf("%q: %v", c.Request, err)
			}
			got = "[]"
		default:
			got = canon(plan.Steps)
		}
		want := canon(c.Calls)
		mark := "yes"
		if got == want {
			ok++
		} else {
			mark = "NO"
			misses = append(misses, fmt.Sprintf("%q:\n   got %s\n  want %s", c.Request, got, want))
		}
		total++
		fmt.Fprintf(&b, "%-4s %-70s %s\n", mark, c.Request, got)
	}
	return ok, total, b.String(), misses
}

// TestCorpus runs the evaluation corpus against the offline engine, prints
// the accuracy (exact tool-call match; the table with -v) and fails below
// 90 %. Every planned call must also pass its tool's schema.
func TestCorpus(t *testing.T) {
	cs := loadCorpus(t)
	if len(cs) < 100 {
		t.Fatalf("the corpus has %d phrasings, want at least 100", len(cs))
	}
	ok, total, table, misses := corpusAccuracy(t)
	t.Logf("offline engine, corpus table:\n%s", table)
	for _, m := range misses {
		t.Logf("miss %s", m)
	}
	acc := 100 * float64(ok) / float64(total)
	fmt.Printf("assistant offline engine: %d/%d exact tool-call matches = %.1f%%\n", ok, total, acc)
	if acc < 90 {
		t.Errorf("accuracy %.1f%% is below 90%%", acc)
	}
	tools, err := Tools()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cs {
		for _, st := range c.Calls {
			tool := tools[st.Tool]
			if tool == nil {
				t.Errorf("%q: corpus names unknown tool %s", c.Request, st.Tool)
				continue
			}
			if err := tool.Validate(st.Args); err != nil {
				t.Errorf("%q: corpus call does not fit the schema: %v", c.Request, err)
			}
		}
	}
}

// BenchmarkCorpus prints the same figure in a benchmark-style target:
// go test -run '^$' -bench Corpus ./internal/assistant/
func BenchmarkCorpus(b *testing.B) {
	var ok, total int
	for b.Loop() {
		ok, total, _, _ = corpusAccuracy(b)
	}
	b.ReportMetric(100*float64(ok)/float64(total), "%exact")
}

func TestNotUnderstoodSaysWhatItCan(t *testing.T) {
	_, err := Parse("make me a sandwich")
	var nu *NotUnderstood
	if !errors.As(err, &nu) || !strings.Contains(err.Error(), "did not understand") || !strings.Contains(err.Error(), "back up every site of acme") {
		t.Fatalf("Parse: %v", err)
	}
}

// TestRunPlanAgainstAPI runs a plan end to end: "back up every site of
// acme" lists the sites and proposes a backup of exactly acme's (a backup
// costs: nothing runs until each proposal is confirmed, then the jobs are
// made); "delete" comes back as a proposal and deletes nothing.
func TestRunPlanAgainstAPI(t *testing.T) {
	e := newAPI(t)
	ctx := t.Context()
	admin := e.layer(t, adminSecret, "conv-plan")
	for _, d := range []string{"a.example.com", "b.example.com", "other.example.com"} {
		args := map[string]any{"domain": d, "title": d, "admin_email": "me@example.com"}
		if d != "other.example.com" {
			args["org"] = "acme"
		}
		callNow(t, admin, "createSite", args)
		// What a shard would report once the site serves.
		if _, err := e.store.UpdateSite(ctx, d, func(s *site.Site) error {
			s.Status.Phase = site.PhaseReady
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	backupJobs := func() []string {
		t.Helper()
		l, err := e.store.ListJobs(ctx, store.JobListOptions{Kind: store.JobBackup})
		if err != nil {
			t.Fatal(err)
		}
		var sites []string
		for _, j := range l.Items {
			sites = append(sites, j.Site)
		}
		sort.Strings(sites)
		return sites
	}
	plan, err := Parse("back up every site of acme")
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(ctx, admin, plan)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 3 || res[0].Step.Tool != "listSites" || res[0].Result.Status != 200 {
		t.Fatalf("plan results %+v, want listSites then one proposal per acme site", res)
	}
	var proposed []string
	for _, r := range res[1:] {
		proposed = append(proposed, r.Args["name"].(string))
		if r.Step.Tool != "createBackup" || r.Result.Proposal == nil || r.Result.Status != 0 {
			t.Errorf("backup of %s: %+v, want a proposal", r.Args["name"], r.Result)
		}
	}
	if strings.Join(proposed, ",") != "a.example.com,b.example.com" {
		t.Errorf("proposed backups of %v, want acme's two sites", proposed)
	}
	if got := backupJobs(); len(got) != 0 {
		t.Fatalf("backups made before confirmation: %v", got)
	}
	for _, r := range res[1:] {
		if r.Result.Proposal == nil {
			continue
		}
		c, err := admin.Confirm(ctx, r.Result.Proposal.ID)
		if err != nil || c.Status != 202 {
			t.Errorf("confirmed backup of %s: %+v %v", r.Args["name"], c, err)
		}
	}
	if got := strings.Join(backupJobs(), ","); got != "a.example.com,b.example.com" {
		t.Errorf("backups made of %q, want exactly acme's two sites", got)
	}
	plan, _ = Parse("delete a.example.com")
	res, err = Run(ctx, admin, plan)
	if err != nil || len(res) != 1 || res[0].Result.Proposal == nil {
		t.Fatalf("delete plan: %+v %v", res, err)
	}
	if s, err := e.store.GetSite(ctx, "a.example.com"); err != nil || s.Metadata.DeletionRequested != nil {
		t.Fatalf("a proposal deleted: %v", err)
	}
	// Restoring a site without backups says so instead of guessing.
	plan, _ = Parse("restore other.example.com")
	if _, err := Run(ctx, admin, plan); err == nil || !strings.Contains(err.Error(), "no backup") {
		t.Errorf("restore without backups: %v", err)
	}
}
