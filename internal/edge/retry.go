package edge

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/textproto"
	"strings"
	"syscall"
	"time"
)

// Restarts without errors. A site's pool is briefly unreachable while its
// php-fpm master restarts (a crash, or the shard starting): dialling its
// socket fails with "no such file" (the new master has not created it yet)
// or "connection refused" (a socket left by a dead master), and a request
// a dying master held is reset before any answer. WordPress, while its
// database restarts, answers "Error establishing a database connection";
// the shard installs a wp-content/db-error.php drop-in that makes that
// answer a 503 marked with RetryHeader (internal/wordpress). Instead of
// passing such failures on, runPHP tries again, with a short backoff,
// within Config.PHPRetryWait of the first attempt:
//
//   - a failed dial, for any method: nothing of the request left the edge;
//   - a reset before any response byte, and a marked answer, only for GET
//     and HEAD without a body: PHP may have started on the request, which
//     must be one that may run twice. A POST that may have reached PHP is
//     never sent again.
//
// When the wait runs out the visitor gets what the last attempt got: 502
// for a pool that did not come back, PHP's own 503 (with Retry-After) for
// the database. A request the page cache could answer with a stale page
// (WithoutRetryWait) is not held: the stale page is the better answer.
// RequestInfo.PHPRetry tells Observe what happened (metrics count it).

// RetryHeader, on a 503 answer from PHP, says that the failure is
// transient (its value, the reason, is "database"): the edge may ask again
// for a request that may run twice. The edge removes it from every answer.
const RetryHeader = "X-Aipress-Retry"

// DefaultPHPRetryWait bounds how long after its first attempt a request
// may still be tried again (Config.PHPRetryWait).
const DefaultPHPRetryWait = 3 * time.Second

// Retry reasons (RetryInfo.Reason); a small fixed set, for metric labels.
const (
	RetryPoolMissing = "pool_missing" // the pool's socket does not exist
	RetryPoolRefused = "pool_refused" // nothing listens on it
	RetryPoolReset   = "pool_reset"   // closed before any response byte
	RetryDatabase    = "database"     // PHP's marked 503: its database is down
)

// RetryInfo says how a request's PHP attempts went (RequestInfo.PHPRetry).
type RetryInfo struct {
	// Retries is how many attempts followed the first (0: none).
	Retries int
	// Reason is the failure of the last attempt that was retried, or
	// that would have been had the request allowed it.
	Reason string
	// GaveUp is set when the last attempt failed and the visitor got its
	// failure: the wait ran out, or the request could not be sent again.
	GaveUp bool
}

type noRetryWaitKey struct{}

// WithoutRetryWait marks requests whose failure has a better answer than
// waiting (the page cache's stale page): runPHP does not retry them.
func WithoutRetryWait(ctx context.Context) context.Context {
	return context.WithValue(ctx, noRetryWaitKey{}, true)
}

// retryableError is a failed PHP attempt that another may not meet.
type retryableError struct {
	reason string
	// safeOnly: PHP may have seen the request; only a request that may
	// run twice is sent again.
	safeOnly bool
	final    error      // what the visitor gets if no attempt follows
	answer   *phpAnswer // or PHP's own answer (a marked 503)
}

func (e *retryableError) Error() string {
	if e.final != nil {
		return e.final.Error()
	}
	return "php answered " + e.reason + " unavailable"
}

func (e *retryableError) Unwrap() error { return e.final }

// dialFailure classifies a failed dial of a pool: a missing socket or a
// refused connection may be a restart; anything else (a full backlog, a
// bad endpoint) is not retried.
func dialFailure(err error) error {
	final := badGateway(err)
	switch {
	case errors.Is(err, syscall.ENOENT):
		return &retryableError{reason: RetryPoolMissing, final: final}
	case errors.Is(err, syscall.ECONNREFUSED):
		return &retryableError{reason: RetryPoolRefused, final: final}
	}
	return final
}

// resetFailure classifies err, met before any response byte came: a
// connection closed or reset by the pool may be a restart.
func resetFailure(err error) error {
	if errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return &retryableError{reason: RetryPoolReset, safeOnly: true, final: err}
	}
	return err
}

// retryReason maps RetryHeader's value to a reason of the fixed set.
func retryReason(v string) string {
	if strings.EqualFold(strings.TrimSpace(v), RetryDatabase) {
		return RetryDatabase
	}
	return RetryDatabase // the only transient failure PHP announces today
}

// maxMarkedAnswer bounds the body of a marked answer kept for the visitor
// while the edge waits to ask again (WordPress's error page is ~1 KB).
const maxMarkedAnswer = 64 << 10

// phpAnswer is a short answer of PHP kept in memory.
type phpAnswer struct {
	status int
	hdr    textproto.MIMEHeader
	body   []byte
}

// bufferAnswer reads the rest of head's answer (up to maxMarkedAnswer).
func bufferAnswer(h *phpHead) *phpAnswer {
	body, _ := io.ReadAll(io.LimitReader(h.br, maxMarkedAnswer))
	return &phpAnswer{status: h.status, hdr: h.hdr, body: body}
}

// head returns a as a phpHead for relay.
func (a *phpAnswer) head() *phpHead {
	return &phpHead{status: a.status, hdr: a.hdr, br: bufio.NewReader(bytes.NewReader(a.body)), out: &stdoutReader{}}
}

// phpRetry is the retry state of one request.
type phpRetry struct {
	limit   time.Duration // 0: no retries
	start   time.Time
	safe    bool // GET or HEAD without a body
	retries int
	reason  string
	backoff time.Duration
	onRetry func(reason string) // tests: called before each wait
	// passedMarked: a marked answer went to the visitor as it was (the
	// request may not be sent again, or the wait ran out).
	passedMarked bool
}

// Backoff between attempts: it starts short (a pool's socket appears a
// few hundred milliseconds into a restart) and doubles up to a bound that
// loses little of the moment the pool is back (a failed dial costs next
// to nothing). A marked answer cost PHP a run: those back off more.
const (
	firstBackoff   = 10 * time.Millisecond
	maxBackoff     = 100 * time.Millisecond
	firstDBBackoff = 50 * time.Millisecond
	maxDBBackoff   = 250 * time.Millisecond
)

func (s *Server) newRetry(r *http.Request, hasBody bool) *phpRetry {
	p := &phpRetry{limit: s.retryWait, start: time.Now(), backoff: firstBackoff, onRetry: s.onRetry,
		safe: (r.Method == http.MethodGet || r.Method == http.MethodHead) && !hasBody}
	if v, _ := r.Context().Value(noRetryWaitKey{}).(bool); v {
		p.limit = 0
	}
	return p
}

// mayRetryMarked reports whether a marked answer (reason) may be held
// back for another attempt; if not, it goes to the visitor as it is.
func (p *phpRetry) mayRetryMarked(reason string) bool {
	if p.safe && p.limit > 0 && time.Since(p.start)+p.backoff < p.limit {
		return true
	}
	p.reason, p.passedMarked = reason, true
	return false
}

// wait decides whether re is tried again and, if so, waits the backoff
// first; false: give up (re is the answer).
func (p *phpRetry) wait(ctx context.Context, re *retryableError) bool {
	p.reason = re.reason
	if p.limit <= 0 || (re.safeOnly && !p.safe) {
		return false
	}
	lo, hi := firstBackoff, maxBackoff
	if re.reason == RetryDatabase {
		lo, hi = firstDBBackoff, maxDBBackoff
	}
	d := min(max(p.backoff, lo), hi)
	if time.Since(p.start)+d >= p.limit {
		return false
	}
	p.backoff = min(2*d, hi)
	if p.onRetry != nil {
		p.onRetry(re.reason)
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
	}
	p.retries++
	return true
}

// done records the outcome in the request's RequestInfo; err is the last
// attempt's failure (nil: it succeeded).
func (p *phpRetry) done(r *http.Request, err error) {
	if p.retries == 0 && err == nil && !p.passedMarked {
		return
	}
	var re *retryableError
	if p.retries == 0 && !p.passedMarked && !errors.As(err, &re) {
		return // an ordinary failure, not a restart
	}
	info := InfoFrom(r.Context())
	if info == nil {
		return
	}
	info.PHPRetry = RetryInfo{Retries: p.retries, Reason: p.reason, GaveUp: err != nil || p.passedMarked}
}
