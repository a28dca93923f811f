package main

import (
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/aipress/aipress/bench/internal/benchplatform"
)

// Result holds every figure of a run; latencies in milliseconds, times in
// seconds.
type Result struct {
	Sites         int            `json:"sites"`
	Load          string         `json:"load"`
	Threads       int            `json:"wrk_threads"`
	Connections   int            `json:"wrk_connections"`
	Every         int            `json:"one_comment_in"`
	DurationSecs  float64        `json:"duration_seconds"`
	WarmupSecs    float64        `json:"warmup_seconds"`
	LoadAvgBefore string         `json:"loadavg_before"`
	LoadAvgAfter  string         `json:"loadavg_after"`
	Dir           string         `json:"dir"`
	Configs       []ConfigResult `json:"configs"`
	Goals         []Goal         `json:"goals"`
	// AnchorRuns is how many runs of the anchor the goals' figures average.
	AnchorRuns int `json:"anchor_runs"`
	// Info: the pooler's goals measured on configurations they are not
	// goals for (a replica on the shard's own cores).
	Info []Goal `json:"for_information,omitempty"`
	// Runs: the req/s and p99 goals of each run of a configuration that
	// ran more than once (its goals are judged on the mean of its runs).
	Runs []Goal `json:"runs,omitempty"`
}

// ConfigResult is one configuration's measured run.
type ConfigResult struct {
	Name     string `json:"name"`
	Flags    string `json:"flags"`
	DBHost   string `json:"wp_config_db_host"`
	Replicas int    `json:"replicas_measured"`

	Requests     int64            `json:"requests"`
	Secs         float64          `json:"seconds"`
	ReqPerSec    float64          `json:"requests_per_second"`
	P50Ms        float64          `json:"latency_p50_ms"`
	P99Ms        float64          `json:"latency_p99_ms"`
	Failed       int64            `json:"failed_over_399"`
	Statuses     map[string]int64 `json:"failed_statuses,omitempty"`
	FirstFailure string           `json:"first_failure,omitempty"`
	SocketErrors int64            `json:"socket_errors"`
	CommentsSent int64            `json:"comments_sent"`
	CommentsOK   int64            `json:"comments_accepted"`

	Samples            int     `json:"samples"`
	BackendPeak        int     `json:"backend_connections_peak"`
	BackendMean        float64 `json:"backend_connections_mean"`
	ActivePeak         int     `json:"backend_active_peak"`
	ActiveMean         float64 `json:"backend_active_mean"`
	ThreadsPeak        int     `json:"threads_connected_peak"`
	ThreadsMean        float64 `json:"threads_connected_mean"`
	ReplicaBackendPeak int     `json:"replica_backend_connections_peak"`
	ReplicaBackendMean float64 `json:"replica_backend_connections_mean"`

	PrimarySelects         int64   `json:"primary_com_select"`
	PrimaryQuestions       int64   `json:"primary_questions"`
	PrimaryWrites          int64   `json:"primary_com_insert_update_delete"`
	PrimaryConnects        int64   `json:"primary_connections_made"`
	PrimarySelectsPerReq   float64 `json:"primary_selects_per_request"`
	PrimaryQuestionsPerReq float64 `json:"primary_questions_per_request"`
	// SetOptionPerReq is the primary's Com_set_option (SET statements,
	// the pooler's state replays among them) per request. (MariaDB counts
	// no Com_ for COM_CHANGE_USER: the pooler's changed_user does.)
	SetOptionPerReq      float64 `json:"primary_set_option_per_request"`
	ReplicaSelects       int64   `json:"replica_com_select"`
	ReplicaQuestions     int64   `json:"replica_questions"`
	ReplicaSelectsPerReq float64 `json:"replica_selects_per_request"`

	// CPUMsPerReq is the CPU time of the platform's processes (aipress,
	// MariaDB, php-fpm) per request during the measured run: what the
	// configuration costs whatever else the machine runs.
	CPUMsPerReq float64 `json:"cpu_ms_per_request"`
	// The same for aipress (edge, WAF, pooler…), MariaDB and php-fpm
	// (masters and workers) alone; the rest is other processes below
	// aipress up.
	CPUAipressMs float64 `json:"cpu_ms_per_request_aipress"`
	CPUMariaDBMs float64 `json:"cpu_ms_per_request_mariadb"`
	CPUPHPMs     float64 `json:"cpu_ms_per_request_php"`

	// PoolerPerReq: the pooler's counters (poolerCounters) per request
	// during the measured run: its statements, and how many found their
	// backend lingering, took over another site's, queued at the
	// server's limit, opened one beyond it, dialled one; and how long the
	// queued ones waited (queue_wait_seconds).
	PoolerPerReq map[string]float64 `json:"pooler_counters_per_request,omitempty"`

	LoadAvg string `json:"loadavg_1m_before_after"`
	Profile string `json:"cpu_profile,omitempty"`
}

// Goal is one goal of one configuration against the anchor.
type Goal struct {
	Config string  `json:"config"`
	Goal   string  `json:"goal"`
	Ratio  float64 `json:"ratio"`
	Met    bool    `json:"met"`
}

// goals against the anchor (the first configuration): what, the ratio of
// a configuration's figure to the anchor's, whether the ratio meets it, and
// whether it applies to the configuration. The goals: backend
// connections ≤ 40 %, req/s ≥ 0.95× and p99 ≤ 1.1× of direct for the
// pooler; with a replica, primary read load down by ≥ 50 %. A replica's
// req/s and p99 are printed for information, not as goals: here it is a
// second mariadbd on the shard's own cores, which it can only share.
var goals = []struct {
	name    string
	ratio   func(c, anchor *ConfigResult) float64
	met     func(r float64) bool
	applies func(c *ConfigResult) bool
}{
	{"backend connections (peak) ≤ 40 % of direct",
		func(c, a *ConfigResult) float64 { return ratio(float64(c.BackendPeak), float64(a.BackendPeak)) },
		func(r float64) bool { return r <= 0.40 }, func(*ConfigResult) bool { return true }},
	{"backend connections (mean) ≤ 40 % of direct",
		func(c, a *ConfigResult) float64 { return ratio(c.BackendMean, a.BackendMean) },
		func(r float64) bool { return r <= 0.40 }, func(*ConfigResult) bool { return true }},
	{"req/s ≥ 0.95× direct",
		func(c, a *ConfigResult) float64 { return ratio(c.ReqPerSec, a.ReqPerSec) },
		func(r float64) bool { return r >= 0.95 }, func(c *ConfigResult) bool { return c.Replicas == 0 }},
	{"p99 ≤ 1.1× direct",
		func(c, a *ConfigResult) float64 { return ratio(c.P99Ms, a.P99Ms) },
		func(r float64) bool { return r <= 1.1 }, func(c *ConfigResult) bool { return c.Replicas == 0 }},
	{"primary SELECTs/request ≤ 50 % of direct",
		func(c, a *ConfigResult) float64 { return ratio(c.PrimarySelectsPerReq, a.PrimarySelectsPerReq) },
		func(r float64) bool { return r <= 0.5 }, func(c *ConfigResult) bool { return c.Replicas > 0 }},
}

// ratio is a/b, or NaN-free 0 when b is 0 and +Inf-free: a missing anchor
// figure gives a ratio of -1, which no goal accepts.
func ratio(a, b float64) float64 {
	if b == 0 {
		return -1
	}
	return a / b
}

// evaluate fills r.Goals from r.Configs. The first is the anchor. A
// configuration that ran more than once (-configs
// direct,pooler,direct,pooler,…: on a shared machine a run's req/s moves
// by 10–40 % from one minute to the next, with the host's load, whatever
// the configuration) is judged on the mean of its runs, the anchor's
// repeats are not judged at all, and each run's req/s and p99 against the
// anchor's mean are listed in r.Runs for information.
func (r *Result) evaluate() {
	r.Goals, r.Info, r.Runs, r.AnchorRuns = nil, nil, nil, 0
	if len(r.Configs) < 2 {
		return
	}
	anchor, n := r.mean(r.Configs[0].Name)
	r.AnchorRuns = n
	var names []string
	for _, c := range r.Configs[1:] {
		if c.Name != anchor.Name && !slices.Contains(names, c.Name) {
			names = append(names, c.Name)
		}
	}
	for _, name := range names {
		c, runs := r.mean(name)
		label := name
		if runs > 1 {
			label = fmt.Sprintf("%s (mean of %d)", name, runs)
		}
		for _, g := range goals {
			v := g.ratio(&c, &anchor)
			if !g.applies(&c) {
				if c.Replicas > 0 && !strings.HasPrefix(g.name, "primary") {
					r.Info = append(r.Info, Goal{Config: label, Goal: g.name, Ratio: v, Met: v >= 0 && g.met(v)})
				}
				continue
			}
			r.Goals = append(r.Goals, Goal{Config: label, Goal: g.name, Ratio: v, Met: v >= 0 && g.met(v)})
		}
		if runs < 2 || c.Replicas > 0 {
			continue
		}
		k := 0
		for i := range r.Configs {
			one := &r.Configs[i]
			if one.Name != name {
				continue
			}
			k++
			for _, g := range goals {
				if g.applies(one) && (strings.HasPrefix(g.name, "req/s") || strings.HasPrefix(g.name, "p99")) {
					v := g.ratio(one, &anchor)
					r.Runs = append(r.Runs, Goal{Config: fmt.Sprintf("%s (run %d of %d)", name, k, runs), Goal: g.name, Ratio: v, Met: v >= 0 && g.met(v)})
				}
			}
		}
	}
}

// mean is the figures the goals use of the configuration name, averaged
// over its runs (n of them): req/s, p99, backend connections' mean and
// primary SELECTs per request by their mean; the backend connections'
// peak by the mean of the anchor's peaks (the first configuration's) and
// by the highest of another configuration's (its worst run).
func (r *Result) mean(name string) (ConfigResult, int) {
	var m ConfigResult
	n := 0
	var peak, mean, rps, p99, sel float64
	maxPeak := 0
	for _, c := range r.Configs {
		if c.Name != name {
			continue
		}
		if n == 0 {
			m = c
		}
		n++
		peak += float64(c.BackendPeak)
		maxPeak = max(maxPeak, c.BackendPeak)
		mean += c.BackendMean
		rps += c.ReqPerSec
		p99 += c.P99Ms
		sel += c.PrimarySelectsPerReq
	}
	if n > 1 {
		k := float64(n)
		m.BackendPeak = maxPeak
		if name == r.Configs[0].Name {
			m.BackendPeak = int(math.Round(peak / k))
		}
		m.BackendMean, m.ReqPerSec, m.P99Ms, m.PrimarySelectsPerReq = mean/k, rps/k, p99/k, sel/k
	}
	return m, n
}

// problem says why the run's figures cannot be trusted, or nil. A missed
// goal is not a problem: it is the benchmark's answer.
func (r *Result) problem() error {
	var errs []error
	if len(r.Configs) == 0 {
		errs = append(errs, errors.New("no configuration measured"))
	}
	for _, c := range r.Configs {
		if c.Requests == 0 || c.Samples == 0 {
			errs = append(errs, fmt.Errorf("%s: %d requests, %d samples", c.Name, c.Requests, c.Samples))
		}
		if c.Failed > 0 || c.SocketErrors > 0 {
			errs = append(errs, fmt.Errorf("%s: %d failed answers (%v), %d socket errors; first failure: %q", c.Name, c.Failed, c.Statuses, c.SocketErrors, c.FirstFailure))
		}
		// (Up to one comment per connection may be in flight when wrk
		// stops: on a busy machine a tiny run's only comments are.)
		if c.CommentsSent > int64(r.Connections) && c.CommentsOK == 0 {
			errs = append(errs, fmt.Errorf("%s: none of %d comments accepted", c.Name, c.CommentsSent))
		}
		if c.PrimarySelects <= 0 {
			errs = append(errs, fmt.Errorf("%s: the primary counted no SELECT", c.Name))
		}
	}
	return errors.Join(errs...)
}

func (r *Result) print(w io.Writer) {
	f := func(v float64, prec int) string { return strconv.FormatFloat(v, 'f', prec, 64) }
	fmt.Fprintf(w, "database tier: %d sites on one shard; %s per configuration after a %gs warm-up; 1 request in %d a comment, the rest home/post/search/archive, page cache bypassed\n",
		r.Sites, r.Load, r.WarmupSecs, r.Every)
	fmt.Fprintf(w, "load average before %s, after %s\n\n", r.LoadAvgBefore, r.LoadAvgAfter)
	t := benchplatform.Table{{"config", "req/s", "p50 ms", "p99 ms", "failed", "comments ok/sent",
		"backend peak", "backend mean", "active mean", "threads peak", "connects/req", "primary SELECT/req", "primary Questions/req", "replica SELECT/req", "CPU ms/req", "aipress/mariadb/php", "load 1m"}}
	for _, c := range r.Configs {
		failed := strconv.FormatInt(c.Failed+c.SocketErrors, 10)
		if len(c.Statuses) > 0 {
			var codes []string
			for k, n := range c.Statuses {
				codes = append(codes, k+"×"+strconv.FormatInt(n, 10))
			}
			slices.Sort(codes)
			failed += " (" + strings.Join(codes, ", ") + ")"
		}
		rep := "-"
		if c.Replicas > 0 {
			rep = f(c.ReplicaSelectsPerReq, 2)
		}
		t = append(t, []string{c.Name, f(c.ReqPerSec, 1), f(c.P50Ms, 1), f(c.P99Ms, 1), failed,
			fmt.Sprintf("%d/%d", c.CommentsOK, c.CommentsSent), strconv.Itoa(c.BackendPeak), f(c.BackendMean, 1),
			f(c.ActiveMean, 1), strconv.Itoa(c.ThreadsPeak), f(perReq(c.PrimaryConnects, c.Requests), 2), f(c.PrimarySelectsPerReq, 2), f(c.PrimaryQuestionsPerReq, 2), rep, f(c.CPUMsPerReq, 1),
			f(c.CPUAipressMs, 1) + "/" + f(c.CPUMariaDBMs, 1) + "/" + f(c.CPUPHPMs, 1), c.LoadAvg})
	}
	t.Print(w)
	for _, c := range r.Configs {
		fmt.Fprintf(w, "%s: primary's SETs (Com_set_option) per request: %s\n", c.Name, f(c.SetOptionPerReq, 2))
	}
	for _, c := range r.Configs {
		if c.PoolerPerReq == nil {
			continue
		}
		var parts []string
		for _, k := range poolerCounters {
			if k == "queue_wait_seconds" {
				parts = append(parts, "queue wait ms "+f(1000*c.PoolerPerReq[k], 1))
				continue
			}
			parts = append(parts, strings.ReplaceAll(k, "_", " ")+" "+f(c.PoolerPerReq[k], 2))
		}
		fmt.Fprintf(w, "%s: pooler statements per request: %s\n", c.Name, strings.Join(parts, ", "))
	}
	if len(r.Goals) > 0 {
		fmt.Fprintln(w)
		head := "goal (vs direct, same run)"
		if r.AnchorRuns > 1 {
			head = fmt.Sprintf("goal (vs the mean of the %d direct runs)", r.AnchorRuns)
		}
		g := benchplatform.Table{{head, "config", "figure", "result"}}
		for _, x := range r.Goals {
			res := "missed"
			if x.Met {
				res = "met"
			}
			g = append(g, []string{x.Goal, x.Config, figure(x), res})
		}
		for _, x := range r.Runs {
			res := "(one run; the goal is the mean's)"
			if !x.Met {
				res = "would miss " + res
			} else {
				res = "would meet " + res
			}
			g = append(g, []string{x.Goal, x.Config, figure(x), res})
		}
		for _, x := range r.Info {
			res := "(no goal: a local replica shares the shard's cores)"
			if !x.Met {
				res = "would miss " + res
			}
			g = append(g, []string{x.Goal, x.Config, figure(x), res})
		}
		g.Print(w)
	}
}

func perReq(n, requests int64) float64 {
	if requests == 0 {
		return 0
	}
	return float64(n) / float64(requests)
}

// figure spells a goal's ratio: a percentage for "≤ N %" goals, a factor
// for the others.
func figure(g Goal) string {
	if g.Ratio < 0 {
		return "n/a"
	}
	if strings.Contains(g.Goal, "%") {
		return strconv.FormatFloat(100*g.Ratio, 'f', 0, 64) + " %"
	}
	return strconv.FormatFloat(g.Ratio, 'f', 2, 64) + "×"
}
