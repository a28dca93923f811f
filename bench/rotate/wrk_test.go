package main

import (
	"context"
	"encoding/json"
	"flag"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aipress/aipress/bench/internal/wrk"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

// TestLuaScript compares the generated wrk script with
// testdata/rotate.lua.golden (go test -run TestLuaScript -update rewrites
// it) and checks that hosts that would break out of a Lua string are refused.
func TestLuaScript(t *testing.T) {
	got, err := luaScript([]string{"rot-1.localhost", "rot-2.localhost", "rot-3.localhost"})
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "rotate.lua.golden")
	if *update {
		if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("script differs from %s (-update rewrites it):\n%s", golden, got)
	}
	for _, bad := range [][]string{nil, {""}, {`a".localhost`}, {`a\.localhost`}, {"a b.localhost"}, {"a\n.localhost"}} {
		if _, err := luaScript(bad); err == nil {
			t.Errorf("luaScript(%q) = nil error", bad)
		}
	}
}

func TestParseSummary(t *testing.T) {
	for _, tc := range []struct {
		name, out string
		want      wrkSummary
		err       string
	}{
		{"ok", "Running 1s test\n" + summaryPrefix + `{"duration_us":2000000,"requests":10,"bytes":5,"connect":1,"read":2,"write":3,"status":4,"timeout":5,"p50_us":1500,"p99_us":9000,"seconds":[[100,6,0],[101,4,4]],"statuses":{"500":4},"first_failure":"500 oops"}` + "\nRequests/sec: 5\n",
			wrkSummary{Summary: wrk.Summary{DurationUs: 2e6, Requests: 10, Connect: 1, Read: 2, Write: 3, Status: 4, Timeout: 5, P50Us: 1500, P99Us: 9000,
				Statuses: map[string]int64{"500": 4}, FirstFailure: "500 oops"}, Bytes: 5, Seconds: [][3]int64{{100, 6, 0}, {101, 4, 4}}}, ""},
		{"missing", "Running 1s test\nRequests/sec: 5\n", wrkSummary{}, "lacks"},
		{"broken", summaryPrefix + `{"requests":`, wrkSummary{}, "wrk summary"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseSummary(tc.out)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want one with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if g, w := mustJSON(t, got), mustJSON(t, &tc.want); g != w {
				t.Errorf("got %s\nwant %s", g, w)
			}
			if n := got.SocketErrors(); n != 11 {
				t.Errorf("SocketErrors = %d, want 11", n)
			}
			if a, f := got.Between(time.Unix(101, 0), time.Unix(101, 999)); a != 4 || f != 4 {
				t.Errorf("Between(101, 101) = %d, %d; want 4, 4", a, f)
			}
			if n := got.Silent(time.Unix(99, 0), time.Unix(102, 0)); n != 2 {
				t.Errorf("Silent(99, 102) = %d, want 2 (99 and 102)", n)
			}
		})
	}
}

// TestWrkCounts runs the real wrk with the generated script against a
// local server on 127.0.0.1 that answers 200 for a.localhost, 500 for
// b.localhost and drops the connection of every request for c.localhost,
// stops it with SIGINT like the benchmark does and checks what the summary
// says: round robin over the three Host headers, the cookie on every
// request, failed answers and socket errors counted apart.
func TestWrkCounts(t *testing.T) {
	bin, err := exec.LookPath("wrk")
	if err != nil {
		t.Skip("wrk missing (scripts/deps.sh installs it)")
	}
	var mu sync.Mutex
	hosts := map[string]int{}
	var noCookie int
	secs := map[int64]bool{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hosts[r.Host]++
		secs[time.Now().Unix()] = true
		if c, err := r.Cookie("wordpress_no_cache"); err != nil || c.Value != "1" {
			noCookie++
		}
		mu.Unlock()
		switch r.Host {
		case "b.localhost":
			http.Error(w, "Error establishing a database connection", http.StatusInternalServerError)
		case "c.localhost":
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
		default:
			_, _ = w.Write([]byte("hello"))
		}
	}))
	defer srv.Close()
	script := filepath.Join(t.TempDir(), "load.lua")
	if err := writeScript(script, []string{"a.localhost", "b.localhost", "c.localhost"}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	w, err := startWrk(ctx, bin, wrkArgs(2, 3, time.Hour, script, srv.URL+"/"))
	if err != nil {
		t.Fatal(err)
	}
	// Wait for some answers of each kind, in two seconds of the wall clock
	// at least (for the per-second counts), rather than a fixed time.
	for {
		mu.Lock()
		n, ns := min(hosts["a.localhost"], hosts["b.localhost"], hosts["c.localhost"]), len(secs)
		mu.Unlock()
		if n >= 20 && ns >= 2 || !w.Running() {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	s, ran, err := w.Stop()
	if err != nil {
		t.Fatal(err)
	}
	if !ran {
		t.Errorf("wrk had ended before Stop:\n%s", w.Output())
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("server saw %v; summary %+v", hosts, *s)
	if len(hosts) != 3 || noCookie > 0 {
		t.Errorf("hosts %v (want a, b and c.localhost), %d request(s) without the cookie", hosts, noCookie)
	}
	if s.Status == 0 || s.Statuses["500"] != s.Status || !strings.HasPrefix(s.FirstFailure, "500 Error establishing") {
		t.Errorf("failed answers: status %d, statuses %v, first %q; want 500s", s.Status, s.Statuses, s.FirstFailure)
	}
	if s.Read == 0 {
		t.Errorf("no read errors from the dropped connections: %+v", *s)
	}
	var answers, failed int64
	for _, c := range s.Seconds {
		answers += c[1]
		failed += c[2]
	}
	if len(s.Seconds) < 2 {
		t.Errorf("per-second counts cover %d second(s), want 2 or more", len(s.Seconds))
	}
	for i := 1; i < len(s.Seconds); i++ {
		if s.Seconds[i-1][0] >= s.Seconds[i][0] {
			t.Errorf("per-second counts not in order: %v", s.Seconds)
		}
	}
	if r := Report(w.Output()); strings.Contains(r, summaryPrefix) || !strings.Contains(r, "requests in") {
		t.Errorf("Report kept the summary line or lost wrk's report:\n%s", r)
	}
	if answers != s.Requests || failed != s.Status {
		t.Errorf("per-second counts: %d answers, %d failed; wrk's totals: %d, %d", answers, failed, s.Requests, s.Status)
	}
	if s.Requests == 0 || s.P50Us <= 0 || s.DurationUs <= 0 {
		t.Errorf("nothing measured: %+v", *s)
	}
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
