package main

import (
	"fmt"
	"io"
	"time"

	"github.com/aipress/aipress/bench/internal/benchplatform"
)

// Targets of the issue the figures are printed next to.
const (
	targetPlacePerSite = time.Millisecond
	targetAPIP99       = 50 * time.Millisecond
	targetDeliveryP99  = 250 * time.Millisecond // create → the owning agent has the site
	targetRoutesHeap   = 100 << 20              // bytes: the heap growth while an edge fetches every route and builds its table
	targetRoutesFetch  = 2 * time.Second
)

// figures is everything one run (one store) measured. Zero values of
// optional figures print as "n/a".
type figures struct {
	Store      string
	Sites      int
	SimShards  int
	RealShards int
	RealSites  int
	Setup      time.Duration // tokens, agents registered and heartbeating
	Seeded     int           // sites written into the store, not created through the API
	SeedPlace  time.Duration // server started → every seeded site placed

	Create       summary
	CreateWall   time.Duration // first create sent → last create answered
	PlacedWall   time.Duration // first create sent → every site placed
	PlaceLatency summary       // create answered → the owning agent's converge loop takes it up
	// Delivery is create answered → the owning agent's watch brought it
	// (its copy of its sites has it): the control plane's part of
	// PlaceLatency. The rest is the agent's own queue: it converges its
	// sites one after another, one status report each, and placement
	// packs a burst of creates onto the emptiest shard(s) with room.
	Delivery summary

	// The open-loop phase (-create-rate; openloop.go): creates sent at
	// RateCreates a second, latency from each one's scheduled send.
	RateCreates  int
	RateCreate   summary
	RateWall     time.Duration
	RateDelivery summary       // create answered → the owning agent's watch has it
	Converge     time.Duration // first create sent → every site Ready
	// CPUPerCreate is the server's CPU time (utime+stime) from the first
	// create sent to every site Ready, per site created through the API:
	// what a create costs the control plane in all (API, placement,
	// watches, status reports, the leader's other loops), a figure the
	// load on a shared machine moves less than latencies.
	CPUPerCreate time.Duration
	Get          summary
	List         summary
	ListSites    int // sites seen by the list walk

	ServerRSS, ServerHWM int64 // bytes; 0: not measured

	EdgeRoutes int
	EdgeFetch  time.Duration // GET /v1/routes, decoded
	EdgeBuild  time.Duration // edge.RouteForSite for each site + edge.NewTable
	EdgeHeap   int64         // heap the table keeps, bytes
	EdgePeak   int64         // heap growth while fetching and building, bytes

	Changes         int
	Fanout          summary       // PATCH answered → owning agent sees the change
	CPUPerChange    time.Duration // server utime+stime / change; 0: not measured
	WakeupsPerChage float64       // agent watch responses carrying changes / change
	Watchers        int           // long polls open during the fan-out phase

	Scrape       summary // GET /metrics of the control plane (scrape.go)
	ScrapeBytes  int
	ScrapeSeries int
}

func rate(n int, d time.Duration) string {
	if d <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.0f/s", float64(n)/d.Seconds())
}

// ms formats d in milliseconds with a precision that suits its size.
func ms(d time.Duration) string {
	f := float64(d) / float64(time.Millisecond)
	switch {
	case f < 10:
		return fmt.Sprintf("%.2f ms", f)
	case f < 1000:
		return fmt.Sprintf("%.1f ms", f)
	default:
		return fmt.Sprintf("%.0f ms", f)
	}
}

func secs(d time.Duration) string { return fmt.Sprintf("%.1f s", d.Seconds()) }

func mib(b int64) string {
	if b <= 0 {
		return "n/a"
	}
	return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20))
}

func p50p99(s summary) string {
	if s.N == 0 {
		return "n/a"
	}
	return ms(s.P50) + " / " + ms(s.P99)
}

// verdict is PASS when got ≤ limit, MISS otherwise, "" when not measured.
func verdict[T int64 | time.Duration](got, limit T, measured bool) string {
	switch {
	case !measured:
		return ""
	case got <= limit:
		return "PASS"
	default:
		return "MISS"
	}
}

// rows returns the report of one run: figure, value, target, verdict.
func (f *figures) rows() benchplatform.Table {
	perSite := time.Duration(0)
	if n := f.Sites - f.Seeded; n > 0 {
		perSite = f.PlacedWall / time.Duration(n)
	}
	errs := func(s summary) string {
		if s.Errors == 0 {
			return ""
		}
		return fmt.Sprintf(" (%d errors)", s.Errors)
	}
	t := benchplatform.Table{
		{fmt.Sprintf("store %s: %d sites, %d simulated + %d real shards", f.Store, f.Sites, f.SimShards, f.RealShards), "value", "target", ""},
		{"setup (tokens, register, first heartbeat)", secs(f.Setup), "", ""},
		{"sites created through the API" + errs(f.Create), fmt.Sprintf("%d in %s (%s)", f.Create.N, secs(f.CreateWall), rate(f.Create.N, f.CreateWall)), "", ""},
	}
	if f.Seeded > 0 {
		seedPer := f.SeedPlace / time.Duration(f.Seeded)
		t = append(t,
			[]string{"sites seeded into the store (-seed)", fmt.Sprint(f.Seeded), "", ""},
			[]string{"seeded: sites placed per second (leader alone)", rate(f.Seeded, f.SeedPlace), "", ""},
			[]string{"seeded: placement time per site", ms(seedPer), "< " + ms(targetPlacePerSite), verdict(seedPer, targetPlacePerSite, true)},
		)
	}
	t = append(t, benchplatform.Table{
		{"API-created: sites placed per second", rate(f.Sites-f.Seeded, f.PlacedWall), "", ""},
		{"API-created: placement time per site (wall / sites)", ms(perSite), "< " + ms(targetPlacePerSite), verdict(perSite, targetPlacePerSite, f.PlacedWall > 0)},
		{"placement latency p50 / p99 (create → agent's watch has it)", p50p99(f.Delivery), "p99 < " + ms(targetDeliveryP99), verdict(f.Delivery.P99, targetDeliveryP99, f.Delivery.N > 0)},
		{"placement latency p50 / p99 (create → agent's converge takes it up)", p50p99(f.PlaceLatency), "", ""},
		{"API create p50 / p99" + errs(f.Create), p50p99(f.Create), "p99 < " + ms(targetAPIP99), verdict(f.Create.P99, targetAPIP99, f.Create.N > 0)},
	}...)
	if f.RateCreates > 0 {
		t = append(t, benchplatform.Table{
			{fmt.Sprintf("open loop: %d creates at %d/s%s", f.RateCreate.N, f.RateCreates, errs(f.RateCreate)), fmt.Sprintf("in %s (%s)", secs(f.RateWall), rate(f.RateCreate.N, f.RateWall)), "", ""},
			{fmt.Sprintf("open loop at %d/s: API create p50 / p99", f.RateCreates), p50p99(f.RateCreate), "p99 < " + ms(targetAPIP99), verdict(f.RateCreate.P99, targetAPIP99, f.RateCreate.N > 0)},
			{fmt.Sprintf("open loop at %d/s: create → agent's watch has it", f.RateCreates), p50p99(f.RateDelivery), "p99 < " + ms(targetDeliveryP99), verdict(f.RateDelivery.P99, targetDeliveryP99, f.RateDelivery.N > 0)},
		}...)
	}
	t = append(t, benchplatform.Table{
		{"API get p50 / p99" + errs(f.Get), p50p99(f.Get), "p99 < " + ms(targetAPIP99), verdict(f.Get.P99, targetAPIP99, f.Get.N > 0)},
		{fmt.Sprintf("API list p50 / p99 (%d pages, %d sites)%s", f.List.N, f.ListSites, errs(f.List)), p50p99(f.List), "p99 < " + ms(targetAPIP99), verdict(f.List.P99, targetAPIP99, f.List.N > 0)},
		{fmt.Sprintf("all agents converged (%d sites Ready)", f.Sites), secs(f.Converge), "", ""},
		{"server CPU per API-created site (first create → all Ready)", cpu(f.CPUPerCreate, f.Create.N), "", ""},
		{"control plane memory VmRSS / VmHWM", mib(f.ServerRSS) + " / " + mib(f.ServerHWM), "", ""},
		{"edge: fetch GET /v1/routes", ms(f.EdgeFetch), "< " + ms(targetRoutesFetch), verdict(f.EdgeFetch, targetRoutesFetch, f.EdgeRoutes > 0)},
		{fmt.Sprintf("edge: build table (%d routes)", f.EdgeRoutes), ms(f.EdgeBuild), "", ""},
		{"edge: table heap (kept) / peak growth", mib(f.EdgeHeap) + " / " + mib(f.EdgePeak), "peak < " + mib(targetRoutesHeap), verdict(f.EdgePeak, targetRoutesHeap, f.EdgeRoutes > 0)},
		{fmt.Sprintf("watch fan-out p50 / p99 (%d changes, %d long polls)%s", f.Fanout.N, f.Watchers, errs(f.Fanout)), p50p99(f.Fanout), "", ""},
		{"watch fan-out: server CPU per change", cpu(f.CPUPerChange, f.Changes), "", ""},
		{"watch fan-out: agent wake-ups per change", fmt.Sprintf("%.2f", f.WakeupsPerChage), "", ""},
		{fmt.Sprintf("control plane /metrics: scrape p50 / max (%d scrapes)%s", f.Scrape.N, errs(f.Scrape)), ms(f.Scrape.P50) + " / " + ms(f.Scrape.Max), "", ""},
		{"control plane /metrics: size, series", fmt.Sprintf("%s, %d", kib(f.ScrapeBytes), f.ScrapeSeries), "", ""},
	}...)
	return t
}

func kib(n int) string { return fmt.Sprintf("%.1f KiB", float64(n)/1024) }

func cpu(d time.Duration, changes int) string {
	if changes == 0 || d <= 0 {
		return "n/a"
	}
	return ms(d)
}

// printReport writes one table per run.
func printReport(w io.Writer, runs []*figures) {
	for i, f := range runs {
		if i > 0 {
			fmt.Fprintln(w)
		}
		f.rows().Print(w)
	}
}
