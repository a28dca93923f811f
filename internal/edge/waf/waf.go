package waf

import (
	"embed"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
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

// Defaults for zero Config fields.
const (
	// DefaultBodyLimit bounds request bodies that are not file uploads,
	// and the fields of uploads.
	DefaultBodyLimit = 128 << 10
	// DefaultMaxBodyBytes bounds multipart (upload) bodies: the edge's own
	// limit.
	DefaultMaxBodyBytes = edge.DefaultMaxBodyBytes
)

// TooLargeMessage is the message of the page a body too large to inspect
// gets (413).
const TooLargeMessage = "The request body is too large for the web application firewall to inspect."

// BlockedMessage is the message of the page a blocked request gets.
const BlockedMessage = "This request was blocked by the web application firewall."

//go:embed rules/*.conf
var rulesFS embed.FS

// Config configures a Firewall. The zero value is usable.
type Config struct {
	// Logger receives one warning per matched rule and the build times of
	// the rule sets. Nil discards.
	Logger *slog.Logger
	// BodyLimit bounds a request body that is not multipart/form-data
	// (a form, JSON, XML): one that is longer is refused with 413 (rule
	// 10008), unless the site excludes 10008 for the path; then the first
	// BodyLimit bytes are inspected and the rest passes uninspected. It
	// also bounds the fields of a multipart body (everything but its
	// files; rule 10009) and is how much of a multipart body is held in
	// memory. Zero or negative means DefaultBodyLimit.
	BodyLimit int64
	// MaxBodyBytes bounds a multipart/form-data body, which is read whole
	// (beyond BodyLimit into a temporary file) and inspected whole before
	// the next handler sees it; longer ones get 413. Zero or negative
	// means DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// Events, if set, receives one event per matched rule of every
	// request the WAF refuses (or, in detect mode, would refuse). Record
	// must not block: it runs on the request path (Reporter).
	Events EventRecorder
	// Clock stamps events. Default time.Now.
	Clock func() time.Time
}

// EventRecorder takes WAF events; see Reporter.
type EventRecorder interface {
	Record(events ...site.WAFEvent)
}

// Firewall is the edge's WAF: the OWASP CRS on Coraza with AIPress's
// WordPress exclusions, one rule set per paranoia level, built on first
// use. It is safe for concurrent use.
type Firewall struct {
	log       *slog.Logger
	bodyLimit int64
	maxBody   int64
	events    EventRecorder
	clock     func() time.Time
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
	f := &Firewall{log: cfg.Logger, bodyLimit: cfg.BodyLimit, maxBody: cfg.MaxBodyBytes, events: cfg.Events, clock: cfg.Clock}
	if f.log == nil {
		f.log = slog.New(slog.DiscardHandler)
	}
	if f.bodyLimit <= 0 {
		f.bodyLimit = DefaultBodyLimit
	}
	if f.maxBody <= 0 {
		f.maxBody = DefaultMaxBodyBytes
	}
	f.maxBody = max(f.maxBody, f.bodyLimit)
	if f.clock == nil {
		f.clock = time.Now
	}
	// Fail now, not on the first request, if the embedded files are broken.
	if _, err := f.directives(1); err != nil {
		return nil, err
	}
	if _, err := rules(); err != nil {
		return nil, err
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
// level: engine settings, CRS setup, WordPress exclusions, the JSON twins,
// then the CRS request rules (the response rules are never run: response
// inspection is off).
func (f *Firewall) directives(pl int) (string, error) {
	var b strings.Builder
	for _, name := range ruleFiles {
		data, err := rulesFS.ReadFile("rules/" + name)
		if err != nil {
			return "", fmt.Errorf("waf: %w", err)
		}
		b.Write(data)
		b.WriteByte('\n')
	}
	b.WriteString("Include @owasp_crs/REQUEST-*.conf\n")
	rx943110, err := crsPattern("REQUEST-943-APPLICATION-ATTACK-SESSION-FIXATION.conf", 943110)
	if err != nil {
		return "", err
	}
	rx943120, err := crsPattern("REQUEST-943-APPLICATION-ATTACK-SESSION-FIXATION.conf", 943120)
	if err != nil {
		return "", err
	}
	s := strings.NewReplacer(
		// One more than the limits: a body that fills Coraza's limit is
		// longer than ours.
		"{{BODY_LIMIT}}", strconv.FormatInt(f.bodyLimit+1, 10),
		"{{UPLOAD_LIMIT}}", strconv.FormatInt(f.maxBody+1, 10),
		"{{PARANOIA}}", strconv.Itoa(pl),
		"{{RX_943110}}", rx943110,
		"{{RX_943120}}", rx943120,
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
		if rs.err == nil {
			// Site exclusions need per-transaction rule removal.
			tx := rs.waf.NewTransaction()
			if _, ok := tx.(ruleRemover); !ok {
				rs.err = fmt.Errorf("coraza transactions (%T) cannot remove rules per request", tx)
			}
			tx.Close()
		}
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

	ex := applyExclusions(tx, r.URL.Path, rt.Options.WAFExclusions)
	it, err := f.inspect(tx, r, ex)
	if err != nil {
		return err
	}
	blocked := it != nil && block
	f.report(tx, rt, reqID, pl, block, it)
	if it != nil && f.events != nil {
		f.events.Record(f.eventsFor(tx, r, rt, reqID, pl, block, it)...)
	}
	if info != nil {
		for _, mr := range tx.MatchedRules() {
			if logged(mr) {
				info.WAFRules = append(info.WAFRules, mr.Rule().ID())
			}
		}
		if it != nil && it.RuleID == RuleMultipartFields {
			info.WAFRules = append(info.WAFRules, RuleMultipartFields)
		}
		info.WAFBlocked = blocked
	}
	if blocked {
		status := it.Status
		if status == 0 || it.Action != "deny" {
			status = http.StatusForbidden
		}
		msg := BlockedMessage
		if status == http.StatusRequestEntityTooLarge {
			msg = TooLargeMessage
		}
		return &edge.HTTPError{Status: status, Message: msg,
			Cause: fmt.Errorf("waf: rule %d: %s", it.RuleID, it.Data)}
	}
	return next(w, r, rt)
}

// inspect runs phases 1 and 2 over r. The part of the body the WAF read is
// put back in front of the rest, so the next handler reads it all.
func (f *Firewall) inspect(tx types.Transaction, r *http.Request, ex exclusions) (*types.Interruption, error) {
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
		multipart := isMultipart(r.Header)
		if multipart && r.ContentLength > f.maxBody {
			return nil, tooLarge(fmt.Errorf("waf: multipart body of %d bytes exceeds %d", r.ContentLength, f.maxBody))
		}
		// Reads at most the transaction's body limit (rules 10010,
		// 10011): the body limit, or the whole of a multipart body. The
		// guard stops a multipart body of unknown length before Coraza
		// would process a cut one.
		body := http.MaxBytesReader(nil, r.Body, f.maxBody)
		it, _, err := tx.ReadRequestBodyFrom(body)
		if err != nil {
			var mbe *http.MaxBytesError
			if errors.As(err, &mbe) {
				return nil, tooLarge(fmt.Errorf("waf: multipart body exceeds %d bytes: %w", f.maxBody, err))
			}
			return nil, &edge.HTTPError{Status: http.StatusBadRequest, Message: "The request body could not be read.",
				Cause: fmt.Errorf("waf: reading the request body: %w", err)}
		}
		buffered, err := tx.RequestBodyReader()
		if err != nil {
			return nil, fmt.Errorf("waf: request body: %w", err)
		}
		r.Body = &replayBody{Reader: io.MultiReader(buffered, body), Closer: r.Body}
		if it != nil {
			return it, nil
		}
		// Coraza reads every field of a multipart body into memory and
		// runs the rules over it: fields larger than the body limit are
		// refused before it parses them.
		if multipart && !ex.wholeRule(RuleMultipartFields) {
			rd, err := tx.RequestBodyReader()
			if err != nil {
				return nil, fmt.Errorf("waf: request body: %w", err)
			}
			if n, over := multipartFieldBytes(rd, r.Header.Get("Content-Type"), f.bodyLimit); over {
				return &types.Interruption{RuleID: RuleMultipartFields, Action: "deny", Status: http.StatusRequestEntityTooLarge,
					Data: fmt.Sprintf("multipart fields of more than %d bytes (%d read)", f.bodyLimit, n)}, nil
			}
		}
	}
	it, err := tx.ProcessRequestBody()
	if err != nil {
		return nil, fmt.Errorf("waf: request body: %w", err)
	}
	return it, nil
}

// isMultipart reports whether Coraza parses the body of a request with
// these headers as multipart: its first Content-Type, trimmed and
// lower-cased, starts with multipart/form-data.
func isMultipart(h http.Header) bool {
	ct := h.Values("Content-Type")
	return len(ct) > 0 && strings.HasPrefix(strings.ToLower(strings.TrimSpace(ct[0])), "multipart/form-data")
}

// multipartFieldBytes adds up the sizes of the parts of a multipart body
// that are not files (no file name) until they exceed limit. A body that
// does not parse is left to Coraza (which refuses it, rules 10006, 10007).
func multipartFieldBytes(body io.Reader, contentType string, limit int64) (int64, bool) {
	_, params, err := mime.ParseMediaType(contentType)
	if err != nil || params["boundary"] == "" {
		return 0, false
	}
	mr := multipart.NewReader(body, params["boundary"])
	var total int64
	for {
		p, err := mr.NextRawPart()
		if err != nil {
			return total, false
		}
		if p.FileName() != "" {
			continue
		}
		n, _ := io.Copy(io.Discard, io.LimitReader(p, limit-total+1))
		total += n
		if total > limit {
			return total, true
		}
	}
}

func tooLarge(cause error) *edge.HTTPError {
	return &edge.HTTPError{Status: http.StatusRequestEntityTooLarge, Message: TooLargeMessage, Cause: cause}
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
