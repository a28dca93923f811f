// Package portal serves the web portal: the single-page app built from
// web/ (React, TypeScript, Vite) into dist/, embedded in the binary.
//
// dist/ is committed, as PocketBase does with its admin UI, so building
// and running AIPress needs no Node.js; `make web` rebuilds it and `make
// test` rebuilds it into a temporary folder and fails when the committed
// copy differs (scripts/web.sh check). The handler is written here rather
// than taken from a library because it is small and specific: index.html
// for every client-side route, hashed assets cached for a year, gzip
// compressed once at start-up, and the security headers the portal needs.
package portal

import (
	"bytes"
	"compress/gzip"
	"embed"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
)

//go:embed all:dist
var dist embed.FS

// CSP is the portal's Content-Security-Policy: its own scripts only (no
// inline script), inline style attributes (the component library sets
// them), images from https (organisation logos) and data: URLs, and no
// framing.
const CSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' https: data:; " +
	"connect-src 'self'; font-src 'self' data:; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"

type file struct {
	body, gz []byte
	ctype    string
	etag     string
}

// Handler serves the embedded portal.
type Handler struct {
	files map[string]*file // by path without the leading slash
}

// New returns a Handler for the embedded dist/ folder.
func New() (*Handler, error) {
	sub, err := fs.Sub(dist, "dist")
	if err != nil {
		return nil, fmt.Errorf("portal: %w", err)
	}
	return newHandler(sub)
}

func newHandler(fsys fs.FS) (*Handler, error) {
	h := &Handler{files: map[string]*file{}}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		f := &file{body: b, ctype: mime.TypeByExtension(path.Ext(p))}
		if f.ctype == "" {
			f.ctype = http.DetectContentType(b)
		}
		var zb bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&zb, gzip.BestCompression)
		zw.Write(b)
		zw.Close()
		if zb.Len() < len(b) {
			f.gz = zb.Bytes()
		}
		f.etag = strconv.Quote(fmt.Sprintf("%x-%d", crc(b), len(b)))
		h.files[p] = f
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("portal: reading the build: %w", err)
	}
	if h.files["index.html"] == nil {
		return nil, fmt.Errorf("portal: the build has no index.html (run make web)")
	}
	return h, nil
}

func crc(b []byte) uint32 {
	var c uint32 = 2166136261
	for _, x := range b {
		c = (c ^ uint32(x)) * 16777619
	}
	return c
}

// staticExt are the extensions of files a browser asks for by itself;
// any other path is one of the app's routes (site names have dots:
// /sites/blog.example.com).
var staticExt = map[string]bool{".js": true, ".css": true, ".map": true, ".ico": true, ".png": true,
	".svg": true, ".jpg": true, ".webp": true, ".woff": true, ".woff2": true, ".json": true, ".txt": true, ".xml": true}

// ServeHTTP answers GET and HEAD: a file of the build, or index.html for
// any other path (the app's own routes). A
// missing asset is a plain 404, so a stale cached page fails visibly
// instead of receiving HTML as JavaScript.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	p := strings.TrimPrefix(path.Clean("/"+r.URL.Path), "/")
	f, ok := h.files[p]
	immutable := ok && strings.HasPrefix(p, "assets/")
	if !ok {
		if strings.HasPrefix(p, "assets/") || staticExt[path.Ext(p)] {
			http.NotFound(w, r)
			return
		}
		f = h.files["index.html"]
	}
	hd := w.Header()
	hd.Set("Content-Type", f.ctype)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "same-origin")
	hd.Set("Content-Security-Policy", CSP)
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Vary", "Accept-Encoding")
	hd.Set("ETag", f.etag)
	if immutable {
		hd.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		hd.Set("Cache-Control", "no-cache")
	}
	if match := r.Header.Get("If-None-Match"); match != "" && match == f.etag {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	body := f.body
	if f.gz != nil && acceptsGzip(r.Header.Get("Accept-Encoding")) {
		hd.Set("Content-Encoding", "gzip")
		body = f.gz
	}
	hd.Set("Content-Length", strconv.Itoa(len(body)))
	if r.Method == http.MethodHead {
		return
	}
	w.Write(body)
}

func acceptsGzip(v string) bool {
	for _, part := range strings.Split(v, ",") {
		name, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(name), "gzip") {
			return !strings.Contains(strings.ReplaceAll(q, " ", ""), "q=0") || strings.Contains(q, "q=0.")
		}
	}
	return false
}

// Sizes reports the build's JavaScript that a first visit loads (the
// entry script index.html names, and every script it imports statically)
// and all of it, gzip-compressed, in bytes.
func (h *Handler) Sizes() (firstLoad, total int) {
	for p, f := range h.files {
		if strings.HasSuffix(p, ".js") {
			total += gzLen(f)
		}
	}
	seen := map[string]bool{}
	var visit func(p string)
	visit = func(p string) {
		if seen[p] || h.files[p] == nil {
			return
		}
		seen[p] = true
		f := h.files[p]
		firstLoad += gzLen(f)
		for _, dep := range staticImports(string(f.body)) {
			visit(path.Join(path.Dir(p), dep))
		}
	}
	for _, src := range scriptSources(string(h.files["index.html"].body)) {
		visit(strings.TrimPrefix(src, "/"))
	}
	return firstLoad, total
}

func gzLen(f *file) int {
	if f.gz != nil {
		return len(f.gz)
	}
	return len(f.body)
}
