package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/target"
	"github.com/chromedp/chromedp"
)

// chromiumPath is Debian's Chromium (make deps installs it).
const chromiumPath = "/usr/bin/chromium"

// artifactsDir is where the portal tests keep their screenshots:
// $AIPRESS_ARTIFACTS, else e2e/artifacts/ in the repository (ignored by git).
func artifactsDir(t *testing.T, sub string) string {
	t.Helper()
	dir := os.Getenv("AIPRESS_ARTIFACTS")
	if dir == "" {
		dir = "artifacts"
	}
	dir = filepath.Join(dir, sub)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	abs, _ := filepath.Abs(dir)
	return abs
}

// browser is one headless Chromium profile (its own cookies), driven
// through the DevTools protocol by chromedp.
type browser struct {
	t     *testing.T
	ctx   context.Context
	base  string // the portal's URL
	shots string // screenshots folder
	name  string // file-name prefix of its screenshots
	// opener is the tab that opened this one (clickToNewTab).
	opener *browser
}

// closeTab closes a tab clickToNewTab returned and brings its opener to
// the front again (a background tab does not paint).
func (b *browser) closeTab() {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	br := chromedp.FromContext(ctx).Browser
	id := chromedp.FromContext(b.ctx).Target.TargetID
	if _, err := cdp.Call(ctx, br, target.CloseTarget, target.CloseTargetParams{TargetID: id}); err != nil {
		b.t.Logf("close tab: %v", err)
	}
	o := b.opener
	if _, err := cdp.Call(ctx, br, target.ActivateTarget, target.ActivateTargetParams{TargetID: chromedp.FromContext(o.ctx).Target.TargetID}); err != nil {
		b.t.Fatalf("activate the first tab: %v", err)
	}
}

// newBrowser starts Chromium with a new, empty profile. The flags keep it
// off the network (this machine's is closed): no background services, no
// component updates, no QUIC; --no-sandbox because the tests run as root.
//
// Site hosts (*.localhost) resolve to the edge's loopback address (edge,
// "127.0.0.1:port") with the port mapped too, so the browser asks for
// http://shop.localhost/ — the URL WordPress knows — and reaches the edge.
func newBrowser(t *testing.T, base, edge, shots, name string) *browser {
	t.Helper()
	if _, err := exec.LookPath(chromiumPath); err != nil {
		t.Fatalf("%s missing: make deps installs Debian's chromium", chromiumPath)
	}
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.WindowSize(1280, 900),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("no-proxy-server", true),
		chromedp.Flag("disable-popup-blocking", true),
		chromedp.Flag("host-resolver-rules", "MAP *.localhost "+edge),
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelB := chromedp.NewContext(actx, chromedp.WithLogf(t.Logf))
	t.Cleanup(func() { cancelB(); cancelA() })
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return &browser{t: t, ctx: ctx, base: strings.TrimRight(base, "/"), shots: shots, name: name}
}

// run runs actions with a deadline, failing the test (with a screenshot)
// on error.
func (b *browser) run(what string, d time.Duration, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, d)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		b.shot("failed-" + slug(what))
		tctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
		defer cancel()
		body, _ := chromedp.Run(tctx, chromedp.Text(chromedp.CSS("body")))
		b.t.Fatalf("%s: %v\npage text:\n%s", what, err, body)
	}
}

// poll waits until a JavaScript expression is truthy.
func poll(expr string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := chromedp.Poll[any](expr, chromedp.WithPollingInterval(250*time.Millisecond))(ctx, t)
		return err
	})
}

func slug(s string) string {
	return strings.Trim(regexp.MustCompile(`[^a-z0-9]+`).ReplaceAllString(strings.ToLower(s), "-"), "-")
}

// shot saves a full-page screenshot as <name>-<what>.png.
func (b *browser) shot(what string) string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	// From the top: a full-page capture of a scrolled page draws the fixed
	// header in the middle.
	_, _ = chromedp.Run(ctx, chromedp.Evaluate[any](`window.scrollTo(0, 0)`))
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Logf("screenshot %s: %v", what, err)
		return ""
	}
	p := filepath.Join(b.shots, b.name+"-"+what+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	return p
}

// open navigates to a portal path.
func (b *browser) open(path string) {
	b.t.Helper()
	b.run("open "+path, 30*time.Second, chromedp.Navigate(b.base+path))
}

// xq quotes s as an XPath string literal.
func xq(s string) string {
	if !strings.Contains(s, "'") {
		return "'" + s + "'"
	}
	return `concat('` + strings.ReplaceAll(s, `'`, `', "'", '`) + `')`
}

// button is the XPath of a visible button (or link styled as one) whose
// text is exactly text.
func button(text string) string {
	return `//*[(self::button or self::a or @role='button' or @role='tab' or @role='menuitem') and normalize-space(.)=` + xq(text) + ` and not(@disabled) and not(@data-disabled='true')]`
}

// inputFor is the XPath of the input, textarea or select a label names
// (the label's text may carry a required-mark after it), or of one whose
// aria-label is the label.
func inputFor(label string) string {
	byLabel := `//label[normalize-space(.)=` + xq(label) + ` or starts-with(normalize-space(.), ` + xq(label+" ") + `)]/@for`
	return `//*[(self::input or self::textarea or self::select) and (@id=` + byLabel + ` or @aria-label=` + xq(label) + `)]`
}

// click clicks the first visible match of an XPath.
func (b *browser) click(what, xpath string) {
	b.t.Helper()
	b.run("click "+what, 30*time.Second,
		chromedp.WaitVisible(chromedp.Search(xpath)),
		chromedp.Click(chromedp.Search(xpath), chromedp.NodeVisible))
}

// clickButton clicks the button whose text is text.
func (b *browser) clickButton(text string) { b.t.Helper(); b.click("button "+text, button(text)) }

// fill types value into the field labelled label (clearing it first).
func (b *browser) fill(label, value string) {
	b.t.Helper()
	x := inputFor(label)
	// Found by XPath in the page, cleared through the element's native
	// value setter and an input event (as React expects: setting the value
	// alone leaves React's state as it was) and focused; then typed into
	// with real key events.
	focus := `(() => { const r = document.evaluate(` + jsString(x) + `, document, null, XPathResult.ORDERED_NODE_SNAPSHOT_TYPE, null);
		for (let i = 0; i < r.snapshotLength; i++) {
			const el = r.snapshotItem(i);
			if (!el.offsetParent || el.disabled) continue;
			const set = Object.getOwnPropertyDescriptor(Object.getPrototypeOf(el), 'value').set;
			set.call(el, ''); el.dispatchEvent(new Event('input', {bubbles: true}));
			el.focus();
			return document.activeElement === el;
		}
		return false; })()`
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, poll(focus)); err != nil {
		dctx, dcancel := context.WithTimeout(b.ctx, 5*time.Second)
		defer dcancel()
		diag, _ := chromedp.Run(dctx, chromedp.Evaluate[string](`Array.from(document.querySelectorAll('label')).map(l => JSON.stringify([l.textContent, l.htmlFor, !!document.getElementById(l.htmlFor)])).join('\n')`))
		b.shot("failed-fill-" + slug(label))
		b.t.Fatalf("fill %s: %v\nlabels in the page:\n%s", label, err, diag)
	}
	b.run("type into "+label, 30*time.Second, chromedp.KeyEvent(value))
}

// waitText waits until the page's text contains s.
func (b *browser) waitText(s string, d time.Duration) {
	b.t.Helper()
	b.run("wait for text "+s, d, poll(`document.body && document.body.innerText.includes(`+jsString(s)+`)`))
}

// waitURL waits until the location's path+search+hash starts with prefix.
func (b *browser) waitURL(prefix string, d time.Duration) {
	b.t.Helper()
	b.run("wait for URL "+prefix, d, poll(`(location.pathname+location.search+location.hash).startsWith(`+jsString(prefix)+`)`))
}

// waitTestID waits until an element with data-testid id has text want
// (its DOM text: a badge may show it in capitals by CSS).
func (b *browser) waitTestID(id, want string, d time.Duration) {
	b.t.Helper()
	js := fmt.Sprintf(`(() => { const e = document.querySelector(%s); return !!e && e.textContent.trim() === %s })()`, jsString(`[data-testid="`+id+`"]`), jsString(want))
	b.run("wait for "+id+" = "+want, d, poll(js))
}

// count returns how many elements match a CSS selector.
func (b *browser) count(css string) int {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll(`+jsString(css)+`).length`))
	if err != nil {
		b.t.Fatalf("count %s: %v", css, err)
	}
	return n
}

// text returns the page's visible text.
func (b *browser) text() string {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS("body")))
	if err != nil {
		b.t.Fatalf("read text: %v", err)
	}
	return s
}

func jsString(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\n", `\n`)
	return "'" + r.Replace(s) + "'"
}

// navigate is chromedp.Navigate, for any URL.
func navigate(u string) chromedp.Action[chromedp.Void] { return chromedp.Navigate(u) }

// clickToNewTab clicks a button that opens a new tab (window.open) and
// returns a browser driving that tab.
func (b *browser) clickToNewTab(text string) *browser {
	b.t.Helper()
	ch := chromedp.WaitNewTarget(b.ctx, func(i *target.Info) bool { return i.Type == "page" })
	b.clickButton(text)
	select {
	case id := <-ch:
		tctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithTargetID(id))
		b.t.Cleanup(cancel)
		// Bring it to the front: a background tab does not paint, so
		// screenshots and waits on it would hang.
		if err := chromedp.Do(tctx); err != nil {
			b.t.Fatalf("attach to the new tab: %v", err)
		}
		if _, err := cdp.Call(tctx, chromedp.FromContext(tctx).Browser, target.ActivateTarget, target.ActivateTargetParams{TargetID: id}); err != nil {
			b.t.Fatalf("activate the new tab: %v", err)
		}
		nb := *b
		nb.ctx = tctx
		nb.opener = b
		return &nb
	case <-time.After(30 * time.Second):
		b.shot("failed-new-tab")
		b.t.Fatalf("%q opened no new tab", text)
		return nil
	}
}

// waitCount waits until at least n elements match a CSS selector.
func (b *browser) waitCount(css string, n int, d time.Duration) {
	b.t.Helper()
	b.run(fmt.Sprintf("wait for %d × %s", n, css), d, poll(fmt.Sprintf(`document.querySelectorAll(%s).length >= %d`, jsString(css), n)))
}

// chooseOrg picks an organisation in the header's switcher.
func (b *browser) chooseOrg(org string) {
	b.t.Helper()
	b.click("organisation switcher", inputFor("Organisation"))
	b.click("organisation "+org, `//*[@role='option' and normalize-space(.)=`+xq(org)+`]`)
	b.run("organisation chosen", 10*time.Second, poll(`localStorage.getItem('aipress.org') === `+jsString(org)))
}
