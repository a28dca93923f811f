package assistant

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/aipress/aipress/internal/site"
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
// acme" lists the sites and backs up exactly acme's (jobs recorded on the
// assistant channel); "delete" comes back as a proposal and deletes nothing.
func TestRunPlanAgainstAPI(t *testing.T) {
	e := newAPI(t)
	ctx := t.Context()
	admin := e.layer(t, adminSecret, "conv-plan")
	for _, d := range []string{"a.example.com", "b.example.com", "other.example.com"} {
		args := map[string]any{"domain": d, "title": d, "admin_email": "me@example.com"}
		if d != "other.example.com" {
			args["org"] = "acme"
		}
		if _, err := admin.Call(ctx, "createSite", args); err != nil {
			t.Fatal(err)
		}
		// What a shard would report once the site serves.
		if _, err := e.store.UpdateSite(ctx, d, func(s *site.Site) error {
			s.Status.Phase = site.PhaseReady
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	plan, err := Parse("back up every site of acme")
	if err != nil {
		t.Fatal(err)
	}
	res, err := Run(ctx, admin, plan)
	if err != nil {
		t.Fatal(err)
	}
	var backedUp []string
	for _, r := range res[1:] {
		backedUp = append(backedUp, r.Args["name"].(string))
		if r.Result.Status != 202 {
			t.Errorf("backup of %s: %d", r.Args["name"], r.Result.Status)
		}
	}
	if strings.Join(backedUp, ",") != "a.example.com,b.example.com" {
		t.Errorf("backed up %v, want acme's two sites", backedUp)
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
