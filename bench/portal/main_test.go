package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestPortalTiny runs the benchmark at a small size, so it does not rot:
// 300 sites, the same budgets.
func TestPortalTiny(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the control plane and Chromium")
	}
	if _, err := os.Stat("/usr/bin/chromium"); err != nil {
		t.Fatal("/usr/bin/chromium missing: make deps installs it")
	}
	bin := filepath.Join(t.TempDir(), "aipress")
	build := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", bin, "github.com/aipress/aipress/cmd/aipress")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	res, err := run(ctx, options{bin: bin, sites: 300, chromium: "/usr/bin/chromium"})
	if err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	res.table().Print(&b)
	t.Logf("\n%s", b.String())
	if err := res.problem(); err != nil {
		t.Error(err)
	}
}

func TestProblem(t *testing.T) {
	good := Result{Sites: 5000, FirstLoadKB: 150, RowsInDOM: 40, ScrollFrames: 120}
	for _, tc := range []struct {
		name string
		r    Result
		want string
	}{
		{"good", good, ""},
		{"heavy", func() Result { r := good; r.FirstLoadKB = 301; return r }(), "first load"},
		{"not virtualised", func() Result { r := good; r.RowsInDOM = 5000; return r }(), "not virtualised"},
		{"nothing", Result{Sites: 5000, FirstLoadKB: 100}, "nothing measured"},
	} {
		err := tc.r.problem()
		if (err == nil) != (tc.want == "") || err != nil && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: problem() = %v, want %q", tc.name, err, tc.want)
		}
	}
}
