package main

import (
	"slices"
	"testing"

	"github.com/aipress/aipress/internal/plans"
)

// TestUnmeteredPlans: the bench's plans file loads, holds every built-in
// plan with the same default, and meters no bandwidth (the edge answered
// 509 past the basic plan's 100 GB on a fast machine).
func TestUnmeteredPlans(t *testing.T) {
	path, err := unmeteredPlans(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	got, err := plans.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	want := plans.Defaults()
	if !slices.Equal(got.Names(), want.Names()) || got.Default().Name != want.Default().Name {
		t.Fatalf("plans %v (default %s), want %v (default %s)", got.Names(), got.Default().Name, want.Names(), want.Default().Name)
	}
	for _, p := range got.All() {
		if p.BandwidthGB != 0 || p.BandwidthBytes() != 0 {
			t.Errorf("plan %s: bandwidth %v GB, want 0 (no limit)", p.Name, p.BandwidthGB)
		}
	}
}
