package wrk

import (
	"reflect"
	"strings"
	"testing"
	"time"
)

// extended is a benchmark's summary: Summary plus its own counters.
type extended struct {
	Summary
	Comments int64 `json:"comments"`
}

func TestParseSummary(t *testing.T) {
	for _, tc := range []struct {
		name, out string
		want      extended
		err       string
	}{
		{"ok", "Running 1s test\n" + SummaryPrefix + `{"duration_us":2000000,"requests":10,"connect":1,"read":2,"write":3,"status":4,"timeout":5,"p50_us":1500,"p99_us":9000,"statuses":{"500":4},"first_failure":"500 oops","comments":7}` + "\nRequests/sec: 5\n",
			extended{Summary{DurationUs: 2e6, Requests: 10, Connect: 1, Read: 2, Write: 3, Status: 4, Timeout: 5, P50Us: 1500, P99Us: 9000,
				Statuses: map[string]int64{"500": 4}, FirstFailure: "500 oops"}, 7}, ""},
		{"missing", "Running 1s test\nRequests/sec: 5\n", extended{}, "lacks"},
		{"broken", SummaryPrefix + `{"requests":`, extended{}, "wrk summary"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got extended
			err := ParseSummary(tc.out, &got)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
			if n := got.SocketErrors(); n != 11 {
				t.Errorf("SocketErrors = %d, want 11", n)
			}
		})
	}
}

func TestArgs(t *testing.T) {
	for _, tc := range []struct {
		d    time.Duration
		want string
	}{
		{1500 * time.Millisecond, "-d2s"},
		{100 * time.Millisecond, "-d1s"},
		{time.Minute, "-d60s"},
	} {
		got := strings.Join(Args(2, 4, tc.d, "s.lua", "http://127.0.0.1:1/"), " ")
		want := "-t2 -c4 " + tc.want + " --timeout 30s --latency -s s.lua http://127.0.0.1:1/"
		if got != want {
			t.Errorf("Args(%v) = %q, want %q", tc.d, got, want)
		}
	}
}

func TestTail(t *testing.T) {
	if got := Tail("a\nb\nc\n", 2); got != "b\nc" {
		t.Errorf("Tail = %q", got)
	}
	if got := Tail("a", 5); got != "a" {
		t.Errorf("Tail = %q", got)
	}
}
