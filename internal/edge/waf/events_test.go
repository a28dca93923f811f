package waf

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/site"
)

// recorder keeps what the Firewall records.
type recorder struct {
	mu     sync.Mutex
	events []site.WAFEvent
}

func (r *recorder) Record(evs ...site.WAFEvent) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.events = append(r.events, evs...)
}

func (r *recorder) take() []site.WAFEvent {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := r.events
	r.events = nil
	return out
}

var eventTime = time.Date(2025, 5, 6, 7, 8, 9, 0, time.UTC)

// Every refused (or, in detect mode, would-be refused) request gives one
// event per matched rule and argument, with what an owner needs to judge
// it and to exclude the rule; requests that pass give none.
func TestEvents(t *testing.T) {
	rec := &recorder{}
	fw, err := New(Config{Events: rec, Clock: func() time.Time { return eventTime }})
	if err != nil {
		t.Fatal(err)
	}
	h := newHarnessFor(t, fw, routeWith("example.test", site.WAFBlock), routeWith("detect.test", site.WAFDetect))
	type want struct {
		rule     int
		variable string
		argument string
	}
	tests := []struct {
		name   string
		host   string
		req    func() *http.Request
		action string
		want   []want // a subset of the events, in any order
		path   string
		method string
	}{
		{"search", "example.test", func() *http.Request {
			return browserRequest("GET", "/?s="+url.QueryEscape(unionSelect), nil)
		}, site.WAFActionBlock, []want{{942190, "ARGS:s", "s"}}, "/", "GET"},
		{"detect mode", "detect.test", func() *http.Request {
			return browserRequest("GET", "/?s="+url.QueryEscape(unionSelect), nil)
		}, site.WAFActionDetect, []want{{942190, "ARGS:s", "s"}}, "/", "GET"},
		{"JSON key", "example.test", func() *http.Request {
			return jsonRequest("/wp-json/x/v1/notes", map[string]string{"content": xss})
		}, site.WAFActionBlock, []want{{941100, "ARGS:json.content", "content"}}, "/wp-json/x/v1/notes", "POST"},
		{"header", "example.test", func() *http.Request {
			req := browserRequest("GET", "/feed/", nil)
			req.Header.Set("X-Api-Version", "${jndi:ldap://x}")
			return req
		}, site.WAFActionBlock, []want{{944150, "REQUEST_HEADERS:X-Api-Version", ""}}, "/feed/", "GET"},
		{"oversized body", "example.test", func() *http.Request {
			return rawRequest("/wp-comments-post.php", "application/x-www-form-urlencoded", sized(300<<10), 300<<10)
		}, site.WAFActionBlock, []want{{10008, "INBOUND_DATA_ERROR", ""}}, "/wp-comments-post.php", "POST"},
		{"oversized multipart fields", "example.test", func() *http.Request {
			b, ct := multipartBody(t, []part{{name: "a", value: padding(200 << 10)}, {name: "f", file: "x", value: "x"}})
			return rawRequest("/wp-admin/async-upload.php", ct, b, int64(len(b)))
		}, site.WAFActionBlock, []want{{RuleMultipartFields, "", ""}}, "/wp-admin/async-upload.php", "POST"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := tt.req()
			req.Host = tt.host
			resp := h.do(req)
			evs := rec.take()
			if len(evs) == 0 {
				t.Fatalf("no events (status %d, rules %v)", resp.Code, h.info.WAFRules)
			}
			for _, ev := range evs {
				if ev.Site != tt.host || ev.Action != tt.action || ev.Path != tt.path || ev.Method != tt.method ||
					ev.Paranoia != 1 || !ev.Time.Equal(eventTime) || ev.RequestID != resp.Header().Get("X-Request-Id") ||
					ev.RequestID == "" || ev.Message == "" {
					t.Errorf("event %+v", ev)
				}
				if ev.RuleID >= 949000 && ev.RuleID < 950000 {
					t.Errorf("anomaly evaluation reported: %+v", ev)
				}
			}
			for _, w := range tt.want {
				if !slices.ContainsFunc(evs, func(ev site.WAFEvent) bool {
					return ev.RuleID == w.rule && ev.Variable == w.variable && ev.Argument == w.argument
				}) {
					t.Errorf("no event %+v among %+v", w, evs)
				}
			}
		})
	}
	t.Run("benign", func(t *testing.T) {
		h.do(browserRequest("GET", "/?s=hello+world", nil))
		if evs := rec.take(); len(evs) != 0 {
			t.Errorf("events for a benign request: %+v", evs)
		}
	})
	t.Run("excluded", func(t *testing.T) {
		h := newHarnessFor(t, fw, routeWith("example.test", site.WAFBlock, "942190:/:s"))
		if resp := h.do(browserRequest("GET", "/?s="+url.QueryEscape(unionSelect), nil)); resp.Code != 200 {
			t.Fatalf("status %d", resp.Code)
		}
		if evs := rec.take(); len(evs) != 0 {
			t.Errorf("events for an excluded match: %+v", evs)
		}
	})
}

// A flood of one site's events is capped per interval, the queue is
// bounded, and a failed send keeps the batch for the next one.
func TestReporter(t *testing.T) {
	var mu sync.Mutex
	var sent [][]site.WAFEvent
	fail := true
	r := NewReporter(ReporterConfig{MaxQueue: 10, MaxPerSite: 4, Send: func(_ context.Context, evs []site.WAFEvent) error {
		mu.Lock()
		defer mu.Unlock()
		if fail {
			return errors.New("control plane away")
		}
		sent = append(sent, slices.Clone(evs))
		return nil
	}})
	ev := func(s string, i int) site.WAFEvent { return site.WAFEvent{Site: s, RuleID: i} }
	for i := range 100 {
		r.Record(ev("flood.test", i)) // capped at 4 per interval
	}
	r.Record(ev("a.test", 1), ev("b.test", 1))
	if err := r.Flush(context.Background()); err == nil {
		t.Fatal("flush did not report the failure")
	}
	for i := range 20 {
		r.Record(ev(fmt.Sprintf("s%d.test", i), 1)) // 6 queued already: room for 4
	}
	fail = false
	if err := r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(sent) != 1 {
		t.Fatalf("%d batches sent", len(sent))
	}
	var sites []string
	for _, e := range sent[0] {
		sites = append(sites, e.Site)
	}
	want := "flood.test flood.test flood.test flood.test a.test b.test s0.test s1.test s2.test s3.test"
	if got := strings.Join(sites, " "); got != want {
		t.Errorf("sent %s\nwant %s", got, want)
	}
	if err := r.Flush(context.Background()); err != nil || len(sent) != 1 {
		t.Errorf("an empty flush sent something: %v %d", err, len(sent))
	}
}

// A queue longer than a batch is sent in batches; when one fails, what was
// not sent stays queued.
func TestReporterBatches(t *testing.T) {
	var sizes []int
	calls := 0
	r := NewReporter(ReporterConfig{MaxQueue: 100, MaxPerSite: 100, MaxBatch: 30, Send: func(_ context.Context, evs []site.WAFEvent) error {
		calls++
		if calls == 3 {
			return errors.New("control plane away")
		}
		sizes = append(sizes, len(evs))
		return nil
	}})
	for i := range 100 {
		r.Record(site.WAFEvent{Site: "a.test", RuleID: i})
	}
	if err := r.Flush(context.Background()); err == nil {
		t.Fatal("the failed batch was not reported")
	}
	if err := r.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(sizes) != "[30 30 30 10]" {
		t.Errorf("batches %v, want [30 30 30 10]", sizes)
	}
}

// Run sends on its own and flushes what is left when it stops.
func TestReporterRun(t *testing.T) {
	got := make(chan []site.WAFEvent, 10)
	r := NewReporter(ReporterConfig{Interval: time.Hour, MaxQueue: 4, Send: func(_ context.Context, evs []site.WAFEvent) error {
		got <- evs
		return nil
	}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	r.Record(site.WAFEvent{Site: "a.test"}, site.WAFEvent{Site: "b.test"}) // half full: wakes Run
	if evs := <-got; len(evs) != 2 {
		t.Errorf("first batch %+v", evs)
	}
	r.Record(site.WAFEvent{Site: "c.test"})
	cancel()
	<-done
	if evs := <-got; len(evs) != 1 || evs[0].Site != "c.test" {
		t.Errorf("final batch %+v", evs)
	}
}

var _ EventRecorder = (*Reporter)(nil)
