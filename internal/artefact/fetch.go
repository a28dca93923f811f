package artefact

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"

	"github.com/aipress/aipress/internal/egress"
)

// CheckURL refuses URLs a zip or git source may not name: only https to a
// host that is not a loopback or private address literal; with
// allowPrivate (tests, private mirrors) plain http and any address too.
// Names are checked again after DNS resolution when they are dialled.
func CheckURL(raw string, allowPrivate bool) error { return egress.CheckURL(raw, allowPrivate) }

// spool copies r (at most MaxArchiveBytes) into a file below .tmp,
// returning its path and SHA-256. want, when set, must be the SHA-256.
func (s *Store) spool(r io.Reader, what, want string) (string, string, error) {
	f, err := os.CreateTemp(filepath.Join(s.cfg.Dir, ".tmp"), "dl-*")
	if err != nil {
		return "", "", err
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	h := sha256.New()
	max := s.cfg.Limits.MaxArchiveBytes
	n, err := io.Copy(io.MultiWriter(f, h), io.LimitReader(r, max+1))
	if err != nil {
		return "", "", fmt.Errorf("%s: %w", what, err)
	}
	if n > max {
		return "", "", refuse("", "%s: more than the limit of %d bytes", what, max)
	}
	if err := f.Close(); err != nil {
		return "", "", err
	}
	sum := hex.EncodeToString(h.Sum(nil))
	if want != "" && sum != want {
		return "", "", refuse("", "%s: SHA-256 mismatch: the archive's is %s, %s was expected", what, sum, want)
	}
	ok = true
	return f.Name(), sum, nil
}

// download fetches url into .tmp (see spool).
func (s *Store) download(ctx context.Context, url, want string) (string, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "", "", err
	}
	req.Header.Set("User-Agent", userAgent)
	resp, err := s.cfg.Client.Do(req)
	if err != nil {
		return "", "", fmt.Errorf("download: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone {
		return "", "", fmt.Errorf("download %s: %s: %w", url, resp.Status, ErrNotFound)
	}
	if resp.StatusCode != http.StatusOK {
		return "", "", fmt.Errorf("download %s: %s", url, resp.Status)
	}
	if resp.ContentLength > s.cfg.Limits.MaxArchiveBytes {
		return "", "", refuse("", "%s: %d bytes, more than the limit of %d", url, resp.ContentLength, s.cfg.Limits.MaxArchiveBytes)
	}
	s.cfg.Logger.Info("artefact download", "url", url)
	return s.spool(resp.Body, url, want)
}

const userAgent = "AIPress artefact store"

func (s *Store) ensureZipURL(ctx context.Context, ref Ref) (*Artefact, error) {
	src := ref.Source
	if !digestRE.MatchString(src.SHA256) {
		return nil, fmt.Errorf("a zip source needs the archive's SHA-256 (64 lower-case hex digits)")
	}
	if err := CheckURL(src.URL, s.cfg.AllowPrivateNetworks); err != nil {
		return nil, err
	}
	// The store answers without a download only when this URL gave this
	// archive before: a digest the store holds from elsewhere (another
	// organisation's upload, another URL) proves nothing about the URL,
	// and naming a digest must not be a way to get someone's artefact.
	key := "zip\x00" + string(ref.Kind) + "\x00" + src.URL + "\x00" + src.SHA256
	if a := s.indexed(ref.Kind, key); a != nil {
		return checkSame(a, ref)
	}
	unlock, err := s.lock(ctx, "fetch:"+string(ref.Kind)+":"+src.SHA256)
	if err != nil {
		return nil, err
	}
	defer unlock()
	if a := s.indexed(ref.Kind, key); a != nil {
		return checkSame(a, ref)
	}
	p, sum, err := s.download(ctx, src.URL, src.SHA256)
	if err != nil {
		return nil, err
	}
	a, err := s.ensureFile(ctx, ref, "", p, sum)
	if err != nil {
		return nil, err
	}
	if err := s.remember(key, sum); err != nil {
		return nil, err
	}
	return a, nil
}

func (s *Store) ensureUpload(ctx context.Context, ref Ref) (*Artefact, error) {
	sha := ref.Source.SHA256
	if !digestRE.MatchString(sha) {
		return nil, fmt.Errorf("an upload source names the upload by its SHA-256 (64 lower-case hex digits)")
	}
	org := ref.Org
	if org == "" {
		return nil, errors.New("an upload source needs the organisation of the site it is for")
	}
	if a, err := s.Get(ref.Kind, org, sha); err == nil {
		return checkSame(a, ref)
	}
	if s.cfg.Uploads == nil {
		return nil, errors.New("this shard cannot fetch uploaded artefacts")
	}
	unlock, err := s.lock(ctx, "fetch:"+string(ref.Kind)+":"+s.dirName(org, sha))
	if err != nil {
		return nil, err
	}
	defer unlock()
	if a, err := s.Get(ref.Kind, org, sha); err == nil {
		return checkSame(a, ref)
	}
	rc, err := s.cfg.Uploads(ctx, sha)
	if errors.Is(err, fs.ErrNotExist) && !errors.Is(err, ErrNotFound) {
		err = fmt.Errorf("%w: %w", err, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("upload %s: %w", sha, err)
	}
	defer rc.Close()
	p, sum, err := s.spool(rc, "upload "+sha, sha)
	if err != nil {
		return nil, err
	}
	a, err := s.ensureFile(ctx, ref, org, p, sum)
	if err != nil {
		return nil, err
	}
	return checkSame(a, ref)
}

// checkSame refuses an artefact found by digest under another name than
// ref's (one archive's root folder is one name).
func checkSame(a *Artefact, ref Ref) (*Artefact, error) {
	if a.Name != ref.Name {
		return nil, refuse(a.Name+"/", "the archive's root folder is %q, not %q (the %s's slug)", a.Name, ref.Name, ref.Kind)
	}
	return a, nil
}
