// Package precompress keeps gzip variants of the responses the edge holds
// in memory (page-cache entries, small static files): a body is compressed
// once, when it is stored, and the variant is sent to every visitor whose
// Accept-Encoding takes gzip. nginx's `gzip on` compresses on every
// response instead; a stored variant costs one compression per fill.
//
// Only textual types are compressed (Compressible), only bodies of at least
// MinSize bytes, and only when compression saves at least a tenth
// (Gzip returns nil otherwise). Responses with a variant say
// "Vary: Accept-Encoding" in both encodings (AddVary).
package precompress

import (
	"bytes"
	"compress/gzip"
	"mime"
	"net/http"
	"strings"
)

// MinSize is the smallest body worth compressing (nginx's gzip_min_length
// is 20 bytes by default; below about a kilobyte the header and the
// trailer eat most of the gain).
const MinSize = 1024

// Level is the compression level of stored variants: compressed once per
// stored body, so better than nginx's per-response default (1).
const Level = gzip.DefaultCompression

// Compressible reports whether a response of Content-Type ctype is text
// that gzip shrinks (HTML, CSS, JavaScript, JSON, XML, SVG, plain text).
func Compressible(ctype string) bool {
	mt, _, err := mime.ParseMediaType(ctype)
	if err != nil {
		mt = strings.ToLower(strings.TrimSpace(ctype))
	}
	switch {
	case strings.HasPrefix(mt, "text/"):
		return true
	case mt == "application/javascript", mt == "application/x-javascript", mt == "application/json",
		mt == "application/ld+json", mt == "application/xml", mt == "application/rss+xml",
		mt == "application/atom+xml", mt == "image/svg+xml", mt == "application/manifest+json",
		mt == "application/xhtml+xml", mt == "image/x-icon", mt == "image/vnd.microsoft.icon",
		mt == "font/ttf", mt == "font/otf", mt == "application/vnd.ms-fontobject":
		return true
	}
	return false
}

// Gzip returns body compressed, or nil when it is shorter than MinSize or
// compression does not save at least a tenth of it.
func Gzip(body []byte) []byte {
	if len(body) < MinSize {
		return nil
	}
	var b bytes.Buffer
	b.Grow(len(body) / 3)
	zw, err := gzip.NewWriterLevel(&b, Level)
	if err != nil {
		return nil
	}
	if _, err := zw.Write(body); err != nil {
		return nil
	}
	if err := zw.Close(); err != nil {
		return nil
	}
	if b.Len() > len(body)-len(body)/10 {
		return nil
	}
	return bytes.Clone(b.Bytes())
}

// AcceptsGzip reports whether r's Accept-Encoding takes gzip: "gzip" (or
// "x-gzip") with a non-zero q, or "*" with a non-zero q when gzip is not
// named (RFC 9110 §12.5.3). No Accept-Encoding: no.
func AcceptsGzip(r *http.Request) bool {
	star := false
	for _, line := range r.Header.Values("Accept-Encoding") {
		for item := range strings.SplitSeq(line, ",") {
			name, params, _ := strings.Cut(item, ";")
			name = strings.TrimSpace(name)
			ok := !zeroQ(params)
			switch {
			case strings.EqualFold(name, "gzip"), strings.EqualFold(name, "x-gzip"):
				return ok
			case name == "*":
				star = ok
			}
		}
	}
	return star
}

// zeroQ reports whether the parameters of an Accept-Encoding item set q to
// zero.
func zeroQ(params string) bool {
	for p := range strings.SplitSeq(params, ";") {
		k, v, ok := strings.Cut(p, "=")
		if !ok || !strings.EqualFold(strings.TrimSpace(k), "q") {
			continue
		}
		v = strings.TrimSpace(v)
		return strings.Trim(v, "0.") == "" && v != ""
	}
	return false
}

// AddVary adds Accept-Encoding to h's Vary unless it is listed already.
func AddVary(h http.Header) {
	for _, v := range h.Values("Vary") {
		for f := range strings.SplitSeq(v, ",") {
			if f = strings.TrimSpace(f); f == "*" || strings.EqualFold(f, "Accept-Encoding") {
				return
			}
		}
	}
	h.Add("Vary", "Accept-Encoding")
}

// WeakETag returns etag as the gzip variant's validator: weak (as nginx's
// gzip makes it), since the variant's bytes differ from the identity one's.
func WeakETag(etag string) string {
	if etag == "" || strings.HasPrefix(etag, "W/") {
		return etag
	}
	return "W/" + etag
}
