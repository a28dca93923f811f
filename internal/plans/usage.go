package plans

import (
	"math"
	"time"
)

// Usage is what an organisation uses of its plan: the "quotas" of
// GET /v1/orgs/{name} and `aipress org get`.
type Usage struct {
	// Plan is the organisation's plan ("" : not bounded by one).
	Plan  string `json:"plan,omitempty"`
	Sites Count  `json:"sites"`
	// Bandwidth is the organisation's sites' traffic this month against
	// the sum of their plans' limits (LimitGB 0: at least one site has no
	// limit).
	Bandwidth Bandwidth `json:"bandwidth"`
	// PerSite is each site's disk and bandwidth, by name.
	PerSite []SiteUsage `json:"per_site"`
}

// Count is a used/limit pair; Limit 0 means no limit.
type Count struct {
	Used  int `json:"used"`
	Limit int `json:"limit"`
}

// Bandwidth is bytes sent in a calendar month (UTC), in GB of 10^9 bytes.
type Bandwidth struct {
	Month   string  `json:"month"` // YYYY-MM
	UsedGB  float64 `json:"used_gb"`
	LimitGB float64 `json:"limit_gb"` // 0: no limit
}

// SiteUsage is one site's use of its plan.
type SiteUsage struct {
	Site      string    `json:"site"`
	Plan      string    `json:"plan"`
	DiskMB    Count     `json:"disk_mb"` // used as the shard measured it last
	Bandwidth Bandwidth `json:"bandwidth"`
}

// SiteFacts is what the store knows of one site for Usage.
type SiteFacts struct {
	Name       string
	Plan       string
	DiskUsedMB int
	// BandwidthBytes is what the edges counted for it this month.
	BandwidthBytes int64
}

// Month is the bandwidth accounting period of t: its UTC calendar month,
// "YYYY-MM".
func Month(t time.Time) string { return t.UTC().Format("2006-01") }

// gb rounds bytes to GB with three decimals (megabytes).
func gb(b int64) float64 { return math.Round(float64(b)/GB*1000) / 1000 }

// Usage computes org's usage from its sites' facts in month. A site on a
// plan the set does not know is shown with the default plan's limits.
func (s *Set) Usage(org Org, month string, sites []SiteFacts) Usage {
	u := Usage{Plan: org.Plan, Sites: Count{Used: len(sites)}, Bandwidth: Bandwidth{Month: month}, PerSite: []SiteUsage{}}
	if op, ok := s.Get(org.Plan); ok {
		u.Sites.Limit = op.MaxSites
	}
	var used, limit int64
	unlimited := false
	for _, f := range sites {
		p, ok := s.Get(f.Plan)
		if !ok {
			p = s.Default()
		}
		used += f.BandwidthBytes
		limit += p.BandwidthBytes()
		if p.BandwidthBytes() == 0 {
			unlimited = true
		}
		u.PerSite = append(u.PerSite, SiteUsage{
			Site: f.Name, Plan: f.Plan,
			DiskMB:    Count{Used: f.DiskUsedMB, Limit: p.DiskMB},
			Bandwidth: Bandwidth{Month: month, UsedGB: gb(f.BandwidthBytes), LimitGB: p.BandwidthGB},
		})
	}
	u.Bandwidth.UsedGB = gb(used)
	if !unlimited {
		u.Bandwidth.LimitGB = gb(limit)
	}
	return u
}
