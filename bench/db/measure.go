package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aipress/aipress/bench/internal/benchplatform"
	"github.com/aipress/aipress/internal/apiclient"
)

// statusNames are the counters read before and after the measured run.
var statusNames = []string{"Com_select", "Questions", "Com_insert", "Com_update", "Com_delete", "Connections", "Com_set_option"}

// measure checks that the platform runs configuration c, runs the warm-up
// and then the measured wrk load, sampling the servers meanwhile.
func measure(ctx context.Context, o options, p *benchplatform.Platform, hc *http.Client, wrkBin string, c config, run int, sites []siteLoad, tag, debugAddr string) (*ConfigResult, error) {
	cr := &ConfigResult{Name: c.Name, Flags: strings.Join(c.Flags, " ")}
	hosts, err := dbHosts(p.DataDir)
	if err != nil {
		return nil, err
	}
	cr.DBHost = strings.Join(hosts, ", ")
	viaPooler := len(hosts) == 1 && strings.Contains(hosts[0], "pooler")
	if viaPooler != c.Pooler {
		return nil, fmt.Errorf("wp-config DB_HOST is %q: want the pooler's socket %v", cr.DBHost, c.Pooler)
	}
	primary, replicas, err := findServers(ctx, p.DataDir)
	if err != nil {
		return nil, err
	}
	defer func() {
		primary.Close()
		for _, r := range replicas {
			r.Close()
		}
	}()
	if c.Replica && len(replicas) == 0 {
		return nil, fmt.Errorf("no replica MariaDB running (read_only server below %s)", p.DataDir)
	}
	if !c.Replica {
		for _, r := range replicas {
			r.Close()
		}
		replicas = nil
	}
	cr.Replicas = len(replicas)
	users, err := primary.siteUsers(ctx)
	if err != nil {
		return nil, err
	}
	if len(users) == 0 {
		return nil, fmt.Errorf("no site users on the primary")
	}

	// Two scripts, the same but for the comments' tag: a comment of the
	// warm-up must not make one of the measured run a duplicate.
	script := filepath.Join(p.Dir, "load-"+safeName(c.Name)+".lua")
	if err := writeScript(script, sites, o.every, tag+"m"); err != nil {
		return nil, err
	}
	warmScript := filepath.Join(p.Dir, "warmup-"+safeName(c.Name)+".lua")
	if err := writeScript(warmScript, sites, o.every, tag+"w"); err != nil {
		return nil, err
	}
	url := "http://" + p.Edge + "/"
	if o.warmup > 0 {
		logf("%s: warm-up, wrk %s", c.Name, strings.Join(wrkArgs(o.threads, o.connections, o.warmup, warmScript, url), " "))
		ws, _, err := runWrk(ctx, wrkBin, wrkArgs(o.threads, o.connections, o.warmup, warmScript, url))
		if err != nil {
			return nil, fmt.Errorf("warm-up: %w", err)
		}
		logf("%s: warm-up %d requests, %.1f req/s", c.Name, ws.Requests, float64(ws.Requests)/(ws.DurationUs/1e6))
	}

	before, err := primary.status(ctx, statusNames...)
	if err != nil {
		return nil, err
	}
	sentBefore := primary.Sent()
	var rBefore []map[string]int64
	var rSent []int64
	for _, r := range replicas {
		st, err := r.status(ctx, statusNames...)
		if err != nil {
			return nil, err
		}
		rBefore = append(rBefore, st)
		rSent = append(rSent, r.Sent())
	}
	var pc0 map[string]float64
	if c.Pooler {
		if pc0, err = readPoolerCounters(ctx, p.DataDir); err != nil {
			logf("%s: pooler counters: %v", c.Name, err)
		}
	}
	load1 := loadAvg1()
	samp := startSampling(ctx, o.interval, primary, replicas, users)
	var prof chan error
	if o.profile && c.Pooler && debugAddr != "" {
		prof = make(chan error, 1)
		secs := max(1, int(o.duration.Seconds())-2)
		path := filepath.Join(p.Dir, fmt.Sprintf("cpu-%d-%s.pprof", run, safeName(c.Name)))
		go func() { prof <- cpuProfile(ctx, p.DataDir, debugAddr, secs, path) }()
		cr.Profile = path
	}
	args := wrkArgs(o.threads, o.connections, o.duration, script, url)
	logf("%s: measuring, wrk %s", c.Name, strings.Join(args, " "))
	cpu0, cerr := benchplatform.TreeCPUByName(p.PID())
	start := time.Now()
	ws, out, werr := runWrk(ctx, wrkBin, args)
	elapsed := time.Since(start)
	cpu1, cerr1 := benchplatform.TreeCPUByName(p.PID())
	serr := samp.stop()
	cr.LoadAvg = load1 + "→" + loadAvg1()
	if werr != nil {
		return nil, werr
	}
	if serr != nil {
		return nil, fmt.Errorf("sampling: %w", serr)
	}
	if err := errors.Join(cerr, cerr1); err != nil {
		return nil, err
	}
	if prof != nil {
		if err := <-prof; err != nil {
			return nil, fmt.Errorf("profile: %w", err)
		}
	}
	_ = os.WriteFile(filepath.Join(p.Dir, "wrk-"+safeName(c.Name)+".out"), []byte(out), 0o644)
	sentDuring := primary.Sent() - sentBefore
	if pc0 != nil && ws.Requests > 0 {
		if pc1, err := readPoolerCounters(ctx, p.DataDir); err != nil {
			logf("%s: pooler counters: %v", c.Name, err)
		} else {
			cr.PoolerPerReq = map[string]float64{}
			for _, k := range poolerCounters {
				cr.PoolerPerReq[k] = (pc1[k] - pc0[k]) / float64(ws.Requests)
			}
		}
	}
	after, err := primary.status(ctx, statusNames...)
	if err != nil {
		return nil, err
	}
	for i, r := range replicas {
		sent := r.Sent() - rSent[i]
		st, err := r.status(ctx, statusNames...)
		if err != nil {
			return nil, err
		}
		cr.ReplicaSelects += st["Com_select"] - rBefore[i]["Com_select"]
		cr.ReplicaQuestions += st["Questions"] - rBefore[i]["Questions"] - sent - 1
	}
	cr.Requests, cr.Secs = ws.Requests, ws.DurationUs/1e6
	if cr.Secs > 0 {
		cr.ReqPerSec = float64(ws.Requests) / cr.Secs
	}
	cr.P50Ms, cr.P99Ms = ws.P50Us/1000, ws.P99Us/1000
	cr.Failed, cr.Statuses, cr.FirstFailure = ws.Failed, ws.Statuses, ws.FirstFailure
	cr.SocketErrors = ws.SocketErrors()
	cr.CommentsSent, cr.CommentsOK = ws.CommentsSent, ws.CommentsOK
	cr.BackendPeak, cr.BackendMean, cr.Samples = samp.Backend.Peak, samp.Backend.Mean(), samp.Backend.N
	cr.ActivePeak, cr.ActiveMean = samp.Active.Peak, samp.Active.Mean()
	cr.ThreadsPeak, cr.ThreadsMean = samp.Threads.Peak, samp.Threads.Mean()
	cr.ReplicaBackendPeak, cr.ReplicaBackendMean = samp.Replica.Peak, samp.Replica.Mean()
	cr.PrimarySelects = after["Com_select"] - before["Com_select"]
	cr.PrimaryWrites = after["Com_insert"] + after["Com_update"] + after["Com_delete"] - before["Com_insert"] - before["Com_update"] - before["Com_delete"]
	// Questions counts the measuring connection's own statements too
	// (those between the two readings and the second reading itself).
	cr.PrimaryQuestions = after["Questions"] - before["Questions"] - sentDuring - 1
	cr.PrimaryConnects = after["Connections"] - before["Connections"]
	if ws.Requests > 0 {
		n := float64(ws.Requests)
		cr.PrimarySelectsPerReq = float64(cr.PrimarySelects) / n
		cr.PrimaryQuestionsPerReq = float64(cr.PrimaryQuestions) / n
		cr.SetOptionPerReq = float64(after["Com_set_option"]-before["Com_set_option"]) / n
		cr.ReplicaSelectsPerReq = float64(cr.ReplicaSelects) / n
		for name, d := range cpu1 {
			ms := float64((d-cpu0[name])/time.Microsecond) / 1000 / n
			cr.CPUMsPerReq += ms
			switch {
			case name == "aipress":
				cr.CPUAipressMs += ms
			case name == "mariadbd":
				cr.CPUMariaDBMs += ms
			case strings.HasPrefix(name, "php-fpm"):
				cr.CPUPHPMs += ms
			}
		}
	}
	logf("%s: %d requests in %v (%.1f req/s, p99 %.0f ms), backend conns peak %d mean %.1f (%d samples), primary SELECTs/request %.2f",
		c.Name, ws.Requests, elapsed.Round(time.Millisecond), cr.ReqPerSec, cr.P99Ms, cr.BackendPeak, cr.BackendMean, cr.Samples, cr.PrimarySelectsPerReq)
	return cr, nil
}

// loadAvg1 is the 1-minute load average ("?" when unknown): the machine is
// shared, the report says how busy it was.
func loadAvg1() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) > 0 {
		return f[0]
	}
	return "?"
}

// cpuProfile fetches a CPU profile of the aipress process (its shards and
// their poolers run in it) from its pprof listener, with the admin token
// of the data directory's client.json, into path.
func cpuProfile(ctx context.Context, dataDir, debugAddr string, secs int, path string) error {
	cfg, err := apiclient.ReadConfig(dataDir)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", debugAddr, secs), nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+cfg.Token)
	resp, err := (&http.Client{Timeout: time.Duration(secs+60) * time.Second}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("pprof: HTTP %d", resp.StatusCode)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := f.ReadFrom(resp.Body); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
