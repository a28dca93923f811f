package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aipress/aipress/internal/capacity"
	"github.com/aipress/aipress/internal/cost"
)

// capDeps are deps for commands that contact nothing.
func capDeps() deps {
	return deps{getenv: func(string) string { return "" }}
}

func TestCapacityOutput(t *testing.T) {
	for _, tc := range []struct {
		golden string
		args   []string
	}{
		{"capacity_table", []string{"capacity", "--sites", "50000", "--mix", "small=80,medium=15,large=5"}},
		{"capacity_json", []string{"capacity", "--sites", "50000", "--mix", "small=80,medium=15,large=5", "-o", "json"}},
		{"capacity_plans_table", []string{"capacity", "--sites", "1234", "--mix", "dev=10,basic=40,business=50"}},
	} {
		t.Run(tc.golden, func(t *testing.T) {
			out, stderr, err := runCmd(t, capDeps(), tc.args...)
			if err != nil {
				t.Fatalf("%v (stderr %q)", err, stderr)
			}
			golden(t, tc.golden, out)
		})
	}
}

// TestCapacityDefaultMix: without --mix the documented default is used.
func TestCapacityDefaultMix(t *testing.T) {
	a, _, err := runCmd(t, capDeps(), "capacity", "--sites", "50000", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	b, _, err := runCmd(t, capDeps(), "capacity", "--sites", "50000", "--mix", DefaultMix, "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	if a != b {
		t.Error("capacity without --mix differs from --mix " + DefaultMix)
	}
}

// TestCapacityFiles: --figures, --prices and --plans replace the built-in
// files, and the JSON says what the plan was made from.
func TestCapacityFiles(t *testing.T) {
	dir := t.TempDir()
	figs := strings.Replace(string(capacity.FiguresYAML()), "value: 50\n", "value: 25\n", 1) // sites_per_shard
	prices := strings.Replace(string(cost.DefaultYAML()), "currency: USD", "currency: EUR", 1)
	plansDoc := `default: tiny
plans:
- name: tiny
  max_sites: 1
  disk_mb: 100
  db_connections: 5
  php: {max_children: 1, memory_limit_mb: 64, upload_max_mb: 8, idle_timeout_seconds: 10, request_timeout_seconds: 30}
  backup: {every_hours: -1}
`
	figs += "  tiny: {value: 0.01, source: \"assumption: test\"}\n"
	for name, doc := range map[string]string{"figures.yaml": figs, "prices.yaml": prices, "plans.yaml": plansDoc} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, _, err := runCmd(t, capDeps(), "capacity", "--sites", "100", "--mix", "tiny=100", "-o", "json",
		"--figures", filepath.Join(dir, "figures.yaml"), "--prices", filepath.Join(dir, "prices.yaml"), "--plans", filepath.Join(dir, "plans.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var r capacity.Result
	if err := json.Unmarshal([]byte(out), &r); err != nil {
		t.Fatal(err)
	}
	if r.Shards != 4 || r.Shard.Sites != 25 || r.Cost.Currency != "EUR" || len(r.Plans) != 1 || r.Plans[0].Plan != "tiny" || r.Plans[0].DiskMB != 100 {
		t.Errorf("got shards %d of %d sites, currency %s, plans %+v; want 4 of 25, EUR, tiny with 100 MB", r.Shards, r.Shard.Sites, r.Cost.Currency, r.Plans)
	}
	// small is a size of the built-in plans only: with these plans it names nothing.
	_, _, err = runCmd(t, capDeps(), "capacity", "--sites", "100", "--plans", filepath.Join(dir, "plans.yaml"))
	if err == nil || !strings.Contains(err.Error(), "--mix: size small stands for plan basic, which is not one of the plans (tiny)") {
		t.Errorf("default mix on other plans: err = %v", err)
	}
}

func TestCapacityPrintDefaults(t *testing.T) {
	for arg, want := range map[string][]byte{"figures": capacity.FiguresYAML(), "prices": cost.DefaultYAML()} {
		out, _, err := runCmd(t, capDeps(), "capacity", "--print-defaults", arg)
		if err != nil || out != string(want) {
			t.Errorf("--print-defaults %s: err %v, output %d bytes, want the embedded file (%d bytes)", arg, err, len(out), len(want))
		}
	}
}

func TestCapacityErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("sites_per_shard: {value: 0, source: x}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	badPrices := filepath.Join(dir, "prices.yaml")
	if err := os.WriteFile(badPrices, []byte("currency: USD\nsource: x\nprices: {vcpu_hour: -1}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no sites", []string{"capacity"}, "--sites must be a positive number of sites, got 0"},
		{"negative sites", []string{"capacity", "--sites", "-3"}, "--sites must be a positive number of sites, got -3"},
		{"sites not a number", []string{"capacity", "--sites", "many"}, `invalid argument "many" for "--sites"`},
		{"mix sum", []string{"capacity", "--sites", "10", "--mix", "small=80,medium=15"}, "--mix: the percentages add up to 95, not 100"},
		{"mix unknown", []string{"capacity", "--sites", "10", "--mix", "small=80,huge=20"},
			`--mix: unknown plan or size "huge" (sizes: large=business, medium=pro, small=basic; plans: dev, basic, pro, business)`},
		{"mix syntax", []string{"capacity", "--sites", "10", "--mix", "small:100"}, `--mix: "small:100" is not NAME=PERCENT`},
		{"output", []string{"capacity", "--sites", "10", "-o", "xml"}, `unknown output format "xml"`},
		{"figures file", []string{"capacity", "--sites", "10", "--figures", bad}, bad + ": sites_per_shard: must be between 1 and 100000, got 0"},
		{"figures missing", []string{"capacity", "--sites", "10", "--figures", filepath.Join(dir, "none.yaml")}, "figures: open"},
		{"prices file", []string{"capacity", "--sites", "10", "--prices", badPrices}, "--prices: price sheet: "},
		{"print-defaults", []string{"capacity", "--print-defaults", "plans"}, `--print-defaults: "plans": use figures or prices`},
		{"arguments", []string{"capacity", "50000"}, `unknown command "50000"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := runCmd(t, capDeps(), tc.args...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

// TestCapacityDocs: the example in docs/operations.md is what the command
// prints (its golden file).
func TestCapacityDocs(t *testing.T) {
	doc, err := os.ReadFile("../../docs/operations.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(doc), "## Capacity planning\n")
	if !ok {
		t.Fatal(`docs/operations.md has no section "Capacity planning"`)
	}
	_, rest, _ = strings.Cut(rest, "```\nRESOURCE")
	example, _, ok := strings.Cut(rest, "```\n")
	if !ok {
		t.Fatal("no RESOURCE table in the section")
	}
	want, err := os.ReadFile("testdata/capacity_table.golden")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(want), "RESOURCE"+example) {
		t.Errorf("docs/operations.md's example is not in testdata/capacity_table.golden:\n%s", "RESOURCE"+example)
	}
}
