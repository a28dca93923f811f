// Package plans is the platform's plans as configuration: what an
// organisation on a plan may have (max_sites) and what each site on a plan
// gets (disk, database connections, the PHP pool, backup schedule and
// retention, monthly bandwidth).
//
// The defaults (defaults.yaml: dev, basic, pro, business) are embedded; an
// operator replaces the whole set with a file of the same format
// (`aipress up|server --plans FILE`), checked by Parse with errors naming
// the file, the plan and the field. Plans are listed from the smallest to
// the largest: that order is what "a site plan may not exceed its
// organisation's plan" means (Set.Rank).
//
// Quotas are decided by one function, Set.Check, which the API's create
// and update handlers call with what the store says of the organisation;
// Usage computes what `aipress org get` shows; ValidateBranding checks an
// organisation's white-label fields.
package plans

import (
	_ "embed"
	"errors"
	"fmt"
	"os"
	"regexp"
	"slices"
	"sync"
	"time"

	"sigs.k8s.io/yaml"

	"github.com/aipress/aipress/internal/backup/schedule"
	"github.com/aipress/aipress/internal/site"
)

//go:embed defaults.yaml
var defaultsYAML []byte

// GB is the unit of BandwidthGB: 10^9 bytes, as hosting plans count it.
const GB = 1_000_000_000

// Plan is one plan.
type Plan struct {
	// Name identifies the plan (1-32 lowercase letters, digits or '-',
	// starting with a letter); sites and organisations store it.
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// MaxSites is how many sites an organisation on this plan may have
	// (0: no limit).
	MaxSites int `json:"max_sites"`
	// DiskMB bounds what a site's PHP may write (its volume).
	DiskMB int `json:"disk_mb"`
	// DBConnections is the site database user's MAX_USER_CONNECTIONS.
	DBConnections int `json:"db_connections"`
	// DBClients is how many client connections a site may hold to its
	// shard's pooler at once (0 or absent: site.DefaultLimits').
	DBClients int `json:"db_clients,omitempty"`
	// PHP is the site's pool: max_children, memory and upload limits,
	// idle and request timeouts.
	PHP site.PHP `json:"php"`
	// Backup is the site's backup schedule and retention (a site's own
	// spec.backup overrides it field by field).
	Backup site.BackupPolicy `json:"backup"`
	// BandwidthGB is what a site may send per calendar month (UTC), in
	// GB of 10^9 bytes (0: no limit). Beyond it the edge answers 509.
	BandwidthGB float64 `json:"bandwidth_gb"`
	// RotateDBPasswordDays: the control plane's leader rotates the
	// database password of the plan's sites this many days after the last
	// rotation (or the site's creation); 0: never (control.Rotations).
	RotateDBPasswordDays int `json:"rotate_db_password_days,omitempty"`
	// SLAPercent is the monthly availability the plan promises each site,
	// in percent (99.9, 99.95, 99.99): what the SLA report (package uptime)
	// measures the uptime probes' incidents against. 0: no SLA.
	SLAPercent float64 `json:"sla_percent,omitempty"`
}

// Limits returns the site limits the plan gives.
func (p Plan) Limits() site.Limits {
	return site.Limits{DiskMB: p.DiskMB, DBConnections: p.DBConnections, DBClients: p.DBClients}
}

// BandwidthBytes is the monthly bandwidth limit in bytes (0: none).
func (p Plan) BandwidthBytes() int64 { return int64(p.BandwidthGB * GB) }

// Apply puts the plan into a site's spec: its name, PHP resources and
// limits (the shard applies them live on its next pass).
func (p Plan) Apply(spec *site.Spec) {
	spec.Plan = p.Name
	spec.PHP = p.PHP
	spec.Limits = p.Limits()
}

// file is the YAML document.
type file struct {
	// Default is the plan of sites created without one.
	Default string `json:"default"`
	Plans   []Plan `json:"plans"`
}

// Set is a validated set of plans, smallest first. It is immutable.
type Set struct {
	def   string
	plans []Plan
	index map[string]int
}

// Defaults returns the embedded plans (parsed once; a Set is immutable).
func Defaults() *Set { return defaults() }

var defaults = sync.OnceValue(func() *Set {
	s, err := Parse(defaultsYAML, "embedded plans")
	if err != nil {
		panic(err) // TestDefaults proves it does not
	}
	return s
})

// Load reads and checks an operator's plans file.
func Load(path string) (*Set, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("plans: %w", err)
	}
	return Parse(b, path)
}

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)

// Parse decodes and checks a plans document; source names it in errors.
// Unknown keys are errors (a misspelt limit must not silently vanish).
func Parse(b []byte, source string) (*Set, error) {
	var f file
	if err := yaml.UnmarshalStrict(b, &f); err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	if len(f.Plans) == 0 {
		return nil, fmt.Errorf("%s: no plans (a list under the key plans)", source)
	}
	s := &Set{def: f.Default, plans: f.Plans, index: make(map[string]int, len(f.Plans))}
	var errs []error
	for i, p := range f.Plans {
		if _, dup := s.index[p.Name]; dup {
			errs = append(errs, fmt.Errorf("plan %q is defined twice", p.Name))
			continue
		}
		s.index[p.Name] = i
		if err := p.validate(); err != nil {
			label := fmt.Sprintf("plan %q", p.Name)
			if p.Name == "" {
				label = fmt.Sprintf("plan #%d", i+1)
			}
			errs = append(errs, fmt.Errorf("%s: %w", label, err))
		}
	}
	if f.Default == "" {
		errs = append(errs, errors.New("default: name the plan of sites created without one"))
	} else if _, ok := s.index[f.Default]; !ok {
		errs = append(errs, fmt.Errorf("default: %q is not one of the plans (%v)", f.Default, s.Names()))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, fmt.Errorf("%s: %w", source, err)
	}
	return s, nil
}

// validate checks one plan; every problem is reported at once.
func (p Plan) validate() error {
	var errs []error
	between := func(field string, v, lo, hi int) {
		if v < lo || v > hi {
			errs = append(errs, fmt.Errorf("%s must be between %d and %d, got %d", field, lo, hi, v))
		}
	}
	if !nameRE.MatchString(p.Name) {
		errs = append(errs, fmt.Errorf("name %q: use 1-32 lowercase letters, digits or '-', starting with a letter", p.Name))
	}
	between("max_sites", p.MaxSites, 0, 1_000_000)
	between("disk_mb", p.DiskMB, 16, 16<<20)
	between("db_connections", p.DBConnections, 1, 10_000)
	if p.DBClients != 0 {
		between("db_clients", p.DBClients, 1, 100_000)
	}
	between("php.max_children", p.PHP.MaxChildren, 1, 1000)
	between("php.memory_limit_mb", p.PHP.MemoryLimitMB, 32, 65536)
	between("php.upload_max_mb", p.PHP.UploadMaxMB, 1, 65536)
	between("php.idle_timeout_seconds", p.PHP.IdleTimeoutSecond, 1, 86400)
	between("php.request_timeout_seconds", p.PHP.RequestTimeoutSeconds, 1, 86400)
	if p.PHP.UploadMaxMB > p.DiskMB && p.DiskMB > 0 {
		errs = append(errs, fmt.Errorf("php.upload_max_mb (%d) exceeds disk_mb (%d): such an upload could never be stored", p.PHP.UploadMaxMB, p.DiskMB))
	}
	if p.Backup.EveryHours < -1 || p.Backup.EveryHours == 0 || p.Backup.EveryHours > 24*31 {
		errs = append(errs, fmt.Errorf("backup.every_hours must be between 1 and %d, or -1 for no scheduled backups, got %d", 24*31, p.Backup.EveryHours))
	}
	k := p.Backup.Keep
	if k.Hourly < 0 || k.Daily < 0 || k.Weekly < 0 || k.Monthly < 0 {
		errs = append(errs, errors.New("backup.keep: counts must not be negative"))
	} else if p.Backup.EveryHours > 0 && k == (site.Retention{}) {
		errs = append(errs, errors.New("backup.keep: scheduled backups need a retention (hourly, daily, weekly or monthly)"))
	}
	if p.BandwidthGB < 0 || p.BandwidthGB > 1e9 {
		errs = append(errs, fmt.Errorf("bandwidth_gb must be between 0 (no limit) and 1e9, got %v", p.BandwidthGB))
	}
	if p.SLAPercent < 0 || p.SLAPercent >= 100 {
		errs = append(errs, fmt.Errorf("sla_percent must be 0 (no SLA) or above 0 and below 100, got %v", p.SLAPercent))
	}
	return errors.Join(errs...)
}

// Default returns the plan of sites created without one.
func (s *Set) Default() Plan { return s.plans[s.index[s.def]] }

// Get returns the named plan.
func (s *Set) Get(name string) (Plan, bool) {
	i, ok := s.index[name]
	if !ok {
		return Plan{}, false
	}
	return s.plans[i], true
}

// Lookup returns the named plan or an error naming the plans there are.
func (s *Set) Lookup(name string) (Plan, error) {
	if p, ok := s.Get(name); ok {
		return p, nil
	}
	return Plan{}, fmt.Errorf("unknown plan %q (plans: %v)", name, s.Names())
}

// Names lists the plans, smallest first.
func (s *Set) Names() []string {
	out := make([]string, len(s.plans))
	for i, p := range s.plans {
		out[i] = p.Name
	}
	return out
}

// All returns the plans, smallest first (a copy).
func (s *Set) All() []Plan { return slices.Clone(s.plans) }

// Rank is a plan's place in the order, smallest 0; -1 for an unknown plan.
func (s *Set) Rank(name string) int {
	if i, ok := s.index[name]; ok {
		return i
	}
	return -1
}

// RotationPolicy returns how often a site's database password is rotated
// on schedule (its plan's RotateDBPasswordDays; an unknown plan: the
// default plan's); 0: never.
func (s *Set) RotationPolicy(spec *site.Spec) time.Duration {
	p, ok := s.Get(spec.Plan)
	if !ok {
		p = s.Default()
	}
	return time.Duration(p.RotateDBPasswordDays) * 24 * time.Hour
}

// BackupPolicy returns a site's effective backup policy: its spec's own
// fields over its plan's (an unknown plan: the default plan's).
func (s *Set) BackupPolicy(spec *site.Spec) site.BackupPolicy {
	p, ok := s.Get(spec.Plan)
	if !ok {
		p = s.Default()
	}
	return schedule.Effective(spec.Backup, p.Backup)
}
