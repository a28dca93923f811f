package waf

import (
	"embed"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	coreruleset "github.com/corazawaf/coraza-coreruleset/v4"
	"github.com/corazawaf/coraza/v3"
	"github.com/corazawaf/coraza/v3/experimental"
	"github.com/corazawaf/coraza/v3/types"

	"github.com/aipress/aipress/internal/edge"
	"github.com/aipress/aipress/internal/site"
)

// DefaultBodyLimit is how much of a request body is inspected when
// Config.BodyLimit is zero.
const DefaultBodyLimit = 128 << 10

// BlockedMessage is the message of the page a blocked request gets.
const BlockedMessage = "This request was blocked by the web application firewall."

//go:embed rules/*.conf
var rulesFS embed.FS

// Config configures a Firewall. The zero value is usable.
type Config struct {
	// Logger receives one warning per matched rule and the build times of
	// the rule sets. Nil discards.
	Logger *slog.Logger
	// BodyLimit is how many bytes of a request body are read into memory
	// and inspected; the rest streams to the next handler uninspected.
	// Zero or negative means DefaultBodyLimit.
	BodyLimit int64
}

// Firewall is the edge's WAF: the OWASP CRS on Coraza with AIPress's
// WordPress exclusions, one rule set per paranoia level, built on first
// use. It is safe for concurrent use.
type Firewall struct {
	log       *slog.Logger
	bodyLimit int64
	levels    [4]ruleSet
}

type ruleSet struct {
	once sync.Once
	waf  coraza.WAF
	err  error
}

// New returns a Firewall. Rule sets are built lazily; call Prepare to build
// one ahead of the first request.
func New(cfg Config) (*Firewall, error) {
	f := &Firewall{log: cfg.Logger, bodyLimit: cfg.BodyLimit}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	if f.bodyLimit <= 0 {
		f.bodyLimit = DefaultBodyLimit
	}
	// Fail now, not on the first request, if the embedded files are broken.
	for _, name := range []string{"base.conf", "crs-setup.conf", "wordpress.conf"} {
		if _, err := rulesFS.ReadFile("rules/" + name); err != nil {
			return nil, fmt.Errorf("waf: %w", err)
		}
	}
	return f, nil
}

// Prepare builds the rule set of paranoia level pl (clamped to 1–4) if it
// was not built yet.
func (f *Firewall) Prepare(pl int) error {
	_, err := f.ruleSet(pl)
	return err
}

// directives returns the configuration of the rule set of one paranoia
// level: engine settings, CRS setup, WordPress exclusions, then the CRS
// request rules (the response rules are never run: response inspection is
// off).
func (f *Firewall) directives(pl int) (string, error) {
	var b strings.Builder
	for _, name := range []string{"base.conf", "crs-setup.conf", "wordpress.conf"} {
		data, err := rulesFS.ReadFile("rules/" + name)
		if err != nil {
			return "", err
		}
		b.Write(data)
		b.WriteByte('\n')
	}
	b.WriteString("Include @owasp_crs/REQUEST-*.conf\n")
	s := strings.NewReplacer(
		"{{BODY_LIMIT}}", strconv.FormatInt(f.bodyLimit, 10),
		"{{PARANOIA}}", strconv.Itoa(pl),
	).Replace(b.String())
	return s, nil
}

func clampParanoia(pl int) int {
	return min(max(pl, 1), 4)
}

func (f *Firewall) ruleSet(pl int) (coraza.WAF, error) {
	pl = clampParanoia(pl)
	rs := &f.levels[pl-1]
	rs.once.Do(func() {
		start := time.Now()
		dirs, err := f.directives(pl)
		if err != nil {
			rs.err = fmt.Errorf("waf: paranoia %d: %w", pl, err)
			return
		}
		rs.waf, rs.err = coraza.NewWAF(coraza.NewWAFConfig().
			WithRootFS(coreruleset.FS).
			WithDirectives(dirs))
		if rs.err != nil {
			rs.err = fmt.Errorf("waf: paranoia %d: %w", pl, rs.err)
			f.log.Error("waf: building the rule set failed", "paranoia", pl, "err", rs.err)
			return
		}
		f.log.Info("waf: rule set built", "paranoia", pl, "duration", time.Since(start).Round(time.Millisecond))
	})
	return rs.waf, rs.err
}

// Middleware returns the edge middleware. Per route it reads
// Options.WAFMode (off, detect, block; empty means block) and
// Options.WAFParanoia (1–4; out-of-range values are clamped).
func (f *Firewall) Middleware() edge.Middleware {
	return func(next edge.RouteHandler) edge.RouteHandler {
		return func(w http.ResponseWriter, r *http.Request, rt *edge.Route) error {
			mode := rt.Options.WAFMode
			if mode == "" {
				mode = site.WAFBlock
			}
			if mode == site.WAFOff {
				return next(w, r, rt)
			}
			return f.serve(w, r, rt, mode == site.WAFBlock, next)
		}
	}
}

func (f *Firewall) serve(w http.ResponseWriter, r *http.Request, rt *edge.Route, block bool, next edge.RouteHandler) error {
	pl := clampParanoia(rt.Options.WAFParanoia)
	info := edge.InfoFrom(r.Context())
	reqID := ""
	if info != nil {
		reqID = info.ID
	}
	waf, err := f.ruleSet(pl)
	if err != nil {
		if block { // fail closed
			return &edge.HTTPError{Status: http.StatusInternalServerError, Message: "Internal error.", Cause: err}
		}
		f.log.Error("waf: not inspecting", "site", rt.Site, "request_id", reqID, "err", err)
		return next(w, r, rt)
	}
	var tx types.Transaction
	if wo, ok := waf.(experimental.WAFWithOptions); ok && reqID != "" {
		tx = wo.NewTransactionWithOptions(experimental.Options{ID: reqID, Context: r.Context()})
	} else {
		tx = waf.NewTransaction()
	}
	// Close frees the body buffer the next handler reads from: only after
	// it returned.
	defer tx.Close()

	it, err := f.inspect(tx, r)
	if err != nil {
		return err
	}
	blocked := it != nil && block
	f.report(tx, rt, reqID, pl, block, it)
	if info != nil {
		for _, mr := range tx.MatchedRules() {
			if logged(mr) {
				info.WAFRules = append(info.WAFRules, mr.Rule().ID())
			}
		}
		info.WAFBlocked = blocked
	}
	if blocked {
		status := it.Status
		if status == 0 || it.Action != "deny" {
			status = http.StatusForbidden
		}
		return &edge.HTTPError{Status: status, Message: BlockedMessage,
			Cause: fmt.Errorf("waf: rule %d: %s", it.RuleID, it.Data)}
	}
	return next(w, r, rt)
}

// inspect runs phases 1 and 2 over r. The part of the body the WAF read is
// put back in front of the rest, so the next handler reads it all.
func (f *Firewall) inspect(tx types.Transaction, r *http.Request) (*types.Interruption, error) {
	client, port := r.RemoteAddr, 0
	if h, p, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		client = h
		port, _ = strconv.Atoi(p)
	}
	tx.ProcessConnection(client, port, "", 0)
	uri := r.RequestURI
	if uri == "" {
		uri = r.URL.RequestURI()
	}
	tx.ProcessURI(uri, r.Method, r.Proto)
	for k, vs := range r.Header {
		for _, v := range vs {
			tx.AddRequestHeader(k, v)
		}
	}
	if r.Host != "" {
		tx.AddRequestHeader("Host", r.Host)
		tx.SetServerName(r.Host)
	}
	// net/http moves Content-Length into r.ContentLength; CRS checks that
	// a body comes with one (920180).
	if r.ContentLength > 0 && r.Header.Get("Content-Length") == "" {
		tx.AddRequestHeader("Content-Length", strconv.FormatInt(r.ContentLength, 10))
	}
	for _, te := range r.TransferEncoding {
		tx.AddRequestHeader("Transfer-Encoding", te)
	}
	if it := tx.ProcessRequestHeaders(); it != nil {
		return it, nil
	}
	if tx.IsRequestBodyAccessible() && r.Body != nil && r.Body != http.NoBody {
		// Reads at most the body limit into memory.
		it, _, err := tx.ReadRequestBodyFrom(r.Body)
		if err != nil {
			return nil, &edge.HTTPError{Status: http.StatusBadRequest, Message: "The request body could not be read.",
				Cause: fmt.Errorf("waf: reading the request body: %w", err)}
		}
		buffered, err := tx.RequestBodyReader()
		if err != nil {
			return nil, fmt.Errorf("waf: request body: %w", err)
		}
		r.Body = &replayBody{Reader: io.MultiReader(buffered, r.Body), Closer: r.Body}
		if it != nil {
			return it, nil
		}
	}
	it, err := tx.ProcessRequestBody()
	if err != nil {
		return nil, fmt.Errorf("waf: request body: %w", err)
	}
	return it, nil
}

type replayBody struct {
	io.Reader
	io.Closer
}

// logged reports whether a matched rule is one worth reporting (CRS's
// bookkeeping rules are nolog and have no message).
func logged(mr types.MatchedRule) bool {
	if l, ok := mr.(interface{ Log() bool }); ok && !l.Log() {
		return false
	}
	return mr.Rule().ID() != 0 && mr.Message() != ""
}

// report logs every matched rule at warn.
func (f *Firewall) report(tx types.Transaction, rt *edge.Route, reqID string, pl int, block bool, it *types.Interruption) {
	action := "pass" // matched, below the anomaly threshold
	switch {
	case it != nil && block:
		action = "block"
	case it != nil:
		action = "detect" // would have been blocked
	case !block:
		action = "detect"
	}
	for _, mr := range tx.MatchedRules() {
		if !logged(mr) {
			continue
		}
		f.log.Warn("waf: rule matched",
			"site", rt.Site, "request_id", reqID, "rule_id", mr.Rule().ID(),
			"msg", mr.Message(), "data", truncate(mr.Data(), 200),
			"paranoia", pl, "rule_paranoia", ruleParanoia(mr.Rule().Tags()),
			"action", action, "client", mr.ClientIPAddress(), "uri", truncate(mr.URI(), 200))
	}
}

func ruleParanoia(tags []string) int {
	for _, t := range tags {
		if n, ok := strings.CutPrefix(t, "paranoia-level/"); ok {
			if v, err := strconv.Atoi(n); err == nil {
				return v
			}
		}
	}
	return 0
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
