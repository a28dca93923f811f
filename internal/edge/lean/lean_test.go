package lean

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// testHandler answers the differential test's requests; X-Path says which
// path served it (left out of the comparison).
func testHandler() http.Handler {
	page := bytes.Repeat([]byte("<p>cached page</p>\n"), 2800) // ~52 KB
	mux := http.NewServeMux()
	mux.HandleFunc("/hit", func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=UTF-8")
		h.Set("Content-Length", fmt.Sprint(len(page)))
		h.Set("X-Cache", "HIT")
		h.Add("Vary", "Accept-Encoding")
		w.WriteHeader(http.StatusOK)
		h.Set("X-After", "not sent") // after WriteHeader: never sent
		w.Write(page)
	})
	mux.HandleFunc("/small", func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "<html>hello</html>") })
	mux.HandleFunc("/gz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Encoding", "gzip")
		w.Write([]byte("\x1f\x8b not really"))
	})
	mux.HandleFunc("/chunked", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Before", "a\r\nInjected: yes") // sanitised
		for range 10 {
			w.Write(bytes.Repeat([]byte("x"), 1000))
		}
	})
	mux.HandleFunc("/flush", func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "first")
		http.NewResponseController(w).Flush()
		io.WriteString(w, "second")
	})
	mux.HandleFunc("/304", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		w.Header().Set("Content-Length", "12")
		w.Header().Set("Etag", `"x"`)
		w.WriteHeader(http.StatusNotModified)
	})
	mux.HandleFunc("/204", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	mux.HandleFunc("/close", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		io.WriteString(w, "bye")
	})
	mux.HandleFunc("/short", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "10")
		io.WriteString(w, "12345")
	})
	mux.HandleFunc("/long", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", "3")
		_, err := io.WriteString(w, "12345")
		w.Header().Set("X-Err", fmt.Sprint(err))
	})
	mux.HandleFunc("/teapot", func(w http.ResponseWriter, r *http.Request) { http.Error(w, "no", 418) })
	mux.HandleFunc("/odd", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(299) })
	mux.HandleFunc("/panic", func(w http.ResponseWriter, r *http.Request) { panic(http.ErrAbortHandler) })
	mux.Handle("/static/", http.StripPrefix("/static/", http.FileServer(http.Dir("testdata"))))
	mux.HandleFunc("/echo/", func(w http.ResponseWriter, r *http.Request) {
		keys := slices.Sorted(func(yield func(string) bool) {
			for k := range r.Header {
				if !yield(k) {
					return
				}
			}
		})
		fmt.Fprintf(w, "%s %q %q %q %q %q %s %v %d %v\n", r.Method, r.URL.Path, r.URL.RawPath, r.URL.RawQuery,
			r.RequestURI, r.Host, r.Proto, r.Close, r.ContentLength, r.Context().Value(http.LocalAddrContextKey) != nil)
		for _, k := range keys {
			fmt.Fprintf(w, "%s=%q\n", k, r.Header[k])
		}
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path := "net"
		if _, ok := w.(*response); ok {
			path = "lean"
		}
		w.Header().Set("X-Path", path)
		mux.ServeHTTP(w, r)
	})
}

// servePair starts h on the lean path and on net/http alone.
func servePair(t *testing.T, h http.Handler) (leanAddr, netAddr string) {
	t.Helper()
	ls := &Server{HTTP: &http.Server{Handler: h, ReadHeaderTimeout: 2 * time.Second}}
	ns := &http.Server{Handler: h, ReadHeaderTimeout: 2 * time.Second}
	for _, srv := range []interface {
		Serve(net.Listener) error
		Shutdown(context.Context) error
	}{ls, ns} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go srv.Serve(ln)
		t.Cleanup(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := srv.Shutdown(ctx); err != nil {
				t.Errorf("shutdown: %v", err)
			}
		})
		if srv == ls {
			leanAddr = ln.Addr().String()
		} else {
			netAddr = ln.Addr().String()
		}
	}
	return leanAddr, netAddr
}

// exchange is what a client saw on one connection: the responses, and
// whether the server closed the connection after them.
type exchange struct {
	responses []string
	paths     []string
	closed    bool
}

// roundTrip writes raw on a new connection and reads n responses to the
// given methods (one per request), then whether the connection closed.
func roundTrip(t *testing.T, addr, raw string, methods []string) exchange {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := io.WriteString(c, raw); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(c)
	var ex exchange
	for _, m := range methods {
		res, err := http.ReadResponse(br, &http.Request{Method: m})
		if err != nil {
			ex.responses = append(ex.responses, "error: "+err.Error())
			ex.closed = true
			return ex
		}
		body, err := io.ReadAll(res.Body)
		if err != nil {
			body = append(body, "\nbody error: "+err.Error()...)
		}
		ex.paths = append(ex.paths, res.Header.Get("X-Path"))
		res.Header.Del("X-Path")
		res.Header.Del("Date")
		var b strings.Builder
		fmt.Fprintf(&b, "%s close=%v cl=%d te=%v\n", res.Status, res.Close, res.ContentLength, res.TransferEncoding)
		res.Header.Write(&b)
		b.WriteString("\n")
		b.Write(body)
		out := b.String()
		if _, params, err := mime.ParseMediaType(res.Header.Get("Content-Type")); err == nil && params["boundary"] != "" {
			out = strings.ReplaceAll(out, params["boundary"], "BOUNDARY") // random per response
		}
		ex.responses = append(ex.responses, out)
	}
	_ = c.SetReadDeadline(time.Now().Add(150 * time.Millisecond))
	_, err = br.ReadByte()
	ex.closed = err != nil && !errors.Is(err, os.ErrDeadlineExceeded)
	return ex
}

// TestDifferential sends the same bytes to a server on the lean path and
// to net/http alone: every response (status, headers but Date, body) and
// whether the connection stays open must be the same, and the requests
// the lean path must take must be served by it.
func TestDifferential(t *testing.T) {
	leanAddr, netAddr := servePair(t, testHandler())
	const host = "Host: a.test\r\n"
	get := func(target string, hdr ...string) string {
		return "GET " + target + " HTTP/1.1\r\n" + host + strings.Join(hdr, "") + "\r\n"
	}
	head := func(target string) string { return "HEAD " + target + " HTTP/1.1\r\n" + host + "\r\n" }
	big := strings.Repeat("b", 20<<10)
	for _, tc := range []struct {
		name    string
		raw     string
		methods []string // one per response expected (default: one GET)
		paths   []string // which path serves each (default: lean)
	}{
		{name: "hit", raw: get("/hit")},
		{name: "hit head", raw: head("/hit"), methods: []string{"HEAD"}},
		{name: "small sniffed", raw: get("/small")},
		{name: "small head", raw: head("/small"), methods: []string{"HEAD"}},
		{name: "gzip not sniffed", raw: get("/gz")},
		{name: "chunked", raw: get("/chunked")},
		{name: "chunked head", raw: head("/chunked"), methods: []string{"HEAD"}},
		{name: "flush", raw: get("/flush")},
		{name: "304", raw: get("/304")},
		{name: "204", raw: get("/204")},
		{name: "handler close", raw: get("/close")},
		{name: "short body closes", raw: get("/short")},
		{name: "long body", raw: get("/long")},
		{name: "error", raw: get("/teapot")},
		{name: "unknown status", raw: get("/odd")},
		{name: "not found", raw: get("/nope")},
		{name: "abort", raw: get("/panic"), paths: []string{""}},
		{name: "static", raw: get("/static/style.css")},
		{name: "static sendfile", raw: get("/static/big.txt")},
		{name: "static head", raw: head("/static/big.txt"), methods: []string{"HEAD"}},
		{name: "static range", raw: get("/static/style.css", "Range: bytes=10-29\r\n")},
		{name: "static multi range", raw: get("/static/style.css", "Range: bytes=0-1,5-6\r\n")},
		{name: "static bad range", raw: get("/static/style.css", "Range: bytes=99999-\r\n")},
		{name: "static ims", raw: get("/static/style.css", "If-Modified-Since: "+time.Now().Add(time.Hour).UTC().Format(http.TimeFormat)+"\r\n")},
		{name: "static dir redirect", raw: get("/static/../static/style.css")},
		{name: "static dotdot", raw: get("/static/%2e%2e/lean.go")},
		{name: "echo", raw: get("/echo/x?a=1&b=%20", "Accept-Encoding: gzip\r\nCookie: a=1\r\nCookie: b=2\r\nx-lower:  v  \r\n")},
		{name: "echo escapes", raw: get("/echo/a%2Fb/%2e%2e/c%20d/./e")},
		{name: "echo double slash", raw: get("//echo/x")},
		{name: "echo pragma", raw: get("/echo/p", "Pragma: no-cache\r\n")},
		{name: "echo close", raw: get("/echo/c", "Connection: close\r\n")},
		{name: "echo keep-alive", raw: get("/echo/k", "Connection: keep-alive\r\n")},
		{name: "pipelined", raw: get("/echo/1") + head("/hit") + get("/small"), methods: []string{"GET", "HEAD", "GET"},
			paths: []string{"lean", "lean", "lean"}},
		{name: "pipelined then body", raw: get("/echo/1") + "POST /echo/2 HTTP/1.1\r\n" + host + "Content-Length: 3\r\n\r\nabc" + get("/echo/3"),
			methods: []string{"GET", "POST", "GET"}, paths: []string{"lean", "net", "net"}},
		{name: "close then more", raw: get("/echo/1", "Connection: close\r\n") + get("/echo/2"), paths: []string{"lean"}},
		{name: "http/1.0", raw: "GET /echo/x HTTP/1.0\r\n\r\n", paths: []string{"net"}},
		{name: "http/1.0 keep-alive", raw: "GET /echo/x HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", paths: []string{"net"}},
		{name: "absolute form", raw: "GET http://b.test/echo/x HTTP/1.1\r\n" + host + "\r\n", paths: []string{"net"}},
		{name: "smuggling CL+TE", raw: "GET /echo/x HTTP/1.1\r\n" + host + "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + get("/echo/y"),
			methods: []string{"GET", "GET"}, paths: []string{"net", "net"}},
		{name: "smuggling duplicate CL", raw: "GET /echo/x HTTP/1.1\r\n" + host + "Content-Length: 0\r\nContent-Length: 6\r\n\r\n", paths: []string{""}},
		{name: "GET with body", raw: "GET /echo/x HTTP/1.1\r\n" + host + "Content-Length: 3\r\n\r\nabc" + get("/echo/y"),
			methods: []string{"GET", "GET"}, paths: []string{"net", "net"}},
		{name: "obs-fold", raw: "GET /echo/x HTTP/1.1\r\n" + host + "X-A: b\r\n c\r\n\r\n", paths: []string{"net"}},
		{name: "bare LF", raw: "GET /echo/x HTTP/1.1\n" + host + "\n", paths: []string{"net"}},
		{name: "no host", raw: "GET /echo/x HTTP/1.1\r\n\r\n", paths: []string{""}},
		{name: "two hosts", raw: "GET /echo/x HTTP/1.1\r\n" + host + host + "\r\n", paths: []string{""}},
		{name: "expect", raw: "GET /echo/x HTTP/1.1\r\n" + host + "Expect: 100-continue\r\n\r\n", paths: []string{"net"}},
		{name: "oversized header", raw: get("/echo/x", "X-Big: "+big+"\r\n"), paths: []string{"net"}},
		{name: "too large header", raw: get("/echo/x", strings.Repeat("X-Big: "+big+"\r\n", 60)), paths: []string{""}},
		{name: "upgrade", raw: get("/echo/x", "Connection: Upgrade\r\nUpgrade: websocket\r\n"), paths: []string{"net"}},
		{name: "non-ascii target", raw: get("/echo/\xc3\xa9"), paths: []string{"net"}},
		{name: "bad escape", raw: get("/echo/%zz"), paths: []string{""}},
		{name: "garbage", raw: "\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n", paths: []string{""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			methods := tc.methods
			if methods == nil {
				methods = []string{"GET"}
			}
			paths := tc.paths
			if paths == nil {
				paths = slices.Repeat([]string{"lean"}, len(methods))
			}
			gotLean := roundTrip(t, leanAddr, tc.raw, methods)
			gotNet := roundTrip(t, netAddr, tc.raw, methods)
			if !slices.Equal(gotLean.responses, gotNet.responses) {
				t.Errorf("responses differ\nlean:\n%s\nnet/http:\n%s", strings.Join(gotLean.responses, "\n---\n"), strings.Join(gotNet.responses, "\n---\n"))
			}
			if gotLean.closed != gotNet.closed {
				t.Errorf("connection closed: lean %v, net/http %v", gotLean.closed, gotNet.closed)
			}
			if len(gotLean.paths) < len(paths) {
				gotLean.paths = append(gotLean.paths, slices.Repeat([]string{""}, len(paths)-len(gotLean.paths))...)
			}
			if !slices.Equal(gotLean.paths[:len(paths)], paths) {
				t.Errorf("served by %q, want %q", gotLean.paths, paths)
			}
		})
	}
}
