package lean

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"testing"
	"time"
)

func startLean(t *testing.T, srv *http.Server) (*Server, string) {
	t.Helper()
	ls := &Server{HTTP: srv}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- ls.Serve(ln) }()
	t.Cleanup(func() {
		_ = ls.Close()
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve: %v", err)
		}
	})
	return ls, ln.Addr().String()
}

// TestSlowHeaders: a client that never finishes its headers is dropped
// after ReadHeaderTimeout (slowloris), without an answer, as net/http does.
func TestSlowHeaders(t *testing.T) {
	_, addr := startLean(t, &http.Server{Handler: http.NotFoundHandler(), ReadHeaderTimeout: 300 * time.Millisecond})
	for _, partial := range []string{"", "GET / HTTP/1.1\r\nHost: a\r\nX-Slow: "} {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(c, partial)
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := c.Read(make([]byte, 1))
		if n != 0 || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("after %q: read %d bytes, %v; want the server to close the connection", partial, n, err)
		}
		c.Close()
	}
}

// TestClientGoneCancels: a request that runs long on the lean path has its
// context cancelled when the client goes away (net/http does the same).
func TestClientGoneCancels(t *testing.T) {
	cancelled := make(chan bool, 1)
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := w.(*response); !ok {
			t.Error("not served on the lean path")
		}
		select {
		case <-r.Context().Done():
			cancelled <- true
		case <-time.After(10 * time.Second):
			cancelled <- false
		}
	})
	_, addr := startLean(t, &http.Server{Handler: h})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	time.Sleep(20 * time.Millisecond)
	c.Close()
	if !<-cancelled {
		t.Fatal("the request's context was not cancelled when its client left")
	}
}

// TestSlowRequestThenPipelined: the watch of a long request must not lose
// a byte of the next request sent meanwhile.
func TestSlowRequestThenPipelined(t *testing.T) {
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/slow" {
			time.Sleep(3 * watchAfter)
		}
		io.WriteString(w, r.URL.Path)
	})
	_, addr := startLean(t, &http.Server{Handler: h})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /slow HTTP/1.1\r\nHost: a\r\n\r\n")
	time.Sleep(2 * watchAfter) // the watch is reading now
	io.WriteString(c, "GET /next HTTP/1.1\r\nHost: a\r\n\r\n")
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	want := "/slow/next"
	var got []byte
	buf := make([]byte, 4096)
	for len(got) < 2 || string(got[len(got)-len("/next"):]) != "/next" {
		n, err := c.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			break
		}
	}
	if !containsAll(string(got), "/slow", "/next") {
		t.Fatalf("responses %q, want both of %q", got, want)
	}
}

func containsAll(s string, subs ...string) bool {
	for _, sub := range subs {
		found := false
		for i := 0; i+len(sub) <= len(s); i++ {
			if s[i:i+len(sub)] == sub {
				found = true
				break
			}
		}
		if !found {
			return false
		}
	}
	return true
}

// TestShutdownClosesIdle: Shutdown does not wait for an idle keep-alive
// connection, and waits for a request in flight.
func TestShutdownClosesIdle(t *testing.T) {
	release := make(chan struct{})
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/wait" {
			<-release
		}
		io.WriteString(w, "ok")
	})
	ls := &Server{HTTP: &http.Server{Handler: h}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go ls.Serve(ln)
	idle, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer idle.Close()
	io.WriteString(idle, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	_ = idle.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := idle.Read(make([]byte, 4096)); err != nil {
		t.Fatal(err)
	}
	busy, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	io.WriteString(busy, "GET /wait HTTP/1.1\r\nHost: a\r\n\r\n")
	time.Sleep(50 * time.Millisecond)
	done := make(chan error, 1)
	go func() { done <- ls.Shutdown(context.Background()) }()
	select {
	case err := <-done:
		t.Fatalf("Shutdown returned (%v) with a request in flight", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(release)
	if err := <-done; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	_ = busy.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, _ := io.ReadAll(busy)
	if !containsAll(string(b), "200 OK", "ok") {
		t.Errorf("request in flight answered %q", b)
	}
	if n, err := idle.Read(make([]byte, 1)); n != 0 || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("idle connection not closed: %d, %v", n, err)
	}
}

// TestSlowSecondRequest: on a kept-alive connection, a request whose
// headers do not come whole is dropped after ReadHeaderTimeout too (the
// header deadline is only set when a request does not arrive in one read).
func TestSlowSecondRequest(t *testing.T) {
	_, addr := startLean(t, &http.Server{Handler: http.NotFoundHandler(), ReadHeaderTimeout: 300 * time.Millisecond})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	br := bufio.NewReader(c)
	res, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, res.Body)
	io.WriteString(c, "GET / HTTP/1.1\r\nHost: a\r\nX-Slow: ")
	_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, err := br.Read(make([]byte, 1))
	if n != 0 || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read %d bytes, %v; want the server to close the connection", n, err)
	}
}

// TestResponseHeaderPerRequest: the response header map a connection
// reuses starts empty for every request.
func TestResponseHeaderPerRequest(t *testing.T) {
	_, addr := startLean(t, &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if len(w.Header()) != 0 {
			t.Errorf("%s: response header not empty: %v", r.URL.Path, w.Header())
		}
		w.Header().Set("X-Only-"+r.URL.Path[1:], "1")
		w.Header().Add("Vary", "Cookie")
		io.WriteString(w, "ok")
	})})
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "GET /a HTTP/1.1\r\nHost: a\r\n\r\nGET /b HTTP/1.1\r\nHost: a\r\n\r\n")
	br := bufio.NewReader(c)
	for _, p := range []string{"a", "b"} {
		res, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		if res.Header.Get("X-Only-"+p) != "1" || len(res.Header["Vary"]) != 1 || len(res.Header) != 5 {
			t.Errorf("/%s: header %v", p, res.Header)
		}
	}
}

// BenchmarkKeepAliveHit is one request after another on a keep-alive
// connection, answered with a 16 KB page: allocations per request of the
// lean path (server and client in this process; the client's are the same
// for any server).
func BenchmarkKeepAliveHit(b *testing.B) {
	page := make([]byte, 16<<10)
	ls := &Server{HTTP: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "text/html")
		h.Set("Content-Length", "16384")
		h.Set("X-Cache", "HIT")
		w.WriteHeader(http.StatusOK)
		w.Write(page)
	}), ReadHeaderTimeout: 10 * time.Second}}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	go ls.Serve(ln)
	defer ls.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	req := []byte("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
	br := bufio.NewReaderSize(c, 64<<10)
	buf := make([]byte, len(page))
	b.ReportAllocs()
	for b.Loop() {
		c.Write(req)
		for {
			l, err := br.ReadSlice('\n')
			if err != nil {
				b.Fatal(err)
			}
			if len(l) == 2 {
				break
			}
		}
		if _, err := io.ReadFull(br, buf); err != nil {
			b.Fatal(err)
		}
	}
}
