package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"os"
	"sort"

	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// observerJS runs before the page's own scripts: it records long tasks
// and when the first site row appears.
const observerJS = `
window.__lt = [];
try { new PerformanceObserver(l => { for (const e of l.getEntries()) window.__lt.push([e.startTime, e.duration]); }).observe({type: 'longtask', buffered: true}); } catch (e) {}
new MutationObserver((_, mo) => {
  if (document.querySelector('a[href^="/sites/site"]')) { window.__firstRow = performance.now(); mo.disconnect(); }
}).observe(document, {subtree: true, childList: true});
`

// scrollJS scrolls the list's scroller from top to bottom over about two
// seconds of animation frames and returns the frame intervals.
const scrollJS = `new Promise(done => {
  const row = document.querySelector('a[href^="/sites/site"]');
  let el = row;
  while (el && el !== document.body) {
    const s = getComputedStyle(el);
    if (/(auto|scroll)/.test(s.overflowY) && el.scrollHeight > el.clientHeight + 10) break;
    el = el.parentElement;
  }
  if (!el || el === document.body) el = document.scrollingElement;
  const max = el.scrollHeight - el.clientHeight;
  const steps = 120, frames = [];
  let i = 0, last = performance.now();
  window.__scrollStart = last;
  function step(now) {
    frames.push(now - last); last = now;
    el.scrollTop = Math.round(max * i / steps);
    if (++i <= steps) requestAnimationFrame(step); else { window.__scrollEnd = performance.now(); done({frames: frames.slice(1), max}); }
  }
  requestAnimationFrame(step);
})`

func poll(expr string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Poll[any](expr, chromedp.WithPollingInterval(50*time.Millisecond))(ctx, t)
		return err
	})
}

func input(label string) chromedp.Search {
	return chromedp.Search(`//*[(self::input or self::textarea) and @id=//label[normalize-space(.)='` + label +
		`' or starts-with(normalize-space(.), '` + label + ` ')]/@for]`)
}

func measure(ctx context.Context, o options, base, pw string, res Result) (Result, error) {
	udd, err := os.MkdirTemp("", "aipress-bench-portal-chromium-")
	if err != nil {
		return res, err
	}
	defer os.RemoveAll(udd)
	actx, cancelA := chromedp.NewExecAllocator(ctx,
		chromedp.ExecPath(o.chromium), chromedp.UserDataDir(udd), chromedp.Headless, chromedp.NoSandbox,
		chromedp.DisableGPU, chromedp.NoFirstRun, chromedp.NoDefaultBrowserCheck, chromedp.WindowSize(1280, 900),
		chromedp.Flag("disable-quic", true), chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true), chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.Flag("no-proxy-server", true))
	defer cancelA()
	bctx, cancelB := chromedp.NewContext(actx)
	defer cancelB()
	if err := chromedp.Do(bctx); err != nil {
		return res, fmt.Errorf("start chromium: %w", err)
	}
	step := func(what string, d time.Duration, steps ...chromedp.Action[chromedp.Void]) error {
		c, cancel := context.WithTimeout(bctx, d)
		defer cancel()
		if err := chromedp.Do(c, steps...); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		return nil
	}
	eval := func(expr string, v any) error {
		c, cancel := context.WithTimeout(bctx, time.Minute)
		defer cancel()
		out, err := chromedp.Run(c, chromedp.Evaluate[any](expr, chromedp.EvalAwaitPromise))
		if err != nil {
			return err
		}
		return remarshal(out, v)
	}
	if err := step("sign in", time.Minute,
		chromedp.Navigate(base+"/signin"),
		chromedp.WaitVisible(input("E-mail")),
		chromedp.SendKeys(input("E-mail"), "admin@localhost"),
		chromedp.SendKeys(input("Password"), pw),
		chromedp.Click(chromedp.Search(`//button[@type='submit' and normalize-space(.)='Sign in']`), chromedp.NodeVisible),
		poll(`location.pathname === '/sites'`),
	); err != nil {
		return res, err
	}
	if err := step("observe", 10*time.Second, chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, page.AddScriptToEvaluateOnNewDocument, page.AddScriptToEvaluateOnNewDocumentParams{Source: observerJS})
		return err
	})); err != nil {
		return res, err
	}
	if err := step("load /sites", 5*time.Minute,
		chromedp.Navigate(base+"/sites"),
		poll(`window.__firstRow !== undefined`),
	); err != nil {
		return res, err
	}
	// The list has loaded when its requests stop: none new for 1.5 s.
	var last, same int
	for same < 15 {
		var n int
		if err := eval(`performance.getEntriesByType('resource').filter(e => e.name.includes('/v1/sites?') || e.name.endsWith('/v1/sites')).length`, &n); err != nil {
			return res, err
		}
		if n == last && n > 0 {
			same++
		} else {
			same, last = 0, n
		}
		time.Sleep(100 * time.Millisecond)
	}
	var load struct {
		FirstRow, AllLoaded float64
		Requests, Rows      int
	}
	if err := eval(`(() => { const r = performance.getEntriesByType('resource').filter(e => e.name.includes('/v1/sites?') || e.name.endsWith('/v1/sites'));
		return {FirstRow: window.__firstRow, AllLoaded: Math.max(...r.map(e => e.responseEnd)), Requests: r.length,
		        Rows: document.querySelectorAll('a[href^="/sites/site"]').length}; })()`, &load); err != nil {
		return res, err
	}
	res.FirstRowMs, res.AllLoadedMs, res.ListRequests, res.RowsInDOM = load.FirstRow, load.AllLoaded, load.Requests, load.Rows
	if o.shot != "" {
		c, cancel := context.WithTimeout(bctx, 30*time.Second)
		png, err := chromedp.Run(c, chromedp.FullScreenshot(100))
		cancel()
		if err == nil {
			_ = os.WriteFile(o.shot, png, 0o644)
		}
	}
	var scroll struct {
		Frames []float64
		Max    float64
	}
	if err := eval(scrollJS, &scroll); err != nil {
		return res, fmt.Errorf("scroll: %w", err)
	}
	var lt [][2]float64
	var marks struct{ Start, End float64 }
	if err := eval(`window.__lt`, &lt); err != nil {
		return res, err
	}
	if err := eval(`({Start: window.__scrollStart, End: window.__scrollEnd})`, &marks); err != nil {
		return res, err
	}
	for _, e := range lt {
		switch {
		case e[0] >= marks.Start && e[0] <= marks.End:
			res.LongTasksScrol++
		case e[0] <= res.AllLoadedMs+50:
			res.LongTasksLoad++
			res.LongTaskMaxMs = math.Max(res.LongTaskMaxMs, e[1])
		}
	}
	fr := scroll.Frames
	res.ScrollFrames = len(fr)
	if len(fr) > 0 {
		sorted := append([]float64(nil), fr...)
		sort.Float64s(sorted)
		q := func(p float64) float64 { return sorted[min(len(sorted)-1, int(math.Ceil(p*float64(len(sorted))))-1)] }
		res.FrameP50Ms, res.FrameP99Ms, res.FrameMaxMs = q(0.5), q(0.99), sorted[len(sorted)-1]
		for _, f := range fr {
			if f > jankFrameMs {
				res.JankyFrames++
			}
		}
	}
	return res, nil
}

func remarshal(in any, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, out)
}
