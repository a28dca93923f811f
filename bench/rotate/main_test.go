package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

func TestPercentile(t *testing.T) {
	in := []time.Duration{5, 1, 4, 2, 3}
	if got := percentile(in, 50); got != 3 {
		t.Errorf("p50 = %v, want 3", got)
	}
	if got := percentile(in, 99); got != 5 {
		t.Errorf("p99 = %v, want 5", got)
	}
	if got := percentile(nil, 50); got != 0 {
		t.Errorf("p50 of nothing = %v", got)
	}
	if in[0] != 5 {
		t.Error("percentile sorted its input")
	}
}

// TestRotateTiny runs the benchmark at a tiny size (2 sites, 2 workers) on
// a real platform: builds aipress, starts it, rotates both sites' database
// passwords under load and wants no failed request.
func TestRotateTiny(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real platform")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root (the platform creates a Unix user per site)")
	}
	for _, b := range []string{"/usr/sbin/mariadbd", "/usr/sbin/php-fpm8.2", "/usr/share/wordpress/wp-settings.php"} {
		if _, err := os.Stat(b); err != nil {
			t.Skipf("%s missing (scripts/deps.sh)", b)
		}
	}
	bin := filepath.Join(t.TempDir(), "aipress")
	build := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", bin, "github.com/aipress/aipress/cmd/aipress")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	res, err := run(ctx, options{sites: 2, workers: 2, bin: bin, settle: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var b []byte
	for _, r := range res.table() {
		b = append(b, (r[0] + " " + r[1] + "\n")...)
	}
	t.Logf("\n%s", b)
	if res.Failed > 0 {
		t.Errorf("%d of %d requests failed; first: %s", res.Failed, res.Requests, res.FirstFailure)
	}
	if res.Requests == 0 || res.RotateMaxSecs <= 0 {
		t.Errorf("nothing measured: %+v", res)
	}
}
