package lean

import (
	"io"
	"net/http"
	"os"
	"slices"
	"strconv"

	"golang.org/x/net/http/httpguts"
)

// bufferBeforeChunking is how much body net/http buffers before it commits
// to a framing: a response whose handler ends within it gets a
// Content-Length, a longer one without Content-Length is chunked.
const bufferBeforeChunking = 2048

// response is the http.ResponseWriter of a request on the lean path. It
// reproduces net/http's HTTP/1.1 response rules (see chunkWriter.writeHeader
// in net/http): Content-Length computed for short bodies, chunked framing
// otherwise, Content-Type sniffed, Date added, headers sorted and
// sanitised, the header snapshot taken at WriteHeader, suppressed headers
// for 1xx/204/304, HEAD bodies discarded, ErrContentLength and
// ErrBodyNotAllowed. Unlike net/http it puts the header block and the body
// of a response in one write(2) or writev(2) whenever it can.
type response struct {
	c      *conn
	req    *http.Request
	isHEAD bool

	handlerHeader http.Header
	header        http.Header // snapshot at WriteHeader (nil: handlerHeader)
	wroteHeader   bool
	committed     bool // header block written (to c.wbuf)
	handlerDone   bool
	status        int
	contentLength int64 // declared or computed; -1: unknown
	written       int64
	chunking      bool
	closeAfter    bool
	wantsClose    bool
	pending       []byte // body before commit (at most bufferBeforeChunking)
}

func (w *response) Header() http.Header {
	return w.handlerHeader // after WriteHeader, changes are not sent (w.header is)
}

func (w *response) WriteHeader(code int) {
	if w.wroteHeader {
		return
	}
	if code < 100 || code > 999 {
		panic("invalid WriteHeader code " + strconv.Itoa(code))
	}
	if code >= 100 && code <= 199 && code != http.StatusSwitchingProtocols {
		w.c.appendStatusLine(code)
		w.c.appendHeader(w.handlerHeader, noBodyHeaders)
		w.c.wbuf = append(w.c.wbuf, "\r\n"...)
		w.c.flush()
		return
	}
	w.wroteHeader = true
	w.status = code
	if cl := w.handlerHeader.Get("Content-Length"); cl != "" {
		v, err := strconv.ParseInt(cl, 10, 64)
		if err == nil && v >= 0 {
			w.contentLength = v
		} else {
			w.handlerHeader.Del("Content-Length")
		}
	}
	// Nothing in the header block depends on the body when the length is
	// declared and the type known (or no body is allowed): commit now,
	// which snapshots the header as net/http does without a copy.
	_, haveType := w.handlerHeader["Content-Type"]
	_, haveTE := w.handlerHeader["Transfer-Encoding"]
	if !haveTE && (!bodyAllowedForStatus(code) || (w.contentLength >= 0 && (haveType || w.handlerHeader.Get("Content-Encoding") != ""))) {
		w.commit(nil)
		return
	}
	w.header = w.handlerHeader.Clone()
}

func (w *response) bodyAllowed() bool { return bodyAllowedForStatus(w.status) }

func (w *response) Write(p []byte) (int, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if len(p) == 0 {
		return 0, nil
	}
	if !w.bodyAllowed() {
		return 0, http.ErrBodyNotAllowed
	}
	w.written += int64(len(p))
	if w.contentLength != -1 && w.written > w.contentLength {
		return 0, http.ErrContentLength
	}
	if w.c.werr != nil {
		return 0, w.c.werr
	}
	if !w.committed {
		if len(w.pending)+len(p) <= bufferBeforeChunking {
			w.pending = append(w.pending, p...)
			return len(p), nil
		}
		w.commit(p)
	}
	w.writeBody(p)
	if w.c.werr != nil {
		return 0, w.c.werr
	}
	return len(p), nil
}

func (w *response) WriteString(s string) (int, error) {
	return w.Write([]byte(s)) // rare on the paths the lean path serves
}

// FlushError sends what was written so far (http.ResponseController).
func (w *response) FlushError() error {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		w.commit(nil)
	}
	w.c.flush()
	return w.c.werr
}

// Flush is http.Flusher.
func (w *response) Flush() { _ = w.FlushError() }

// ReadFrom sends a file with sendfile(2) when the framing allows (a known
// length, no chunking), as net/http's response does.
func (w *response) ReadFrom(src io.Reader) (int64, error) {
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	_, isFile := src.(*os.File)
	if lr, ok := src.(*io.LimitedReader); ok {
		_, isFile = lr.R.(*os.File)
	}
	if !isFile || w.isHEAD || !w.bodyAllowed() || w.contentLength < 0 || !w.committed && w.header != nil {
		return io.CopyBuffer(writerOnly{w}, src, nil)
	}
	if !w.committed {
		w.commit(nil)
	}
	if w.chunking {
		return io.CopyBuffer(writerOnly{w}, src, nil)
	}
	w.c.flush()
	if w.c.werr != nil {
		return 0, w.c.werr
	}
	rf, ok := w.c.rwc.(io.ReaderFrom)
	if !ok {
		return io.CopyBuffer(writerOnly{w}, src, nil)
	}
	n, err := rf.ReadFrom(src)
	w.written += n
	if err != nil {
		w.c.werr = err
	}
	return n, err
}

// writerOnly hides ReadFrom from io.Copy.
type writerOnly struct{ io.Writer }

// commit writes the status line and header block to the connection's
// buffer. p is the first body bytes (for sniffing the type), or nil.
func (w *response) commit(p []byte) {
	w.committed = true
	header := w.header
	if header == nil {
		header = w.handlerHeader
	}
	if len(p) == 0 {
		p = w.pending
	}
	var exclude [8]string // header keys left out
	nx := 0
	var setCL, setType, setTE string
	te := header.Get("Transfer-Encoding")
	hasTE := te != ""
	_, hasCLHeader := header["Content-Length"]
	if w.handlerDone && !hasTE && w.bodyAllowed() && !hasCLHeader && (!w.isHEAD || len(p) > 0) {
		w.contentLength = int64(len(p))
		setCL = strconv.Itoa(len(p))
	}
	hasCL := w.contentLength != -1
	if w.wantsClose {
		w.closeAfter = true
	}
	if header.Get("Connection") == "close" {
		w.closeAfter = true
	}
	if bodyAllowedForStatus(w.status) {
		_, haveType := header["Content-Type"]
		if header.Get("Content-Encoding") == "" && !haveType && !hasTE && len(p) > 0 {
			setType = http.DetectContentType(p)
		}
	} else {
		exclude[nx], exclude[nx+1] = "Content-Length", "Transfer-Encoding"
		nx += 2
		if w.status == http.StatusNotModified {
			exclude[nx] = "Content-Type"
			nx++
		}
	}
	if hasCL && hasTE && te != "identity" {
		exclude[nx] = "Content-Length"
		nx++
		hasCL = false
	}
	switch {
	case w.isHEAD || !w.bodyAllowed() || w.status == http.StatusNoContent:
		exclude[nx] = "Transfer-Encoding"
		nx++
	case hasCL:
		exclude[nx] = "Transfer-Encoding"
		nx++
	case hasTE && te == "identity":
		w.closeAfter = true
		exclude[nx] = "Transfer-Encoding"
		nx++
	default:
		w.chunking = true
		setTE = "chunked"
		if hasTE && te == "chunked" {
			exclude[nx] = "Transfer-Encoding"
			nx++
		}
	}
	if w.chunking {
		exclude[nx] = "Content-Length"
		nx++
	}
	setConn := false
	if w.closeAfter && !httpguts.HeaderValuesContainsToken(header["Connection"], "close") {
		exclude[nx] = "Connection"
		nx++
		setConn = true
	}
	c := w.c
	c.appendStatusLine(w.status)
	c.appendHeader(header, exclude[:nx])
	if setType != "" {
		c.wbuf = append(c.wbuf, "Content-Type: "...)
		c.wbuf = append(c.wbuf, setType...)
		c.wbuf = append(c.wbuf, "\r\n"...)
	}
	if setConn {
		c.wbuf = append(c.wbuf, "Connection: close\r\n"...)
	}
	if setTE != "" {
		c.wbuf = append(c.wbuf, "Transfer-Encoding: chunked\r\n"...)
	}
	if _, ok := header["Date"]; !ok {
		c.wbuf = append(c.wbuf, "Date: "...)
		c.wbuf = append(c.wbuf, c.date()...)
		c.wbuf = append(c.wbuf, "\r\n"...)
	}
	if setCL != "" {
		c.wbuf = append(c.wbuf, "Content-Length: "...)
		c.wbuf = append(c.wbuf, setCL...)
		c.wbuf = append(c.wbuf, "\r\n"...)
	}
	c.wbuf = append(c.wbuf, "\r\n"...)
	if len(w.pending) > 0 {
		pend := w.pending
		w.pending = w.pending[:0]
		w.writeBody(pend)
	}
}

// writeBody frames p (after commit) into the connection's output.
func (w *response) writeBody(p []byte) {
	if w.isHEAD || len(p) == 0 {
		return
	}
	c := w.c
	if w.chunking {
		c.wbuf = strconv.AppendInt(c.wbuf, int64(len(p)), 16)
		c.wbuf = append(c.wbuf, "\r\n"...)
		c.send(p)
		c.wbuf = append(c.wbuf, "\r\n"...)
		return
	}
	c.send(p)
}

// finish ends the response after the handler returned.
func (w *response) finish() {
	w.handlerDone = true
	if !w.wroteHeader {
		w.WriteHeader(http.StatusOK)
	}
	if !w.committed {
		w.commit(nil)
	}
	if w.chunking {
		w.c.wbuf = append(w.c.wbuf, "0\r\n\r\n"...)
	}
	w.c.flush()
	if !w.isHEAD && w.contentLength != -1 && w.bodyAllowed() && w.contentLength != w.written {
		w.closeAfter = true // did not write what it declared
	}
	if w.c.werr != nil {
		w.closeAfter = true
	}
}

func bodyAllowedForStatus(status int) bool {
	switch {
	case status >= 100 && status <= 199, status == 204, status == 304:
		return false
	}
	return true
}

// noBodyHeaders are left out of a 1xx header block.
var noBodyHeaders = []string{"Content-Length", "Transfer-Encoding"}

// appendStatusLine appends "HTTP/1.1 <code> <text>\r\n" as net/http writes it.
func (c *conn) appendStatusLine(code int) {
	c.wbuf = append(c.wbuf, "HTTP/1.1 "...)
	if text := http.StatusText(code); text != "" {
		c.wbuf = strconv.AppendInt(c.wbuf, int64(code), 10)
		c.wbuf = append(c.wbuf, ' ')
		c.wbuf = append(c.wbuf, text...)
	} else {
		s := strconv.Itoa(code)
		for len(s) < 3 {
			s = "0" + s
		}
		c.wbuf = append(c.wbuf, s+" status code "+strconv.Itoa(code)...)
	}
	c.wbuf = append(c.wbuf, "\r\n"...)
}

// appendHeader appends h's fields as net/http's Header.writeSubset does:
// keys sorted, invalid names dropped, CR and LF in values turned to
// spaces and the values trimmed.
func (c *conn) appendHeader(h http.Header, exclude []string) {
	keys := c.keys[:0]
	for k := range h {
		if !slices.Contains(exclude, k) {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		if !httpguts.ValidHeaderFieldName(k) {
			continue
		}
		for _, v := range h[k] {
			c.wbuf = append(c.wbuf, k...)
			c.wbuf = append(c.wbuf, ": "...)
			c.wbuf = appendValue(c.wbuf, v)
			c.wbuf = append(c.wbuf, "\r\n"...)
		}
	}
	clear(keys)
	c.keys = keys[:0]
}

// appendValue appends a header value as net/http writes it: CR and LF
// turned into spaces, then spaces, tabs, CR and LF trimmed at both ends
// (textproto.TrimString). Most values need neither: they are copied as
// they are.
func appendValue(dst []byte, v string) []byte {
	clean := len(v) == 0 || !isTrimmed(v[0]) && !isTrimmed(v[len(v)-1])
	for i := 0; clean && i < len(v); i++ {
		clean = v[i] != '\r' && v[i] != '\n'
	}
	if clean {
		return append(dst, v...)
	}
	b := []byte(v)
	for i := range b {
		if b[i] == '\r' || b[i] == '\n' {
			b[i] = ' '
		}
	}
	for len(b) > 0 && isTrimmed(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isTrimmed(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return append(dst, b...)
}

func isTrimmed(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }
