// Command move benchmarks moving a small site between shards on a real,
// freshly started AIPress platform (`aipress up --shards 2` with its own
// MariaDB and php-fpm in a temporary data directory, on 127.0.0.1 only).
//
// It creates one site, logs in as its admin and, while the site serves,
// starts (unless turned off) a writer — one client publishing a post
// through the REST API (POST /wp-json/wp/v2/posts) in a loop — and a reader
// — one client sending GET / past the page cache in a loop. Then it moves
// the site to the other shard -moves times (back and forth) and prints,
// for each move, the phases from the move record the API returns (the
// shards' own timestamps: requested → freeze started → exported → imported
// → switched → cleaned up) and what the clients saw:
//
//   - the freeze window as the writer saw it: the longest time between two
//     successful POSTs (their answers) while the move ran, and the POSTs
//     that failed;
//   - the reads during the move and their status codes (goal: no errors:
//     every answer 200);
//   - "user waits": from the move request to the switch (the site serves
//     from the target and takes writes again) and to Done as a client
//     polling every 50 ms saw it.
//
// After the moves it checks that every post whose POST succeeded is on the
// site (no write lost) and exits 1 when one is missing, a move did not
// finish, or measuring failed. Goals (freeze ≤ 0.5 s, switch ≤ 3 s after
// the request) are printed as met/missed and never fail the run.
//
// Run it as root after `make build`:
//
//	go run ./bench/move [-moves 3] [-writer=true] [-reader=true] [-bin bin/aipress] [-keep] [-json]
//
// or `make bench-move`. Progress goes to stderr, the report to stdout.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aipress/aipress/bench/internal/benchplatform"
	"github.com/aipress/aipress/internal/apiclient"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

type options struct {
	moves          int
	writer, reader bool
	bin            string
	keep, jsonOut  bool
	timeout        time.Duration
	extra          string
}

func main() {
	var o options
	flag.IntVar(&o.moves, "moves", 3, "moves of the site, back and forth between the two shards")
	flag.BoolVar(&o.writer, "writer", true, "publish posts in a loop during the moves (the freeze window as a writer sees it)")
	flag.BoolVar(&o.reader, "reader", true, "GET / past the page cache in a loop during the moves")
	flag.StringVar(&o.bin, "bin", "bin/aipress", "aipress binary to run")
	flag.BoolVar(&o.keep, "keep", false, "keep the data directory and site Unix users")
	flag.BoolVar(&o.jsonOut, "json", false, "print the figures as JSON instead of a table")
	flag.DurationVar(&o.timeout, "timeout", 10*time.Minute, "overall time limit")
	flag.StringVar(&o.extra, "up-flags", "", "more flags for `aipress up`, space-separated")
	flag.Parse()
	if o.moves < 1 || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: move [-moves N] [-writer=BOOL] [-reader=BOOL] [-bin bin/aipress] [-keep] [-json]")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	res, err := run(ctx, o)
	if res != nil {
		if o.jsonOut {
			enc := json.NewEncoder(os.Stdout)
			enc.SetIndent("", "  ")
			_ = enc.Encode(res)
		} else {
			res.print(os.Stdout)
		}
	}
	if err == nil && res != nil {
		err = res.problem()
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "move:", err)
		os.Exit(1)
	}
}

// Goals of issue 14 for a small site's move.
const (
	goalFreeze = 500 * time.Millisecond
	goalTotal  = 3 * time.Second
)

// MoveResult holds one move's figures, in seconds.
type MoveResult struct {
	From, To string
	// Phases from the move record: each from the previous one.
	ToFreeze   float64 `json:"requested_to_freeze_started"`
	ToExported float64 `json:"freeze_started_to_exported"`
	ToImported float64 `json:"exported_to_imported"`
	ToSwitched float64 `json:"imported_to_switched"`
	ToCleaned  float64 `json:"switched_to_cleaned_up"`
	// Freeze is FreezeStarted → Switched from the record.
	Freeze float64 `json:"freeze_record"`
	// Switch is RequestedAt → Switched; DoneSeen is the request → the API
	// showing Done to a client polling every 50 ms.
	Switch   float64 `json:"requested_to_switched"`
	DoneSeen float64 `json:"request_to_done_seen"`
	// WriterGap: the longest time between two successful POSTs' answers
	// while the move ran; WritesFailed the POSTs that failed then.
	WriterGap    float64        `json:"writer_freeze"`
	Writes       int            `json:"writes_during_move"`
	WritesFailed int            `json:"writes_failed_during_move"`
	WriteCodes   map[string]int `json:"write_codes_during_move"`
	Reads        int            `json:"reads_during_move"`
	ReadCodes    map[string]int `json:"read_codes_during_move"`
}

// Result holds every figure.
type Result struct {
	Load    string        `json:"load_average_at_start"`
	Writer  bool          `json:"writer"`
	Reader  bool          `json:"reader"`
	Moves   []*MoveResult `json:"moves"`
	Written int           `json:"posts_written"`
	Missing []int         `json:"posts_missing_after_moves,omitempty"`
	LoadEnd string        `json:"load_average_at_end"`
}

func (r *Result) problem() error {
	var errs []error
	if len(r.Missing) > 0 {
		errs = append(errs, fmt.Errorf("%d post(s) whose POST succeeded are missing after the moves: %v", len(r.Missing), r.Missing))
	}
	for i, m := range r.Moves {
		for code, n := range m.ReadCodes {
			if code != "200" {
				errs = append(errs, fmt.Errorf("move %d: %d read(s) answered %s", i+1, n, code))
			}
		}
	}
	return errors.Join(errs...)
}

func (r *Result) print(w io.Writer) {
	f := func(v float64) string { return strconv.FormatFloat(v, 'f', 2, 64) }
	head := []string{"phase (s)"}
	rows := [][]string{
		{"requested → freeze started"}, {"freeze started → exported"}, {"exported → imported"},
		{"imported → switched"}, {"switched → cleaned up (MoveGrace included)"},
		{"freeze (record: freeze started → switched)"}, {"freeze as the writer saw it (longest gap between 201s)"},
		{"user waits: requested → switched"}, {"user waits: request → Done seen by API poll"},
		{"writes during the move (failed)"}, {"writes during the move: codes"}, {"reads during the move: codes"},
	}
	for i, m := range r.Moves {
		head = append(head, fmt.Sprintf("move %d %s→%s", i+1, m.From, m.To))
		codes := func(m map[string]int) string {
			var l []string
			for c, n := range m {
				l = append(l, c+"×"+strconv.Itoa(n))
			}
			slices.Sort(l)
			if len(l) == 0 {
				return "-"
			}
			return strings.Join(l, " ")
		}
		vals := []string{f(m.ToFreeze), f(m.ToExported), f(m.ToImported), f(m.ToSwitched), f(m.ToCleaned),
			f(m.Freeze), f(m.WriterGap), f(m.Switch), f(m.DoneSeen),
			fmt.Sprintf("%d (%d)", m.Writes, m.WritesFailed), codes(m.WriteCodes), codes(m.ReadCodes)}
		for j := range rows {
			rows[j] = append(rows[j], vals[j])
		}
	}
	t := benchplatform.Table{head}
	t = append(t, rows...)
	worstFreeze, worstSwitch := 0.0, 0.0
	for _, m := range r.Moves {
		worstFreeze = max(worstFreeze, m.Freeze, m.WriterGap)
		worstSwitch = max(worstSwitch, m.Switch)
	}
	met := func(ok bool) string {
		if ok {
			return "met"
		}
		return "MISSED"
	}
	t = append(t,
		[]string{fmt.Sprintf("goal: freeze ≤ %.1f s (worst)", goalFreeze.Seconds()), f(worstFreeze) + " " + met(worstFreeze <= goalFreeze.Seconds())},
		[]string{fmt.Sprintf("goal: total ≤ %.0f s (worst requested → switched)", goalTotal.Seconds()), f(worstSwitch) + " " + met(worstSwitch <= goalTotal.Seconds())},
		[]string{"posts written / missing after the moves", fmt.Sprintf("%d / %d", r.Written, len(r.Missing))},
		[]string{"load average (start / end)", r.Load + " / " + r.LoadEnd},
	)
	t.Print(w)
}

var logf = benchplatform.Logf

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	return strings.Join(strings.Fields(string(b))[:3], " ")
}

func run(ctx context.Context, o options) (res *Result, err error) {
	bin, err := benchplatform.Binary(o.bin)
	if err != nil {
		return nil, err
	}
	extra := append([]string{"--shards", "2"}, strings.Fields(o.extra)...)
	p, err := benchplatform.Start(bin, benchplatform.Options{TempPrefix: "aipress-bench-move-", Extra: extra})
	if err != nil {
		return nil, err
	}
	defer func() { p.Finish(o.keep, err != nil) }()
	cl, err := p.Ready(ctx)
	if err != nil {
		return nil, err
	}
	const domain = "move-1.localhost"
	created, err := cl.CreateSite(ctx, apiclient.CreateSiteRequest{Domain: domain, Title: "Move", AdminEmail: "admin@" + domain})
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", domain, err)
	}
	wc := newWebClient(p.Edge, domain)
	if err := p.Poll(ctx, 5*time.Minute, 100*time.Millisecond, "the site serving", func() (bool, error) {
		code, _, err := wc.do(ctx, http.MethodGet, "/", nil, nil)
		return err == nil && code == http.StatusOK, nil
	}); err != nil {
		return nil, err
	}
	shards := []string{}
	if err := p.Poll(ctx, 2*time.Minute, 100*time.Millisecond, "two shards", func() (bool, error) {
		l, err := cl.ListShards(ctx, apiclient.ListOptions{})
		if err != nil {
			return false, nil
		}
		shards = shards[:0]
		for _, sh := range l.Items {
			if sh.Phase == store.ShardReady {
				shards = append(shards, sh.Name)
			}
		}
		return len(shards) >= 2, nil
	}); err != nil {
		return nil, err
	}
	if err := wc.login(ctx, created.AdminUser, created.AdminPassword); err != nil {
		return nil, err
	}
	res = &Result{Load: loadAvg(), Writer: o.writer, Reader: o.reader}

	// The clients run for the whole benchmark; each move takes its slice
	// of their records.
	cctx, stopClients := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var writes, reads []sample
	if o.writer {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; cctx.Err() == nil; i++ {
				start := time.Now()
				id, code, err := wc.publish(cctx, fmt.Sprintf("Post %d", i))
				if cctx.Err() != nil {
					return
				}
				mu.Lock()
				writes = append(writes, sample{start: start, end: time.Now(), code: code, err: err, id: id})
				mu.Unlock()
				_ = benchplatform.Sleep(cctx, 20*time.Millisecond)
			}
		}()
	}
	if o.reader {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rc := newWebClient(p.Edge, domain)
			for cctx.Err() == nil {
				start := time.Now()
				code, _, err := rc.do(cctx, http.MethodGet, "/", nil, http.Header{"Cookie": {"wordpress_no_cache=1"}})
				if cctx.Err() != nil {
					return
				}
				mu.Lock()
				reads = append(reads, sample{start: start, end: time.Now(), code: code, err: err})
				mu.Unlock()
				_ = benchplatform.Sleep(cctx, 20*time.Millisecond)
			}
		}()
	}
	defer func() { stopClients(); wg.Wait() }()
	_ = benchplatform.Sleep(ctx, time.Second) // the clients warm up

	cur, err := cl.GetSite(ctx, domain)
	if err != nil {
		return res, err
	}
	for i := 0; i < o.moves; i++ {
		from := cur.Status.Shard
		to := shards[0]
		if to == from {
			to = shards[1]
		}
		logf("move %d: %s → %s", i+1, from, to)
		start := time.Now()
		if _, err := cl.MoveSite(ctx, domain, to); err != nil {
			return res, fmt.Errorf("move %d: %w", i+1, err)
		}
		var done time.Time
		if err := p.Poll(ctx, 5*time.Minute, 50*time.Millisecond, "the move done", func() (bool, error) {
			s, err := cl.GetSite(ctx, domain)
			if err != nil {
				return false, nil
			}
			cur = s
			if s.Move != nil && s.Move.Phase == site.MoveAborted {
				return false, fmt.Errorf("the move was aborted: %s", s.Move.Error)
			}
			if s.Move != nil && s.Move.Phase == site.MoveDone {
				done = time.Now()
				return true, nil
			}
			return false, nil
		}); err != nil {
			return res, fmt.Errorf("move %d: %w (move: %+v)", i+1, err, cur.Move)
		}
		m := cur.Move
		mr := &MoveResult{From: from, To: to, DoneSeen: done.Sub(start).Seconds()}
		d := func(a, b *time.Time) float64 {
			if a == nil || b == nil {
				return 0
			}
			return b.Sub(*a).Seconds()
		}
		req := m.RequestedAt
		mr.ToFreeze = d(&req, m.FreezeStarted)
		mr.ToExported = d(m.FreezeStarted, m.Exported)
		mr.ToImported = d(m.Exported, m.Imported)
		mr.ToSwitched = d(m.Imported, m.Switched)
		mr.ToCleaned = d(m.Switched, m.CleanedUp)
		mr.Freeze = d(m.FreezeStarted, m.Switched)
		mr.Switch = d(&req, m.Switched)
		// The clients' records of this move: from its request to Done
		// seen (a little after, for the first write after the switch).
		_ = benchplatform.Sleep(ctx, 300*time.Millisecond)
		mu.Lock()
		mr.WriterGap, mr.Writes, mr.WritesFailed = writerGap(writes, start, done)
		mr.Reads, mr.ReadCodes = readCodes(reads, start, done)
		_, mr.WriteCodes = readCodes(writes, start, done)
		mu.Unlock()
		res.Moves = append(res.Moves, mr)
		logf("move %d done: freeze %.2fs (writer %.2fs), switched after %.2fs, Done seen after %.2fs",
			i+1, mr.Freeze, mr.WriterGap, mr.Switch, mr.DoneSeen)
	}
	stopClients()
	wg.Wait()

	// No write lost: every post whose POST succeeded is on the site.
	var ids []int
	for _, w := range writes {
		if w.err == nil && w.code == http.StatusCreated {
			ids = append(ids, w.id)
		}
	}
	res.Written = len(ids)
	for _, id := range ids {
		code, _, err := wc.do(ctx, http.MethodGet, "/wp-json/wp/v2/posts/"+strconv.Itoa(id), nil, nil)
		if err != nil {
			return res, err
		}
		if code != http.StatusOK {
			res.Missing = append(res.Missing, id)
		}
	}
	res.LoadEnd = loadAvg()
	return res, nil
}

type sample struct {
	start, end time.Time
	code       int
	err        error
	id         int
}

// writerGap is the longest time between two successful writes' answers
// from the last success before start until the first success after end
// (or end), with the writes that ended in [start, end] and those of them
// that failed.
func writerGap(ws []sample, start, end time.Time) (float64, int, int) {
	var prev time.Time
	var gap time.Duration
	n, failed := 0, 0
	for _, w := range ws {
		ok := w.err == nil && w.code == http.StatusCreated
		if w.end.Before(start) {
			if ok {
				prev = w.end
			}
			continue
		}
		if !w.end.After(end) {
			n++
			if !ok {
				failed++
			}
		}
		if !ok {
			continue
		}
		if !prev.IsZero() {
			gap = max(gap, w.end.Sub(prev))
		}
		prev = w.end
		if w.end.After(end) {
			break
		}
	}
	return gap.Seconds(), n, failed
}

// readCodes counts the requests that ended in [start, end] by status code
// (or "error").
func readCodes(rs []sample, start, end time.Time) (int, map[string]int) {
	codes := map[string]int{}
	n := 0
	for _, r := range rs {
		if r.end.Before(start) || r.end.After(end) {
			continue
		}
		n++
		k := strconv.Itoa(r.code)
		if r.err != nil {
			k = "error"
		}
		codes[k]++
	}
	return n, codes
}

// webClient talks to one site through the edge, with a cookie jar.
type webClient struct {
	edge, host string
	http       *http.Client
	nonce      string
}

func newWebClient(edge, host string) *webClient {
	jar, _ := cookiejar.New(nil)
	return &webClient{edge: edge, host: host, http: &http.Client{Jar: jar, Timeout: 60 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

func (c *webClient) do(ctx context.Context, method, path string, body []byte, hdr http.Header) (int, []byte, error) {
	var r io.Reader
	if body != nil {
		r = bytes.NewReader(body)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://"+c.edge+path, r)
	if err != nil {
		return 0, nil, err
	}
	req.Host = c.host
	for k, v := range hdr {
		req.Header[k] = v
	}
	// The jar keys cookies by the site's host, not the edge's address.
	for _, ck := range c.http.Jar.Cookies(&url.URL{Scheme: "http", Host: c.host, Path: "/"}) {
		req.AddCookie(ck)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	if cks := resp.Cookies(); len(cks) > 0 {
		c.http.Jar.SetCookies(&url.URL{Scheme: "http", Host: c.host, Path: "/"}, cks)
	}
	out, err := io.ReadAll(resp.Body)
	return resp.StatusCode, out, err
}

// login logs in as the admin and fetches a REST nonce.
func (c *webClient) login(ctx context.Context, user, password string) error {
	if _, _, err := c.do(ctx, http.MethodGet, "/wp-login.php", nil, nil); err != nil {
		return err
	}
	form := url.Values{"log": {user}, "pwd": {password}, "wp-submit": {"Log In"}, "redirect_to": {"/wp-admin/"}, "testcookie": {"1"}}
	code, body, err := c.do(ctx, http.MethodPost, "/wp-login.php", []byte(form.Encode()),
		http.Header{"Content-Type": {"application/x-www-form-urlencoded"}})
	if err != nil {
		return err
	}
	if code != http.StatusFound {
		return fmt.Errorf("login = %d %.300s", code, body)
	}
	code, nonce, err := c.do(ctx, http.MethodGet, "/wp-admin/admin-ajax.php?action=rest-nonce", nil, nil)
	if err != nil {
		return err
	}
	if code != http.StatusOK {
		return fmt.Errorf("rest-nonce = %d %.300s", code, nonce)
	}
	c.nonce = strings.TrimSpace(string(nonce))
	return nil
}

// publish publishes a post and returns its ID on 201.
func (c *webClient) publish(ctx context.Context, title string) (int, int, error) {
	body, _ := json.Marshal(map[string]any{"title": title, "content": "Written during a move.", "status": "publish"})
	code, out, err := c.do(ctx, http.MethodPost, "/wp-json/wp/v2/posts", body,
		http.Header{"Content-Type": {"application/json"}, "X-Wp-Nonce": {c.nonce}})
	if err != nil || code != http.StatusCreated {
		return 0, code, err
	}
	var post struct {
		ID int `json:"id"`
	}
	if err := json.Unmarshal(out, &post); err != nil || post.ID == 0 {
		return 0, code, fmt.Errorf("publish answer: %v %.200s", err, out)
	}
	return post.ID, code, nil
}
