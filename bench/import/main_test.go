package main

import (
	"bytes"
	"context"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/searchreplace"
	"github.com/aipress/aipress/internal/siteport"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if string(want) != got {
		t.Errorf("differs from %s (-update rewrites it):\n%s", path, got)
	}
}

// TestGenerateInspect: the generated archive is one the importer accepts
// (the same inspection the API and the shard run), with the old URL, the
// prefix and the tables, and generation is deterministic.
func TestGenerateInspect(t *testing.T) {
	dir := t.TempDir()
	plan := Plan{DumpBytes: 600 << 10, UploadBytes: 3 << 20, Seed: 3}
	g, err := Generate(plan, filepath.Join(dir, "a.tar.gz"), filepath.Join(dir, "a.sql"))
	if err != nil {
		t.Fatal(err)
	}
	if g.DumpBytes < plan.DumpBytes || g.DumpBytes > plan.DumpBytes+64<<10 || g.UploadBytes != plan.UploadBytes || g.Posts < 50 || g.Uploads < 5 {
		t.Errorf("generated %+v for %+v", g, plan)
	}
	// Random uploads do not compress: the archive is about the site's size.
	if g.ArchiveBytes < plan.UploadBytes {
		t.Errorf("archive %d bytes for %d of uploads", g.ArchiveBytes, plan.UploadBytes)
	}
	scratch := filepath.Join(dir, "x")
	if err := os.Mkdir(scratch, 0o700); err != nil {
		t.Fatal(err)
	}
	in, err := siteport.Inspect(context.Background(), siteport.InspectRequest{Archive: filepath.Join(dir, "a.tar.gz"), Scratch: scratch,
		Limits: siteport.Limits{Bytes: 1 << 30, Files: 100000}})
	if err != nil {
		t.Fatal(err)
	}
	if in.OldURL != OldURL || in.TablePrefix != "wp_" || len(in.Tables) != len(tables) || !slices.Contains(in.Themes, "oldhost-child") {
		t.Errorf("inspection: old URL %q, prefix %q, tables %q, themes %q", in.OldURL, in.TablePrefix, in.Tables, in.Themes)
	}
	again := filepath.Join(dir, "b.sql")
	if _, err := Generate(plan, filepath.Join(dir, "b.tar.gz"), again); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(filepath.Join(dir, "a.sql"))
	b, _ := os.ReadFile(again)
	if !bytes.Equal(a, b) {
		t.Error("two dumps of one plan differ")
	}
}

// TestDumpHoldsEveryForm: the dump has the URL in the forms the rewrite
// must reach (plain, JSON-escaped, in serialised values, nested), and its
// serialised values are valid (every s:N: length right): searchreplace
// rewrites them as serialised data, not as broken text.
func TestDumpHoldsEveryForm(t *testing.T) {
	var b bytes.Buffer
	if _, _, _, err := WriteDump(&b, Plan{DumpBytes: 100 << 10, Seed: 1}, 10); err != nil {
		t.Fatal(err)
	}
	s := b.String()
	// Values as they are stored (the dump escapes them as mariadb-dump does).
	for _, want := range []string{`href="` + OldURL, `"url":"` + OldURL, oldJSON + `\/wp-content`, ser(OldURL + "/wp-json/bench/v1/0")} {
		if q := sqlString(want); !strings.Contains(s, q[1:len(q)-1]) {
			t.Errorf("dump lacks %s", want)
		}
	}
	for _, want := range []string{"INSERT INTO `wp_options` VALUES", "CREATE TABLE `wp_posts` (", `href=\"https://`} {
		if !strings.Contains(s, want) {
			t.Errorf("dump lacks %s", want)
		}
	}
	r, err := searchreplace.New(OldURL, "http://new.localhost")
	if err != nil {
		t.Fatal(err)
	}
	v := ser(kvOf("a", OldURL, "n", ser([]any{OldURL + "/x", 3, true})))
	out, res := r.Rewrite([]byte(v))
	if want := ser(kvOf("a", "http://new.localhost", "n", ser([]any{"http://new.localhost/x", 3, true}))); string(out) != want || res.Malformed {
		t.Errorf("rewrite of %s: %s (malformed %v), want %s", v, out, res.Malformed, want)
	}
}

func TestReportTable(t *testing.T) {
	phases := func(upload float64) []Phase {
		return []Phase{{"upload", upload}, {"fetch", 1.5}, {"unpack", 3}, {"load", 20}, {"rewrite", 8},
			{"convergence around the import", 2}}
	}
	r := &Report{
		Site: Generated{ArchiveBytes: 210 << 20, DumpBytes: 60 << 20, UploadBytes: 140 << 20, Uploads: 250, Posts: 12000, Rows: 80000},
		Runs: []*Run{
			{Mode: "archive", Domain: domain, Total: 61.5, Phases: phases(12.25), HWMBefore: 80 << 20, HWMAfter: 96 << 20,
				Tree:   TreeMem{PeakRSS: 700 << 20, RootPeakRSS: 90 << 20, RootPeakAt: 30 * time.Second, HWMByName: map[string]int64{"aipress": 96 << 20, "mariadbd": 400 << 20, "mariadb": 12 << 20}},
				Import: &Rewrite{Tool: "in the import (searchreplace)", Seconds: 8, BytesScanned: 40e6, Rows: 80000, CellsChanged: 30000}},
			{Mode: "live", Domain: liveDomain, Total: 70.25, Phases: phases(21), HWMBefore: 90 << 20, HWMAfter: 200 << 20, PullerHWM: 130 << 20, PullerBase: 110 << 20,
				Tree:   TreeMem{PeakRSS: 710 << 20, RootPeakRSS: 150 << 20, RootPeakAt: 10 * time.Second, HWMByName: map[string]int64{"aipress": 200 << 20, "mariadbd": 410 << 20, "php-fpm8.2": 30 << 20}},
				Import: &Rewrite{Tool: "in the import (searchreplace)", Seconds: 10, BytesScanned: 40e6, Rows: 80000, CellsChanged: 30000}},
		},
		Go:  &Rewrite{Tool: "searchreplace (Go)", Seconds: 7.5, BytesScanned: 40e6, Rows: 80000, CellsChanged: 30000},
		PHP: &Rewrite{Tool: "PHP anchor", Seconds: 20, BytesScanned: 40e6, Rows: 80000, CellsChanged: 21000},
	}
	var b bytes.Buffer
	r.Table().Print(&b)
	for _, l := range r.Notes() {
		b.WriteString(l + "\n")
	}
	golden(t, "table.golden", b.String())
}

func TestStatusKB(t *testing.T) {
	st := []byte("Name:\taipress\nVmPeak:\t  900000 kB\nVmHWM:\t   81234 kB\nVmRSS:\t   70000 kB\n")
	if got := statusKB(st, "VmHWM"); got != 81234<<10 {
		t.Errorf("VmHWM %d", got)
	}
	if got := statusKB(st, "VmSwap"); got != 0 {
		t.Errorf("VmSwap %d", got)
	}
}
