package plans

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// TestDefaults: the embedded plans parse, keep the plans sites had before
// plans were configuration (their PHP, limits and backups), and are
// ordered smallest first.
func TestDefaults(t *testing.T) {
	s := Defaults()
	if got := strings.Join(s.Names(), ","); got != "dev,basic,pro,business" {
		t.Errorf("names = %s", got)
	}
	if s.Default().Name != "basic" {
		t.Errorf("default = %s", s.Default().Name)
	}
	basic, _ := s.Get("basic")
	if want := (site.PHP{MaxChildren: 5, MemoryLimitMB: 256, UploadMaxMB: 64, IdleTimeoutSecond: 10, RequestTimeoutSeconds: 120}); basic.PHP != want {
		t.Errorf("basic PHP = %+v, want %+v", basic.PHP, want)
	}
	if want := (site.Limits{DiskMB: 1024, DBConnections: 20, DBClients: 50}); basic.Limits() != want {
		t.Errorf("basic limits = %+v", basic.Limits())
	}
	biz, _ := s.Get("business")
	if biz.Backup.EveryHours != 1 || biz.Backup.Keep.Hourly != 48 {
		t.Errorf("business backup = %+v", biz.Backup)
	}
	for i, p := range s.All()[1:] {
		prev := s.All()[i]
		if p.DiskMB < prev.DiskMB || p.MaxSites < prev.MaxSites && p.MaxSites != 0 || p.BandwidthGB < prev.BandwidthGB {
			t.Errorf("plan %s is smaller than %s, listed before it", p.Name, prev.Name)
		}
	}
}

// TestParseErrors: each kind of bad file is refused with a message naming
// the source, the plan and the field.
func TestParseErrors(t *testing.T) {
	const good = `{name: p, max_sites: 1, disk_mb: 100, db_connections: 5, php: {max_children: 2, memory_limit_mb: 128, upload_max_mb: 8, idle_timeout_seconds: 10, request_timeout_seconds: 30}, backup: {every_hours: 24, keep: {daily: 3}}, bandwidth_gb: 1}`
	tests := []struct {
		name, doc string
		want      []string
	}{
		{"good", "default: p\nplans:\n- " + good, nil},
		{"good with db clients", "default: p\nplans:\n- " + strings.Replace(good, "db_connections: 5", "db_connections: 5, db_clients: 30", 1), nil},
		{"not yaml", "plans: [", []string{"f.yaml:"}},
		{"unknown key", "default: p\nplans:\n- " + strings.Replace(good, "disk_mb", "disk_mbs", 1), []string{"f.yaml", "disk_mbs"}},
		{"no plans", "default: p\n", []string{"no plans"}},
		{"no default", "plans:\n- " + good, []string{"default: name the plan"}},
		{"unknown default", "default: q\nplans:\n- " + good, []string{`default: "q" is not one of the plans`}},
		{"twice", "default: p\nplans:\n- " + good + "\n- " + good, []string{`plan "p" is defined twice`}},
		{"bad name", "default: P\nplans:\n- " + strings.Replace(good, "name: p", "name: P", 1), []string{`name "P"`}},
		{"zero disk", "default: p\nplans:\n- " + strings.Replace(good, "disk_mb: 100", "disk_mb: 0", 1), []string{`plan "p": disk_mb must be between 16`}},
		{"no children", "default: p\nplans:\n- " + strings.Replace(good, "max_children: 2", "max_children: 0", 1), []string{"php.max_children must be between 1"}},
		{"upload over disk", "default: p\nplans:\n- " + strings.Replace(good, "upload_max_mb: 8", "upload_max_mb: 800", 1), []string{"php.upload_max_mb (800) exceeds disk_mb (100)"}},
		{"no retention", "default: p\nplans:\n- " + strings.Replace(good, "keep: {daily: 3}", "keep: {}", 1), []string{"backup.keep: scheduled backups need a retention"}},
		{"SLA of 100 %", "default: p\nplans:\n- " + strings.Replace(good, "bandwidth_gb: 1", "bandwidth_gb: 1, sla_percent: 100", 1), []string{"sla_percent must be 0"}},
		{"negative bandwidth", "default: p\nplans:\n- " + strings.Replace(good, "bandwidth_gb: 1", "bandwidth_gb: -1", 1), []string{"bandwidth_gb must be between 0"}},
		{"negative db clients", "default: p\nplans:\n- " + strings.Replace(good, "db_connections: 5", "db_connections: 5, db_clients: -1", 1), []string{`plan "p": db_clients must be between 1`}},
		{"too many db clients", "default: p\nplans:\n- " + strings.Replace(good, "db_connections: 5", "db_connections: 5, db_clients: 100001", 1), []string{"db_clients must be between 1 and 100000"}},
		{"every problem at once", "default: p\nplans:\n- " + strings.Replace(strings.Replace(good, "db_connections: 5", "db_connections: 0", 1), "max_sites: 1", "max_sites: -1", 1),
			[]string{"max_sites must be", "db_connections must be"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := Parse([]byte(tt.doc), "f.yaml")
			if tt.want == nil {
				if err != nil || s == nil {
					t.Fatalf("Parse: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Parse accepted %q", tt.doc)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) || !strings.HasPrefix(err.Error(), "f.yaml") {
					t.Errorf("error %q lacks %q (or the file name)", err, w)
				}
			}
		})
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "plans.yaml")
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), "no such file") {
		t.Errorf("Load of a missing file: %v", err)
	}
	if err := os.WriteFile(p, defaultsYAML, 0o600); err != nil {
		t.Fatal(err)
	}
	s, err := Load(p)
	if err != nil || len(s.Names()) != 4 {
		t.Fatalf("Load: %v", err)
	}
}

// TestCheck: the quota decisions and their messages.
func TestCheck(t *testing.T) {
	s := Defaults()
	acme := func(plan string, sites int) Org { return Org{Name: "acme", Plan: plan, Sites: sites} }
	tests := []struct {
		name string
		org  Org
		c    Change
		want string // "" allowed; else the message (QuotaError) or an error's text
	}{
		{"first site", acme("basic", 0), Change{New: true, Site: "a.example", Plan: "basic"}, ""},
		{"last site", acme("basic", 2), Change{New: true, Site: "a.example", Plan: "basic"}, ""},
		{"one site too many", acme("basic", 3), Change{New: true, Site: "a.example", Plan: "basic"}, "organisation acme's plan basic allows 3 sites; it has 3"},
		{"a change does not count", acme("basic", 3), Change{Site: "a.example", Plan: "dev"}, ""},
		{"smaller site plan", acme("pro", 0), Change{New: true, Site: "a.example", Plan: "dev"}, ""},
		{"site plan above org plan", acme("basic", 0), Change{New: true, Site: "a.example", Plan: "business"},
			"organisation acme's plan basic allows sites on plans up to basic (dev, basic); business is larger"},
		{"upgrade above org plan", acme("basic", 1), Change{Site: "a.example", Plan: "pro"},
			"organisation acme's plan basic allows sites on plans up to basic (dev, basic); pro is larger"},
		{"unbounded org", Org{Name: "default", Sites: 500}, Change{New: true, Site: "a.example", Plan: "business"}, ""},
		{"org on a removed plan", acme("gold", 0), Change{New: true, Site: "a.example", Plan: "basic"}, `organisation acme's plan "gold" is not one of the platform's plans`},
		{"unknown site plan", acme("basic", 0), Change{New: true, Site: "a.example", Plan: "gold"}, `unknown plan "gold"`},
		{"downgrade below use", acme("basic", 1), Change{Site: "a.example", Plan: "dev", UsedDiskMB: 700},
			"site a.example stores 700 MB; plan dev allows 512 MB of disk: delete files first, or choose a larger plan"},
		{"downgrade within use", acme("basic", 1), Change{Site: "a.example", Plan: "dev", UsedDiskMB: 500}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := s.Check(tt.org, tt.c)
			switch {
			case tt.want == "" && err != nil:
				t.Errorf("refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Errorf("err = %v, want %q", err, tt.want)
			}
			_, isQuota := err.(*QuotaError)
			if err != nil && isQuota == strings.HasPrefix(tt.name, "unknown site plan") {
				t.Errorf("%v: QuotaError = %v", err, isQuota)
			}
		})
	}
}

// TestUsage compares an organisation's usage with a golden file.
func TestUsage(t *testing.T) {
	s := Defaults()
	u := s.Usage(Org{Name: "acme", Plan: "pro", Sites: 3}, "2026-12", []SiteFacts{
		{Name: "a.example", Plan: "basic", DiskUsedMB: 120, BandwidthBytes: 12_345_678_901},
		{Name: "b.example", Plan: "pro", DiskUsedMB: 3, BandwidthBytes: 0},
		{Name: "c.example", Plan: "gone", DiskUsedMB: 0, BandwidthBytes: 1_500_000},
	})
	got, err := json.MarshalIndent(u, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "usage.golden.json")
	if *update {
		if err := os.WriteFile(golden, append(got, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if string(want) != string(got)+"\n" {
		t.Errorf("usage =\n%s\nwant\n%s", got, want)
	}
	if u := s.Usage(Org{Name: "default"}, "2026-12", nil); u.Sites.Limit != 0 || u.PerSite == nil {
		t.Errorf("unbounded org usage = %+v", u)
	}
}

func TestMonth(t *testing.T) {
	if got := Month(mustTime(t, "2026-12-31T23:30:00-02:00")); got != "2027-01" {
		t.Errorf("Month = %s, want the UTC month 2027-01", got)
	}
}

func TestValidateBranding(t *testing.T) {
	tests := []struct {
		name string
		b    store.Branding
		want []string
	}{
		{"empty", store.Branding{}, nil},
		{"full", store.Branding{ProductName: "Acme Sites", LogoURL: "https://cdn.acme.example/logo.svg", PrimaryColor: "#1a2B3c", AccentColor: "#ffffff", SupportEmail: "help@acme.example"}, nil},
		{"http logo", store.Branding{LogoURL: "http://acme.example/l.png"}, []string{"branding.logo_url", "not an https URL"}},
		{"javascript logo", store.Branding{LogoURL: "javascript:alert(1)"}, []string{"branding.logo_url"}},
		{"logo with user", store.Branding{LogoURL: "https://u:p@acme.example/l.png"}, []string{"branding.logo_url"}},
		{"short colour", store.Branding{PrimaryColor: "#fff"}, []string{"branding.primary_color", "#rrggbb"}},
		{"named colour", store.Branding{AccentColor: "red"}, []string{"branding.accent_color"}},
		{"email with name", store.Branding{SupportEmail: "Help <help@acme.example>"}, []string{"branding.support_email"}},
		{"not email", store.Branding{SupportEmail: "help"}, []string{"branding.support_email"}},
		{"control chars", store.Branding{ProductName: "a\nb"}, []string{"branding.product_name"}},
		{"all wrong", store.Branding{PrimaryColor: "x", SupportEmail: "y"}, []string{"primary_color", "support_email"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateBranding(tt.b)
			if tt.want == nil {
				if err != nil {
					t.Errorf("refused: %v", err)
				}
				return
			}
			for _, w := range tt.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("err = %v, want %q", err, w)
				}
			}
		})
	}
}

func mustTime(t *testing.T, s string) (tm time.Time) {
	t.Helper()
	tm, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}
