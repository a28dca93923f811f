package main

import (
	"fmt"
	"io"
	"time"

	"github.com/aipress/aipress/internal/site"
)

// The create path's steps, as the harness splits a site's time to first
// 200. The shard's steps come from the site's status (site.Provision,
// recorded by the shard as it converged the site); the rest from the
// harness's own clock and the status's timestamps (one machine, one
// clock).
const (
	stepCall    = "create API call (API + placement)"
	stepWake    = "agent wake-up (created → shard converging)"
	stepServe   = "Ready → first 200 (status write, route publication, first request)"
	stepRoute   = "  Ready → route published (the first GET / that reached PHP was sent; 5 ms polls)"
	stepFirst   = "  first request (a new worker; after the pool's reload unless a spare pool was claimed)"
	stepPool    = "pool start (beside database, files, install)"
	stepPrefix  = "shard: "
	stepTotal   = "total: time to first 200"
	methodField = "install method"
)

// StepFigure is one step's p50 and p95 over the sites.
type StepFigure struct {
	Step string  `json:"step"`
	P50  float64 `json:"p50_ms"`
	P95  float64 `json:"p95_ms"`
	N    int     `json:"n"`
}

// stepTimes gathers every site's step durations, in first-seen order.
type stepTimes struct {
	order   []string
	d       map[string][]time.Duration
	methods map[string]int
	pools   map[string]int // how the pools started (site.Provision.Pool)
}

func (s *stepTimes) add(step string, d time.Duration) {
	if s.d == nil {
		s.d = map[string][]time.Duration{}
	}
	if _, ok := s.d[step]; !ok {
		s.order = append(s.order, step)
	}
	s.d[step] = append(s.d[step], d)
}

func msDur(v float64) time.Duration { return time.Duration(v * float64(time.Millisecond)) }

// record splits one site's time to first 200: t0 when the create call was
// sent, call its duration, sent when the GET / that answered 200 was sent
// (the polls before it got the edge's answer for a host it has no route
// for), served when it answered, st the
// site as the API gave it after that. A site whose status has no
// provisioning record (a binary from before status.provision) is counted
// under the method "(no record)", with the total and the API call only.
func (s *stepTimes) record(t0 time.Time, call time.Duration, sent, served time.Time, st *site.Site) error {
	p := st.Status.Provision
	ready := st.Status.Condition("Serving")
	if p == nil || ready == nil {
		if s.methods == nil {
			s.methods = map[string]int{}
		}
		s.methods["(no record)"]++
		s.add(stepTotal, served.Sub(t0))
		s.add(stepCall, call)
		return nil
	}
	if s.methods == nil {
		s.methods = map[string]int{}
	}
	s.methods[p.Method]++
	if s.pools == nil {
		s.pools = map[string]int{}
	}
	if p.Pool != "" {
		s.pools[p.Pool]++
	}
	s.add(stepTotal, served.Sub(t0))
	s.add(stepCall, call)
	s.add(stepWake, p.Seen.Sub(st.Metadata.CreatedAt))
	for _, x := range p.Steps {
		s.add(stepPrefix+x.Step, msDur(x.Ms))
	}
	s.add(stepServe, served.Sub(ready.LastTransitionTime))
	s.add(stepRoute, max(0, sent.Sub(ready.LastTransitionTime)))
	s.add(stepFirst, served.Sub(sent))
	s.add(stepPool, msDur(p.PoolStartMs))
	return nil
}

// figures is each step's p50/p95.
func (s *stepTimes) figures() []StepFigure {
	var out []StepFigure
	for _, k := range s.order {
		v := s.d[k]
		out = append(out, StepFigure{Step: k, P50: ms(percentile(v, 50)), P95: ms(percentile(v, 95)), N: len(v)})
	}
	return out
}

// printSteps prints the step breakdown table.
func printSteps(w io.Writer, r *Result) {
	if len(r.Steps) == 0 {
		return
	}
	t := table{{"Create path, step by step", "p50", "p95"}}
	for _, f := range r.Steps {
		t = append(t, []string{f.Step, fmt.Sprintf("%.1f ms", f.P50), fmt.Sprintf("%.1f ms", f.P95)})
	}
	t.Print(w)
	fmt.Fprintf(w, "%s: %v; pool: %v (spare: made ahead, no reload); steps in order, p50s need not add up to the total's p50; pool start runs beside database, files and install\n\n", methodField, r.InstallMethods, r.PoolStarts)
}
