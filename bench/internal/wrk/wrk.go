// Package wrk holds what the benchmarks that drive wrk with a generated Lua
// script share (bench/db, bench/rotate): the command line, running wrk to
// its end, and reading the one JSON line the script's done() prints after
// SummaryPrefix into a summary that embeds Summary.
//
// The scripts themselves stay with their benchmarks: each counts what its
// benchmark needs (answers per second, comments) and adds those fields to
// its line.
package wrk

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// BypassCookie makes the edge's page cache pass a request to PHP (any
// wordpress_* cookie does; internal/edge/pagecache), so each request runs
// WordPress and its database queries. WordPress itself ignores it (it is no
// valid login).
const BypassCookie = "wordpress_no_cache=1"

// SummaryPrefix starts the line a script's done() prints: the prefix, then
// one JSON object with at least Summary's fields.
const SummaryPrefix = "aipress-wrk "

// Summary are the fields every script's summary line carries: wrk's totals,
// its socket error counters (Connect, Read, Write, Timeout), Status — the
// answers above 399, wrk's "Non-2xx or 3xx responses" — with their counts
// per status code and the first one's status and body, and the 50th and
// 99th latency percentiles.
type Summary struct {
	DurationUs   float64          `json:"duration_us"`
	Requests     int64            `json:"requests"`
	Connect      int64            `json:"connect"`
	Read         int64            `json:"read"`
	Write        int64            `json:"write"`
	Status       int64            `json:"status"`
	Timeout      int64            `json:"timeout"`
	P50Us        float64          `json:"p50_us"`
	P99Us        float64          `json:"p99_us"`
	Statuses     map[string]int64 `json:"statuses"`
	FirstFailure string           `json:"first_failure"`
}

// SocketErrors is the sum of wrk's socket error counters.
func (s *Summary) SocketErrors() int64 { return s.Connect + s.Read + s.Write + s.Timeout }

// ParseSummary finds the summary line in wrk's output and decodes its JSON
// into v (a pointer to a struct embedding Summary).
func ParseSummary(out string, v any) error {
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<24)
	for sc.Scan() {
		line, ok := strings.CutPrefix(sc.Text(), SummaryPrefix)
		if !ok {
			continue
		}
		if err := json.Unmarshal([]byte(line), v); err != nil {
			return fmt.Errorf("wrk summary: %w: %.300s", err, line)
		}
		return nil
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("wrk output: %w", err)
	}
	return fmt.Errorf("wrk output lacks the %q line:\n%s", strings.TrimSpace(SummaryPrefix), Tail(out, 20))
}

// Tail returns the last n lines of s, without the final newline.
func Tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// Args are the arguments of a load run with script for d (whole seconds,
// at least 1). PHP behind a queue of connections can take longer than wrk's
// default timeout of 2 s; a slow answer is not a failed one, so the timeout
// is 30 s.
func Args(threads, conns int, d time.Duration, script, url string) []string {
	return []string{"-t" + strconv.Itoa(threads), "-c" + strconv.Itoa(conns),
		"-d" + strconv.Itoa(max(1, int(d.Round(time.Second)/time.Second))) + "s",
		"--timeout", "30s", "--latency", "-s", script, url}
}

// Run runs bin (wrk) with args to its end and returns its whole output
// (stdout and stderr), decoding the summary line into v.
func Run(ctx context.Context, bin string, args []string, v any) (string, error) {
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.WaitDelay = 10 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("wrk %s: %w:\n%s", strings.Join(args, " "), err, Tail(string(out), 20))
	}
	return string(out), ParseSummary(string(out), v)
}
