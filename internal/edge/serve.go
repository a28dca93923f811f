package edge

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aipress/aipress/internal/edge/precompress"
)

// noExecPrefix is the only directory site users can write to; PHP is never
// run from it (nor is its source served).
const noExecPrefix = "/wp-content/uploads/"

// serveSite implements WordPress's try_files: an existing .php file runs, a
// directory with index.php runs that, an existing static file is served, and
// everything else goes to the front controller /index.php. A route with a
// Gateway (a shard on another machine) asks that shard instead of the
// local disk (remote.go).
func (s *Server) serveSite(w http.ResponseWriter, r *http.Request, rt *Route) error {
	if rt.Gateway != "" {
		return s.serveRemote(w, r, rt)
	}
	res, err := s.tryFiles(r, rt)
	if err != nil {
		return err
	}
	switch res.kind {
	case tryRedirect:
		http.Redirect(w, r, res.location, http.StatusMovedPermanently)
		return nil
	case tryStatic:
		return s.serveStatic(w, r, rt, res.fsPath, res.fi)
	default:
		return s.callPHP(w, r, rt, res.script, res.pathInfo)
	}
}

// tryKind is what try_files decided for a request.
type tryKind uint8

const (
	tryPHP      tryKind = iota // run script with pathInfo
	tryStatic                  // serve fsPath (stat: fi)
	tryRedirect                // 301 to location (a directory without its slash)
)

// tryResult is try_files' decision about one request.
type tryResult struct {
	kind             tryKind
	script, pathInfo string
	fsPath           string
	fi               os.FileInfo
	location         string
}

// tryFiles decides, from the route's docroot on this machine, what serves
// r; it returns an error (404, 500 …) when nothing may.
func (s *Server) tryFiles(r *http.Request, rt *Route) (tryResult, error) {
	if !filepath.IsAbs(rt.Docroot) {
		return tryResult{}, &HTTPError{Status: http.StatusServiceUnavailable, Message: "This site is not available yet.",
			Cause: fmt.Errorf("route %s: docroot %q is not absolute", rt.Site, rt.Docroot)}
	}
	upath := r.URL.Path
	if upath == "" || upath[0] != '/' {
		upath = "/" + upath
	}
	trailingSlash := strings.HasSuffix(upath, "/")
	clean := path.Clean(upath)
	if strings.IndexByte(clean, 0) >= 0 || hasDotSegment(clean) {
		return tryResult{}, notFound(fmt.Errorf("refused path %q", clean))
	}
	fsPath, fi, err := s.stat(rt.Docroot, clean)
	switch {
	case err == nil && fi.IsDir():
		script := path.Join(clean, "index.php")
		if isRegularFile(filepath.Join(fsPath, "index.php")) && !strings.HasPrefix(script, noExecPrefix) {
			if !trailingSlash {
				target := clean + "/"
				if clean == "/" {
					target = "/"
				}
				if r.URL.RawQuery != "" {
					target += "?" + r.URL.RawQuery
				}
				return tryResult{kind: tryRedirect, location: target}, nil
			}
			return tryResult{kind: tryPHP, script: script}, nil
		}
		return s.frontController(r, rt)
	case err == nil && fi.Mode().IsRegular() && !trailingSlash:
		name := path.Base(clean)
		if isPHPScript(name) {
			return tryResult{kind: tryPHP, script: clean}, nil
		}
		if forbiddenName(name) {
			return tryResult{}, notFound(fmt.Errorf("refused to serve %q", clean))
		}
		return tryResult{kind: tryStatic, fsPath: fsPath, fi: fi}, nil
	case err == nil:
		return tryResult{}, notFound(fmt.Errorf("not a regular file: %q (%s)", clean, fi.Mode().Type()))
	case errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) || trailingSlash:
		if script, info, ok := splitPathInfo(clean); ok {
			if isRegularFile(filepath.Join(rt.Docroot, filepath.FromSlash(script))) {
				return tryResult{kind: tryPHP, script: script, pathInfo: info}, nil
			}
		}
		return s.frontController(r, rt)
	default:
		return tryResult{}, &HTTPError{Status: http.StatusInternalServerError, Message: "Internal error.", Cause: fmt.Errorf("stat %s: %w", fsPath, err)}
	}
}

// stat returns the path of clean (a cleaned URL path) in docroot and its
// os.Stat, from statCache when a stat of it said a regular file less than
// statValidity ago.
func (s *Server) stat(docroot, clean string) (string, os.FileInfo, error) {
	// A shard's static server answers edges that keep its files
	// themselves (remote.go) and revalidate them: it stats every time.
	tenant := s.staticServer || strings.HasPrefix(clean, "/"+uploadsRel+"/")
	key := statKey{docroot, clean}
	now := s.now()
	if !tenant {
		if e, ok := s.stats.get(key, now); ok {
			return e.fsPath, e.fi, nil
		}
	}
	fsPath := filepath.Join(docroot, filepath.FromSlash(clean))
	fi, err := os.Stat(fsPath)
	if err == nil && fi.Mode().IsRegular() && !tenant {
		s.stats.put(key, statEntry{fsPath: fsPath, fi: fi, at: now})
	}
	return fsPath, fi, err
}

// statCache remembers, for statValidity, the stat of the docroot paths
// that were regular files (static files and PHP scripts) outside the
// site's uploads (the one tree its user can write, whose files are
// checked on a fresh stat at every request: serveStatic), as nginx's
// open_file_cache does (bench-edge's nginx keeps them 60 s): a static
// request then makes no stat(2) of its own. A file changed, added or
// removed is seen at most statValidity later. Nothing is sent on the
// strength of a remembered stat alone: a small file's in-memory copy is
// only served while the remembered size and time match it (so a file
// changed meanwhile is served as it was, a moment longer), and a file
// that is opened is checked on its descriptor (serveStatic).
type statCache struct {
	boundedMap[statKey, statEntry]
}

type statKey struct{ docroot, clean string }

type statEntry struct {
	fsPath string
	fi     os.FileInfo
	at     time.Time
}

const (
	statValidity = time.Second
	maxStats     = 16384
)

// get returns k's entry while it is younger than statValidity.
func (c *statCache) get(k statKey, now time.Time) (statEntry, bool) {
	e, ok := c.boundedMap.get(k)
	if !ok || now.Sub(e.at) >= statValidity || now.Before(e.at) {
		return statEntry{}, false
	}
	return e, true
}

func (c *statCache) put(k statKey, e statEntry) { c.boundedMap.put(k, e, maxStats) }

// frontController runs /index.php for a URL that names no file (pretty
// permalinks); REQUEST_URI stays the original URI.
func (s *Server) frontController(r *http.Request, rt *Route) (tryResult, error) {
	if !isRegularFile(filepath.Join(rt.Docroot, "index.php")) {
		return tryResult{}, notFound(fmt.Errorf("no %s and no index.php in %s", r.URL.Path, rt.Docroot))
	}
	return tryResult{kind: tryPHP, script: "/index.php"}, nil
}

// splitPathInfo splits "/index.php/foo/bar" into "/index.php" and "/foo/bar"
// at the first path segment ending in ".php".
func splitPathInfo(p string) (script, info string, ok bool) {
	for i := 0; i < len(p); {
		j := strings.IndexByte(p[i+1:], '/')
		if j < 0 {
			return "", "", false
		}
		end := i + 1 + j
		if strings.HasSuffix(p[:end], ".php") {
			return p[:end], p[end:], true
		}
		i = end
	}
	return "", "", false
}

// serveStatic serves fsPath if its real location (after symlinks) is inside
// the docroot or an allowed symlink root, opening it through an os.Root so
// a symlink swapped in after the check cannot escape either.
//
// Small files are kept in memory (staticCache) keyed by their real location
// and revalidated against fi, the stat the caller just made: a hit costs no
// open, fstat, sendfile or close.
func (s *Server) serveStatic(w http.ResponseWriter, r *http.Request, rt *Route, fsPath string, fi os.FileInfo) error {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		return &HTTPError{Status: http.StatusMethodNotAllowed, Message: "Method not allowed."}
	}
	rootDir, rel, err := s.confine(rt.Docroot, fsPath)
	if err != nil {
		return notFound(err)
	}
	if forbiddenName(filepath.Base(rel)) || hasDotSegment("/"+filepath.ToSlash(rel)) {
		return notFound(fmt.Errorf("%s resolves to refused file %s", fsPath, filepath.Join(rootDir, rel)))
	}
	realPath := filepath.Join(rootDir, rel)
	realDoc, err := s.realDocroot(rt.Docroot)
	if err != nil {
		return notFound(err)
	}
	// A file the site's user could have made (uploads) must be its own:
	// checked on the stat the caller made, so that a cached copy is not
	// served for a name that has since become a link to a foreign file,
	// and again below on the descriptor actually opened.
	tenantTree := rootDir == realDoc && inUploads(rel)
	if tenantTree && !strings.HasPrefix(filepath.ToSlash(strings.TrimPrefix(fsPath, rt.Docroot)), "/"+uploadsRel+"/") {
		// Reached through another name, whose stat may be remembered
		// (statCache): the checks need a fresh one.
		if fi, err = os.Stat(fsPath); err != nil {
			return notFound(err)
		}
	}
	if tenantTree {
		if err := checkTenantFile(realDoc, fi); err != nil {
			s.static.forget(realPath)
			return notFound(fmt.Errorf("%s: %w", fsPath, err))
		}
	}
	if e, ok := s.static.get(realPath); ok && int64(len(e.body)) == fi.Size() && e.modTime.Equal(fi.ModTime()) {
		w.Header().Set("X-Content-Type-Options", "nosniff")
		serveBytes(w, r, filepath.Base(fsPath), e)
		return nil
	}
	root, closeRoot, err := s.openRoot(rootDir)
	if err != nil {
		s.resolved.forget(fsPath)
		return notFound(fmt.Errorf("open root %s: %w", rootDir, err))
	}
	defer closeRoot()
	f, err := root.Open(rel)
	if err != nil {
		s.resolved.forget(fsPath)
		return notFound(fmt.Errorf("open %s in %s: %w", rel, rootDir, err))
	}
	defer f.Close()
	// os.Root keeps the open inside rootDir but follows symlinks there: a
	// link swapped in after the checks above (a site user owns uploads)
	// could still lead to wp-config.php. Check what was really opened.
	opened, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(int(f.Fd())))
	if err != nil {
		return &HTTPError{Status: http.StatusInternalServerError, Message: "Internal error.", Cause: fmt.Errorf("opened %s: %w", fsPath, err)}
	}
	orel, ok := within(rootDir, opened)
	if !ok || forbiddenName(filepath.Base(opened)) || hasDotSegment("/"+filepath.ToSlash(orel)) {
		s.resolved.forget(fsPath)
		return notFound(fmt.Errorf("%s opened %s, which is refused", fsPath, opened))
	}
	fi, err = f.Stat() // the opened file, which a swapped symlink cannot change
	if err != nil {
		return &HTTPError{Status: http.StatusInternalServerError, Message: "Internal error.", Cause: fmt.Errorf("stat %s: %w", fsPath, err)}
	}
	if !fi.Mode().IsRegular() {
		return notFound(fmt.Errorf("%s is not a regular file", fsPath))
	}
	// The edge reads as root: a hard link the site's user made in its
	// uploads to a file it cannot read (another site's wp-config.php, a
	// key), or such a file left behind under a foreign owner, must not be
	// served. fstat of the descriptor: what is sent is what was checked.
	if tenantTree || (rootDir == realDoc && inUploads(orel)) {
		if err := checkTenantFile(realDoc, fi); err != nil {
			s.static.forget(realPath)
			return notFound(fmt.Errorf("%s opened %s: %w", fsPath, opened, err))
		}
	}
	w.Header().Set("X-Content-Type-Options", "nosniff")
	if fi.Size() <= maxStaticEntry {
		body := make([]byte, fi.Size())
		if _, err := io.ReadFull(f, body); err == nil {
			e := newStaticEntry(filepath.Base(fsPath), body, fi.ModTime())
			s.static.put(realPath, e)
			serveBytes(w, r, filepath.Base(fsPath), e)
			return nil
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return &HTTPError{Status: http.StatusInternalServerError, Message: "Internal error.", Cause: fmt.Errorf("rewind %s: %w", fsPath, err)}
		}
	}
	// The name (hence Content-Type) is the one the visitor asked for.
	http.ServeContent(w, r, filepath.Base(fsPath), fi.ModTime(), f)
	return nil
}

// uploadsRel is the tree of a docroot that the site's user can write
// (relative to the docroot, slash-separated); see noExecPrefix.
const uploadsRel = "wp-content/uploads"

// inUploads reports whether rel (relative to a real docroot) is below its
// uploads, the one tree of a docroot the site's user can write.
func inUploads(rel string) bool {
	return strings.HasPrefix(filepath.ToSlash(rel), uploadsRel+"/")
}

// checkTenantFile refuses a file of a site-writable tree (fi, a stat that
// followed links) that has more than one name, or whose owner is not the
// owner of the docroot's uploads directory (the site's user, which the
// shard makes it; the site cannot change that directory's owner).
//
// A second name is how a site's user reaches a file it may not read: with
// fs.protected_hardlinks off it can hard-link any file on the file system
// into its uploads, and the edge reads as root. Root is not an accepted
// owner either: the shard writes a site's uploads as the site's user, so a
// root-owned file there is a hard link whose other name was removed or
// replaced — e.g. a link to a secret the shard later rewrote by rename,
// which leaves the old inode, still holding the old secret, with one name.
func checkTenantFile(realDoc string, fi os.FileInfo) error {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return errors.New("no owner information for a file in uploads")
	}
	if st.Nlink != 1 {
		return fmt.Errorf("refused: a file in uploads with %d names (hard link)", st.Nlink)
	}
	dir, err := os.Lstat(filepath.Join(realDoc, filepath.FromSlash(uploadsRel)))
	if err != nil {
		return fmt.Errorf("refused: owner of uploads: %w", err)
	}
	dst, ok := dir.Sys().(*syscall.Stat_t)
	if !ok || !dir.IsDir() {
		return fmt.Errorf("refused: %s is not a directory", uploadsRel)
	}
	if st.Uid != dst.Uid {
		return fmt.Errorf("refused: a file in uploads owned by uid %d, not by the site's user (uid %d)", st.Uid, dst.Uid)
	}
	return nil
}

// serveBytes serves an in-memory file: the plain GET or HEAD in one Write,
// anything conditional or ranged through http.ServeContent (which would
// otherwise copy through a fresh 32 KiB buffer and flush twice). A file
// with a gzip variant is sent compressed to visitors that accept gzip
// (not for Range requests: ranges are of the identity bytes), and says
// Vary: Accept-Encoding in both encodings.
func serveBytes(w http.ResponseWriter, r *http.Request, name string, e staticEntry) {
	h := w.Header()
	body, length := e.body, e.length
	// The type of the file, not of the bytes sent (the gzip variant's
	// bytes would sniff as application/x-gzip); by the name asked for.
	if name == e.name && e.ctype != nil {
		h["Content-Type"] = e.ctype[:1:1] // shared: a later Add copies
	} else {
		h.Set("Content-Type", contentType(name, body))
	}
	if e.gz != nil {
		precompress.AddVary(h)
		if r.Header.Get("Range") == "" && precompress.AcceptsGzip(r) {
			body, length = e.gz, e.gzLength
			h.Set("Content-Encoding", "gzip")
		}
	}
	if r.Header.Get("Range") != "" || r.Header.Get("If-Modified-Since") != "" || r.Header.Get("If-None-Match") != "" ||
		r.Header.Get("If-Range") != "" || r.Header.Get("If-Match") != "" || r.Header.Get("If-Unmodified-Since") != "" {
		http.ServeContent(w, r, name, e.modTime, bytes.NewReader(body))
		return
	}
	// Values computed once per file (newStaticEntry), shared by every
	// response as the page cache shares its entries' (a later Add copies).
	h["Last-Modified"] = e.lastModified[:1:1]
	h["Accept-Ranges"] = acceptRanges[:1:1]
	h["Content-Length"] = length[:1:1]
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		w.Write(body)
	}
}

var acceptRanges = []string{"bytes"}

// contentType is the type of a file named name: by its extension, else
// sniffed from its bytes.
func contentType(name string, body []byte) string {
	if ctype := mime.TypeByExtension(filepath.Ext(name)); ctype != "" {
		return ctype
	}
	return http.DetectContentType(body)
}

// newStaticEntry is a file's body for the in-memory tier, with its gzip
// variant when its type (by name) is text that compresses, and the header
// values of its responses.
func newStaticEntry(name string, body []byte, modTime time.Time) staticEntry {
	e := staticEntry{body: body, size: int64(len(body)), modTime: modTime, name: name,
		ctype:        []string{contentType(name, body)},
		lastModified: []string{modTime.UTC().Format(http.TimeFormat)},
		length:       []string{strconv.Itoa(len(body))}}
	if precompress.Compressible(mime.TypeByExtension(filepath.Ext(name))) {
		e.gz = precompress.Gzip(body)
		e.size += int64(len(e.gz))
		if e.gz != nil {
			e.gzLength = []string{strconv.Itoa(len(e.gz))}
		}
	}
	return e
}

// Static files up to maxStaticEntry bytes are kept in memory, up to
// maxStaticBytes in all (a shard's themes and core assets fit many times).
const (
	maxStaticEntry = 256 << 10
	maxStaticBytes = 64 << 20
)

type staticEntry struct {
	body []byte
	gz   []byte // gzip variant (nil: none)
	name string // base name it was read under (ctype is by it)
	// Header values, shared by every response (cap = len: an Add copies).
	ctype, lastModified, length, gzLength []string
	size                                  int64 // bytes kept: body and gz
	modTime                               time.Time
	fetched                               time.Time // remote entries: when the shard last confirmed it
}

// staticCache holds small static files by real path; when full it starts
// over (the working set of a shard's assets is small and shared).
type staticCache struct {
	mu    sync.RWMutex
	m     map[string]staticEntry
	bytes int64
}

func (c *staticCache) get(p string) (staticEntry, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	e, ok := c.m[p]
	return e, ok
}

func (c *staticCache) reset() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.m, c.bytes = nil, 0
}

func (c *staticCache) forget(p string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if old, ok := c.m[p]; ok {
		c.bytes -= old.size
		delete(c.m, p)
	}
}

func (c *staticCache) put(p string, e staticEntry) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || c.bytes+e.size > maxStaticBytes {
		c.m, c.bytes = make(map[string]staticEntry, 256), 0
	}
	if old, ok := c.m[p]; ok {
		c.bytes -= old.size
	}
	c.m[p] = e
	c.bytes += e.size
}

// confine resolves fsPath's symlinks and returns the root (the docroot's
// real path or an allowed symlink root) that contains the result, and the
// result relative to it. It fails when the real path is in none of them.
//
// Resolutions are cached (resolveCache): a static request would otherwise
// walk every component of a deep path twice. A cached answer stays safe when
// a symlink changes afterwards, because files are then opened through an
// os.Root of the root the answer named, which no symlink can escape; and
// only the site's uploads directory can change under a site's user.
func (s *Server) confine(docroot, fsPath string) (rootDir, rel string, err error) {
	if r, ok := s.resolved.get(fsPath); ok {
		return r.root, r.rel, nil
	}
	real, err := filepath.EvalSymlinks(fsPath)
	if err != nil {
		return "", "", fmt.Errorf("resolve %s: %w", fsPath, err)
	}
	realDoc, err := s.realDocroot(docroot)
	if err != nil {
		return "", "", err
	}
	allowed := *s.allowed.Load()
	for i := -1; i < len(allowed); i++ {
		root := realDoc
		if i >= 0 {
			root = allowed[i]
		}
		if rel, ok := within(root, real); ok {
			// Uploads are the one place a site's user can change links;
			// their resolutions are never reused.
			if !strings.HasPrefix(fsPath, filepath.Join(docroot, filepath.FromSlash(noExecPrefix))) {
				s.resolved.put(fsPath, resolution{root: root, rel: rel})
			}
			return root, rel, nil
		}
	}
	return "", "", fmt.Errorf("%s resolves to %s, outside the docroot and the allowed symlink roots", fsPath, real)
}

// realDocroot returns docroot with its symlinks resolved (cached: a docroot
// path is never reused for another site, it is named by the site's id).
func (s *Server) realDocroot(docroot string) (string, error) {
	if v, ok := s.realDocs.Load(docroot); ok {
		return v.(string), nil
	}
	real, err := filepath.EvalSymlinks(docroot)
	if err != nil {
		return "", fmt.Errorf("resolve docroot %s: %w", docroot, err)
	}
	s.realDocs.Store(docroot, real)
	return real, nil
}

// openRoot returns an os.Root for dir: the allowed symlink roots (few, and
// where most static files of a shared core live) stay open; a docroot is
// opened per request, since a shard can host more sites than the process
// may keep descriptors. close must be called when done.
func (s *Server) openRoot(dir string) (root *os.Root, close func(), err error) {
	if v, ok := s.allowedRoots.Load(dir); ok {
		return v.(*os.Root), func() {}, nil
	}
	root, err = os.OpenRoot(dir)
	if err != nil {
		return nil, nil, err
	}
	if slices.Contains(*s.allowed.Load(), dir) {
		if v, loaded := s.allowedRoots.LoadOrStore(dir, root); loaded {
			root.Close()
			return v.(*os.Root), func() {}, nil
		}
		return root, func() {}, nil
	}
	return root, func() { root.Close() }, nil
}

// resolution is where a path in a docroot really is: rel inside root.
type resolution struct{ root, rel string }

// resolveCache is a bounded map of resolutions; when full it starts over.
type resolveCache struct {
	boundedMap[string, resolution]
}

const maxResolutions = 16384

func (c *resolveCache) put(p string, r resolution) { c.boundedMap.put(p, r, maxResolutions) }

// boundedMap is a map shared by requests that starts over empty once it
// holds max entries: for caches refilled on demand, cheaper than evicting
// one entry at a time.
type boundedMap[K comparable, V any] struct {
	mu sync.RWMutex
	m  map[K]V
}

func (b *boundedMap[K, V]) get(k K) (V, bool) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	v, ok := b.m[k]
	return v, ok
}

func (b *boundedMap[K, V]) put(k K, v V, max int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.m == nil || len(b.m) >= max {
		b.m = make(map[K]V, 256)
	}
	b.m[k] = v
}

func (b *boundedMap[K, V]) forget(k K) {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.m, k)
}

func (b *boundedMap[K, V]) reset() {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.m = nil
}

// within reports whether p is root or below it, and p relative to root.
func within(root, p string) (string, bool) {
	if p == root {
		return ".", true
	}
	prefix := root
	if !strings.HasSuffix(prefix, string(filepath.Separator)) {
		prefix += string(filepath.Separator)
	}
	if strings.HasPrefix(p, prefix) {
		return p[len(prefix):], true
	}
	return "", false
}

// hasDotSegment reports whether a slash-separated path has a segment that
// starts with "." (.git, .htaccess, .env, …).
func hasDotSegment(p string) bool {
	for seg := range strings.SplitSeq(p, "/") {
		if strings.HasPrefix(seg, ".") && seg != "." {
			return true
		}
	}
	return false
}

// isPHPScript reports whether name is run by PHP (and never served).
func isPHPScript(name string) bool { return strings.HasSuffix(name, ".php") }

// forbiddenName reports whether a file must never be served statically:
// PHP source in any spelling, dumps, logs, backups and editor leftovers.
func forbiddenName(name string) bool {
	lower := strings.ToLower(name)
	if strings.HasSuffix(lower, "~") || strings.HasPrefix(lower, ".") || strings.HasPrefix(lower, "#") {
		return true
	}
	for _, ext := range forbiddenExts {
		if strings.HasSuffix(lower, ext) {
			return true
		}
	}
	// "wp-config.php.save", "index.php.orig", "x.php.txt"? The last is
	// plain text by intent; ".php." followed by a backup-ish suffix is not.
	if i := strings.Index(lower, ".php"); i >= 0 {
		switch lower[i+4:] {
		case "", "3", "4", "5", "7", "8", "s", ".save", ".orig", ".old", ".swp", ".swo", ".dist", ".bak", ".tmp":
			return true
		}
	}
	return false
}

var forbiddenExts = []string{
	".php", ".phtml", ".phar", ".pht", ".phps",
	".sql", ".sql.gz", ".sqlite", ".db", ".log", ".bak", ".old", ".orig", ".save", ".swp", ".swo", ".tmp",
	".ini", ".env", ".sh",
}

func isRegularFile(p string) bool {
	fi, err := os.Stat(p)
	return err == nil && fi.Mode().IsRegular()
}
