package main

import (
	"bufio"
	"context"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// wrkResult is what one wrk run reported.
type wrkResult struct {
	ReqPerSec float64
	P50, P99  time.Duration
	Requests  int64
	// Non2xx3xx counts responses that were neither 2xx nor 3xx; Errors is
	// the sum of socket errors (connect, read, write, timeout).
	Non2xx3xx int64
	Errors    int64
}

// wrkArgs are the arguments of one wrk run.
func wrkArgs(threads, conns int, d time.Duration, headers []string, url string) []string {
	args := []string{"-t" + strconv.Itoa(threads), "-c" + strconv.Itoa(conns),
		"-d" + strconv.Itoa(max(1, int(d.Round(time.Second)/time.Second))) + "s", "--latency",
		// PHP behind a queue of 32 connections can take longer than wrk's
		// default 2 s; a timed-out request would be missing from the
		// latency figures.
		"--timeout", "30s"}
	for _, h := range headers {
		args = append(args, "-H", h)
	}
	return append(args, url)
}

func runWrk(ctx context.Context, bin string, args []string) (wrkResult, string, error) {
	out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput()
	if err != nil {
		return wrkResult{}, string(out), fmt.Errorf("wrk %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	r, err := parseWrk(string(out))
	return r, string(out), err
}

// parseWrk reads the summary of `wrk --latency`: Requests/sec, the 50% and
// 99% lines of the latency distribution, the request count and the error
// lines.
func parseWrk(out string) (wrkResult, error) {
	var r wrkResult
	var haveRPS, haveP50, haveP99, inDist bool
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		f := strings.Fields(line)
		switch {
		case strings.HasPrefix(line, "Latency Distribution"):
			inDist = true
		case inDist && len(f) == 2 && strings.HasSuffix(f[0], "%"):
			d, err := parseWrkDuration(f[1])
			if err != nil {
				return r, fmt.Errorf("wrk: latency line %q: %w", line, err)
			}
			switch f[0] {
			case "50%", "50.000%":
				r.P50, haveP50 = d, true
			case "99%", "99.000%":
				r.P99, haveP99 = d, true
			}
		case strings.HasPrefix(line, "Requests/sec:") && len(f) == 2:
			v, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				return r, fmt.Errorf("wrk: %q: %w", line, err)
			}
			r.ReqPerSec, haveRPS = v, true
		case len(f) >= 3 && f[1] == "requests" && f[2] == "in":
			inDist = false
			n, err := strconv.ParseInt(f[0], 10, 64)
			if err != nil {
				return r, fmt.Errorf("wrk: %q: %w", line, err)
			}
			r.Requests = n
		case strings.HasPrefix(line, "Non-2xx or 3xx responses:") && len(f) == 5:
			n, err := strconv.ParseInt(f[4], 10, 64)
			if err != nil {
				return r, fmt.Errorf("wrk: %q: %w", line, err)
			}
			r.Non2xx3xx = n
		case strings.HasPrefix(line, "Socket errors:"):
			// Socket errors: connect 0, read 0, write 0, timeout 5
			for i := 2; i+1 < len(f); i += 2 {
				n, err := strconv.ParseInt(strings.TrimSuffix(f[i+1], ","), 10, 64)
				if err != nil {
					return r, fmt.Errorf("wrk: %q: %w", line, err)
				}
				r.Errors += n
			}
		}
	}
	if !haveRPS || !haveP50 || !haveP99 {
		return r, fmt.Errorf("wrk: output lacks Requests/sec or the 50%%/99%% latency lines (run with --latency):\n%s", out)
	}
	return r, nil
}

// parseWrkDuration parses wrk's latency format: a number with the unit us,
// ms, s, m or h (e.g. 812.00us, 1.10ms, 2.03s).
func parseWrkDuration(s string) (time.Duration, error) {
	units := []struct {
		suffix string
		unit   time.Duration
	}{{"us", time.Microsecond}, {"ms", time.Millisecond}, {"s", time.Second}, {"m", time.Minute}, {"h", time.Hour}}
	for _, u := range units {
		if num, ok := strings.CutSuffix(s, u.suffix); ok {
			v, err := strconv.ParseFloat(num, 64)
			if err != nil || v < 0 {
				return 0, fmt.Errorf("bad duration %q", s)
			}
			return time.Duration(v * float64(u.unit)), nil
		}
	}
	return 0, fmt.Errorf("bad duration %q", s)
}
