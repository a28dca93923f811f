package wxr

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"time"

	"github.com/aipress/aipress/internal/egress"
)

// FetchLimits bound the attachments an import downloads; zero fields
// take the defaults.
type FetchLimits struct {
	// Bytes is an attachment's largest size (default 64 MiB).
	Bytes int64
	// Count is the most attachments fetched (default 2,000); the rest
	// are reported as failures.
	Count int
	// Timeout bounds one download (default 2 minutes).
	Timeout time.Duration
}

func (l FetchLimits) withDefaults() FetchLimits {
	if l.Bytes <= 0 {
		l.Bytes = 64 << 20
	}
	if l.Count <= 0 {
		l.Count = 2000
	}
	if l.Timeout <= 0 {
		l.Timeout = 2 * time.Minute
	}
	return l
}

// Fetcher downloads attachments (see the package's doc). Not safe for
// concurrent use.
type Fetcher struct {
	client  *http.Client
	limits  FetchLimits
	allow   bool
	fetched int
}

// NewFetcher returns a fetcher within lim; allowPrivate lets it reach
// loopback and private addresses (tests, private mirrors).
func NewFetcher(lim FetchLimits, allowPrivate bool) *Fetcher {
	lim = lim.withDefaults()
	c := &http.Client{Transport: egress.Transport(allowPrivate), Timeout: lim.Timeout,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 5 {
				return errors.New("more than 5 redirects")
			}
			return checkURL(req.URL)
		}}
	return &Fetcher{client: c, limits: lim, allow: allowPrivate}
}

func checkURL(u *url.URL) error {
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%q: only http and https URLs are fetched: %w", u.Redacted(), egress.ErrForbidden)
	}
	if u.Hostname() == "" {
		return fmt.Errorf("%q has no host", u.Redacted())
	}
	if u.User != nil {
		return fmt.Errorf("%q: credentials in a URL are not allowed", u.Redacted())
	}
	return nil
}

// Fetch downloads raw into a new file in dir and returns its path and
// the file name the URL gives. The caller removes the file.
func (f *Fetcher) Fetch(ctx context.Context, raw, dir string) (file, name string, err error) {
	if f.fetched >= f.limits.Count {
		return "", "", fmt.Errorf("more than %d attachments: not fetched", f.limits.Count)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", "", fmt.Errorf("%q is not a URL: %w", raw, err)
	}
	if err := checkURL(u); err != nil {
		return "", "", err
	}
	if !f.allow {
		// Names such as localhost resolve to loopback: the dialler
		// refuses them too; this says so before dialling.
		if err := egress.CheckURL("https://"+u.Host, false); err != nil {
			return "", "", err
		}
	}
	f.fetched++
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return "", "", err
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return "", "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "", "", fmt.Errorf("GET %s: %s", u.Redacted(), resp.Status)
	}
	if resp.ContentLength > f.limits.Bytes {
		return "", "", fmt.Errorf("GET %s: %d bytes, more than the limit of %d", u.Redacted(), resp.ContentLength, f.limits.Bytes)
	}
	out, err := os.CreateTemp(dir, "attachment-*")
	if err != nil {
		return "", "", err
	}
	n, err := io.Copy(out, io.LimitReader(resp.Body, f.limits.Bytes+1))
	if err == nil && n > f.limits.Bytes {
		err = fmt.Errorf("GET %s: more than the limit of %d bytes", u.Redacted(), f.limits.Bytes)
	}
	if err == nil && n == 0 {
		err = fmt.Errorf("GET %s: empty", u.Redacted())
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(out.Name())
		return "", "", err
	}
	name = path.Base(u.Path)
	if name == "" || name == "/" || name == "." {
		name = "attachment"
	}
	return out.Name(), name, nil
}
