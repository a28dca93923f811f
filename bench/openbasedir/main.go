// Command openbasedir measures what PHP's open_basedir costs a WordPress
// site on this machine, to decide whether per-site pools should set it
// (design.md reports PHP 1.5–2× slower with it: the realpath cache is nearly
// disabled under open_basedir).
//
// It starts the real platform (`bin/aipress up`) in a temporary directory
// on loopback ports, creates one site, and measures warm `GET /` latency
// through the edge (past its page cache) with the pool as AIPress writes it, then with
// `php_admin_value[open_basedir]` limited to the site's directory, the shared
// core and the system directories the core's symlinks reach, alternating
// the two configurations for -rounds rounds. After each reload of the pool
// it waits until a probe script it put in the docroot answers the new
// open_basedir (the workers run the new configuration), then warms up.
//
//	make build && go run ./bench/openbasedir [-requests 200] [-rounds 2]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aipress/aipress/bench/internal/benchplatform"
	"github.com/aipress/aipress/internal/apiclient"
	"github.com/aipress/aipress/internal/shard"
)

func main() {
	bin := flag.String("bin", "bin/aipress", "aipress binary")
	requests := flag.Int("requests", 200, "measured requests per configuration and round")
	rounds := flag.Int("rounds", 2, "alternations of the two configurations")
	flag.Parse()
	if err := run(*bin, *requests, *rounds); err != nil {
		fmt.Fprintln(os.Stderr, "openbasedir:", err)
		os.Exit(1)
	}
}

func run(bin string, requests, rounds int) (err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	p, err := benchplatform.Start(bin, benchplatform.Options{TempPrefix: "aipress-openbasedir-", Extra: []string{"--rate-ip", "0", "--rate-site", "0"}})
	if err != nil {
		return err
	}
	defer func() { p.Finish(false, err != nil) }()
	client, err := p.Ready(ctx)
	if err != nil {
		return err
	}
	data, edgeAddr := p.DataDir, p.Edge
	const domain = "obd.localhost"
	if _, err := client.CreateSite(ctx, apiclient.CreateSiteRequest{Domain: domain, Title: "open_basedir", AdminEmail: "a@example.com"}); err != nil {
		return err
	}
	hc := &http.Client{Timeout: 30 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	// getPath sends GET path past the page cache (this measures PHP) and
	// returns the time to the whole body, and the body.
	getPath := func(path string) (time.Duration, []byte, error) {
		req, _ := http.NewRequestWithContext(ctx, "GET", "http://"+edgeAddr+path, nil)
		req.Host = domain
		req.Header.Set("Cookie", "wordpress_no_cache=1")
		start := time.Now()
		resp, err := hc.Do(req)
		if err != nil {
			return 0, nil, err
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		d := time.Since(start)
		if err != nil {
			return 0, nil, err
		}
		if resp.StatusCode != 200 {
			return 0, nil, fmt.Errorf("GET %s = %d", path, resp.StatusCode)
		}
		if x := resp.Header.Get("X-Cache"); x != "BYPASS" {
			return 0, nil, fmt.Errorf("GET %s X-Cache = %q, want BYPASS: the benchmark must reach PHP", path, x)
		}
		return d, body, nil
	}
	get := func() (time.Duration, error) {
		d, _, err := getPath("/")
		return d, err
	}
	for deadline := time.Now().Add(2 * time.Minute); ; {
		if _, err := get(); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("site never served")
		}
		time.Sleep(100 * time.Millisecond)
	}
	s, err := client.GetSite(ctx, domain)
	if err != nil {
		return err
	}
	shardDir := filepath.Join(data, "shards", "local")
	poolName := "wp_" + shard.SiteID(s.Metadata.UID)
	poolFile := filepath.Join(shardDir, "php", "pool.d", poolName+".conf")
	orig, err := os.ReadFile(poolFile)
	if err != nil {
		return err
	}
	siteDir := filepath.Dir(s.Status.Docroot)
	cores := filepath.Join(shardDir, "cores")
	// Where the core's symlinks lead (Debian links WordPress to shared PHP
	// and JavaScript libraries), plus the site and the core themselves.
	basedir := strings.Join([]string{siteDir, cores, "/usr/share/php", "/usr/share/javascript", "/usr/share/fonts", "/etc/ssl/certs", "/etc/wordpress"}, ":")
	withOBD := append(slices.Clone(orig), []byte("php_admin_value[open_basedir] = "+basedir+"\n")...)

	// A probe in the docroot answers the pool's open_basedir: a reload is
	// done once the pool's workers answer with the new value.
	const probePath = "/aipress-bench-open-basedir.php"
	probe := filepath.Join(s.Status.Docroot, probePath)
	if err := os.WriteFile(probe, []byte("<?php echo ini_get('open_basedir');\n"), 0o644); err != nil {
		return err
	}
	defer os.Remove(probe)

	reload := func(conf []byte, want string) error {
		if err := os.WriteFile(poolFile, conf, 0o644); err != nil {
			return err
		}
		b, err := os.ReadFile(filepath.Join(shardDir, "php", "supervised.pid"))
		if err != nil {
			return err
		}
		pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		if err := syscall.Kill(pid, syscall.SIGUSR2); err != nil {
			return err
		}
		var got string
		err = p.Poll(ctx, time.Minute, 100*time.Millisecond, "waiting for the pool to reload", func() (bool, error) {
			_, body, err := getPath(probePath)
			got = strings.TrimSpace(string(body))
			return err == nil && got == want, err
		})
		if err != nil {
			return fmt.Errorf("%w (open_basedir %q, want %q)", err, got, want)
		}
		for i := 0; i < 20; i++ { // warm OPcache and the worker
			if _, err := get(); err != nil {
				return err
			}
		}
		return nil
	}
	measure := func() ([]time.Duration, error) {
		var ds []time.Duration
		for i := 0; i < requests; i++ {
			d, err := get()
			if err != nil {
				return nil, err
			}
			ds = append(ds, d)
		}
		return ds, nil
	}
	results := map[string][]time.Duration{}
	for r := 0; r < rounds; r++ {
		for _, c := range []struct {
			name    string
			conf    []byte
			basedir string
		}{{"without open_basedir", orig, ""}, {"with open_basedir", withOBD, basedir}} {
			if err := reload(c.conf, c.basedir); err != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
			ds, err := measure()
			if err != nil {
				return fmt.Errorf("%s: %w", c.name, err)
			}
			results[c.name] = append(results[c.name], ds...)
		}
	}
	if err := os.WriteFile(poolFile, orig, 0o644); err != nil {
		return err
	}
	pct := func(ds []time.Duration, q float64) float64 {
		s := slices.Clone(ds)
		slices.Sort(s)
		return float64(s[int(q*float64(len(s)-1))].Microseconds()) / 1000
	}
	mean := func(ds []time.Duration) float64 {
		var t time.Duration
		for _, d := range ds {
			t += d
		}
		return float64(t.Microseconds()) / 1000 / float64(len(ds))
	}
	without, with := results["without open_basedir"], results["with open_basedir"]
	fmt.Printf("open_basedir cost on a warm WordPress home page (%d requests × %d rounds, sequential, through the edge)\n\n", requests, rounds)
	fmt.Printf("%-22s %9s %9s %9s\n", "pool", "mean ms", "p50 ms", "p95 ms")
	fmt.Printf("%-22s %9.1f %9.1f %9.1f\n", "without open_basedir", mean(without), pct(without, .5), pct(without, .95))
	fmt.Printf("%-22s %9.1f %9.1f %9.1f\n", "with open_basedir", mean(with), pct(with, .5), pct(with, .95))
	fmt.Printf("\nratio with/without (mean): %.2f×\nopen_basedir = %s\n", mean(with)/mean(without), basedir)
	out, _ := json.Marshal(map[string]float64{"without_mean_ms": mean(without), "with_mean_ms": mean(with)})
	fmt.Printf("json: %s\n", out)
	return nil
}
