package monitoring

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
)

var update = flag.Bool("update", false, "rewrite dashboards/*.json from the generator")

// TestDashboards checks that the committed dashboards are what the
// generator makes; -update rewrites them.
func TestDashboards(t *testing.T) {
	ds, err := Dashboards()
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 3 {
		t.Fatalf("got %d dashboards, want fleet, shard and site", len(ds))
	}
	for _, d := range ds {
		path := filepath.Join("dashboards", d.File)
		if *update {
			if err := os.WriteFile(path, d.JSON, 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil {
			t.Fatalf("%v (go test ./deploy/monitoring -run TestDashboards -update writes it)", err)
		}
		if !bytes.Equal(got, d.JSON) {
			t.Errorf("%s differs from what the generator makes: go test ./deploy/monitoring -run TestDashboards -update", path)
		}
	}
}
