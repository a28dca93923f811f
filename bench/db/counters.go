package main

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/aipress/aipress/internal/apiclient"
)

// poolerCounters are the pooler's counters (aipress_pooler_*_total, summed
// over their labels) read from the platform's /metrics: how its statements
// found their backends (lingering, put back at the end of a turn, taken
// over from another site, queued at the server's limit…), which says where
// its CPU and latency go.
var poolerCounters = []string{"queries", "reclaimed", "turns_ended", "changed_user", "queued", "linger_cut", "overflowed", "dialed", "queue_wait_seconds"}

// readPoolerCounters reads poolerCounters from the API's /metrics.
func readPoolerCounters(ctx context.Context, dataDir string) (map[string]float64, error) {
	cfg, err := apiclient.ReadConfig(dataDir)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimSuffix(cfg.URL, "/")+"/metrics", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+cfg.Token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("metrics: %s", resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "aipress_pooler_") {
			continue
		}
		name, rest, _ := strings.Cut(strings.TrimPrefix(line, "aipress_pooler_"), " ")
		name, _, _ = strings.Cut(name, "{")
		if l := strings.Fields(rest); strings.HasSuffix(name, "_total") && len(l) > 0 {
			if v, err := strconv.ParseFloat(l[0], 64); err == nil {
				out[strings.TrimSuffix(name, "_total")] += v
			}
		}
	}
	return out, sc.Err()
}
