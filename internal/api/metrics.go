package api

import (
	"bytes"
	"net/http"
)

// metrics serves the Prometheus metrics through cfg.Metrics. Prometheus
// scrapes it with bearer-token auth like every other route (role viewer).
func (s *server) metrics(c *call) (response, error) {
	if s.cfg.Metrics == nil {
		return response{}, errorf(http.StatusNotFound, CodeNotFound, "metrics are not enabled")
	}
	// Ask for the plain text format, uncompressed: the body is buffered and
	// written by the common response path.
	r := c.r.Clone(c.r.Context())
	r.Header.Del("Accept-Encoding")
	rec := &bufferWriter{header: http.Header{}}
	s.cfg.Metrics.ServeHTTP(rec, r)
	if rec.status == 0 {
		rec.status = http.StatusOK
	}
	ct := rec.header.Get("Content-Type")
	if ct == "" {
		ct = "text/plain; version=0.0.4; charset=utf-8"
	}
	return response{status: rec.status, raw: rec.buf.Bytes(), contentType: ct}, nil
}

// bufferWriter is a minimal in-memory http.ResponseWriter.
type bufferWriter struct {
	header http.Header
	status int
	buf    bytes.Buffer
}

func (b *bufferWriter) Header() http.Header { return b.header }
func (b *bufferWriter) WriteHeader(code int) {
	if b.status == 0 {
		b.status = code
	}
}
func (b *bufferWriter) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.buf.Write(p)
}
