package main

import (
	"testing"
	"time"
)

func TestWriterGap(t *testing.T) {
	t0 := time.Date(2026, 12, 6, 0, 0, 0, 0, time.UTC)
	at := func(ms int) time.Time { return t0.Add(time.Duration(ms) * time.Millisecond) }
	w := func(end, code int) sample { return sample{start: at(end - 10), end: at(end), code: code} }
	for _, tt := range []struct {
		name              string
		ws                []sample
		gap               float64
		writes, failedOne int
	}{
		{"no failure: the longest gap", []sample{w(100, 201), w(200, 201), w(500, 201), w(600, 201)}, 0.3, 3, 0},
		{"failures between successes", []sample{w(100, 201), w(300, 503), w(400, 503), w(900, 201), w(1000, 201)}, 0.8, 4, 2},
		{"first success after the end counts", []sample{w(100, 201), w(300, 503), w(1500, 201)}, 1.4, 1, 1},
		{"nothing after the end: until the last success", []sample{w(100, 201), w(300, 503)}, 0, 1, 1},
	} {
		t.Run(tt.name, func(t *testing.T) {
			gap, n, failed := writerGap(tt.ws, at(150), at(1200))
			if gap != tt.gap || n != tt.writes || failed != tt.failedOne {
				t.Errorf("writerGap = %v, %d, %d; want %v, %d, %d", gap, n, failed, tt.gap, tt.writes, tt.failedOne)
			}
		})
	}
	if n, codes := readCodes([]sample{w(100, 200), w(200, 200), w(300, 0)}, at(150), at(1200)); n != 2 || codes["200"] != 1 || codes["0"] != 1 {
		t.Errorf("readCodes = %d %v", n, codes)
	}
}
