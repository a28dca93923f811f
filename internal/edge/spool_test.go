package edge

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// bodyEcho answers with the length and SHA-256 of the body PHP received,
// and the CONTENT_LENGTH it was told.
const bodyEcho = `<?php $b = file_get_contents('php://input');
echo strlen($b), ' ', hash('sha256', $b), ' ', $_SERVER['CONTENT_LENGTH'] ?? '';`

// spoolRig is an edge in front of a real php-fpm pool with children
// workers, serving t.test from a docroot with body.php and hello.php.
type spoolRig struct {
	srv *httptest.Server
	ed  *Server

	mu     sync.Mutex
	read   int64 // body bytes the edge has read of the current request
	inFile []bool
	change chan struct{}
}

func newSpoolRig(t *testing.T, children int, cfg Config) *spoolRig {
	t.Helper()
	fpm := startFPMChildren(t, children)
	docroot := filepath.Join(fpm.dir, "docroot")
	writeFiles(t, docroot, map[string]string{"body.php": bodyEcho, "hello.php": `<?php echo 'hello';`})
	r := &spoolRig{ed: New(cfg), change: make(chan struct{}, 1)}
	r.ed.onBodyRead = func(n int64) {
		r.mu.Lock()
		r.read = n
		r.mu.Unlock()
		select {
		case r.change <- struct{}{}:
		default:
		}
	}
	r.ed.onSpool = func(inFile bool, n int64) {
		r.mu.Lock()
		r.inFile = append(r.inFile, inFile)
		r.mu.Unlock()
	}
	r.ed.SetTable(NewTable([]Route{{Host: "t.test", Site: "t", Docroot: docroot, Endpoint: "unix:" + fpm.socket, State: Serving}}))
	r.srv = httptest.NewServer(r.ed)
	t.Cleanup(r.srv.Close)
	return r
}

// waitRead waits until the edge has read n bytes of a body.
func (r *spoolRig) waitRead(t *testing.T, n int64) {
	t.Helper()
	timeout := time.After(time.Minute)
	for {
		r.mu.Lock()
		got := r.read
		r.mu.Unlock()
		if got >= n {
			return
		}
		select {
		case <-r.change:
		case <-timeout:
			t.Fatalf("the edge read %d body bytes, waiting for %d", got, n)
		}
	}
}

// raw opens a connection to the edge and sends head (request line and
// headers) and the first part of a body; the rest is the test's to send.
func (r *spoolRig) raw(t *testing.T, head, part string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", r.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if _, err := io.WriteString(c, head+part); err != nil {
		t.Fatal(err)
	}
	return c
}

func readResponse(t *testing.T, c net.Conn) (int, string) {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(time.Minute)) // a hang fails instead of blocking the suite
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func echoOf(body []byte) string {
	sum := sha256.Sum256(body)
	return fmt.Sprintf("%d %s %d", len(body), hex.EncodeToString(sum[:]), len(body))
}

// A visitor who sends a POST body slowly does not hold a PHP worker: with
// one worker, a GET is served while the POST's body is still arriving, and
// the POST then gets its complete body.
func TestSlowBodyDoesNotHoldWorker(t *testing.T) {
	r := newSpoolRig(t, 1, Config{BodyTimeout: 5 * time.Minute})
	c := r.raw(t, "POST /body.php HTTP/1.1\r\nHost: t.test\r\nContent-Type: application/octet-stream\r\nContent-Length: 10\r\n\r\n", "12345")
	r.waitRead(t, 5) // the edge is reading the body now

	client := &http.Client{Timeout: time.Minute} // a held worker would block the GET
	req, _ := http.NewRequest("GET", r.srv.URL+"/hello.php", nil)
	req.Host = "t.test"
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("GET while a POST body trickles in: %v", err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(b) != "hello" {
		t.Fatalf("GET while a POST body trickles in: %d %q", resp.StatusCode, b)
	}

	io.WriteString(c, "67890")
	if code, body := readResponse(t, c); code != 200 || body != echoOf([]byte("1234567890")) {
		t.Fatalf("the slow POST: %d %q", code, body)
	}
}

// A body that arrives slower than the bound gets 408 and never reaches PHP.
func TestSlowBodyTimesOut(t *testing.T) {
	r := newSpoolRig(t, 1, Config{BodyTimeout: 300 * time.Millisecond, MinBodyRate: 1 << 20})
	for _, tc := range []struct{ name, head, part string }{
		{"content-length", "POST /body.php HTTP/1.1\r\nHost: t.test\r\nContent-Length: 100000\r\n\r\n", strings.Repeat("x", 10)},
		{"chunked", "POST /body.php HTTP/1.1\r\nHost: t.test\r\nTransfer-Encoding: chunked\r\n\r\n", "5\r\nhello\r\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := r.raw(t, tc.head, tc.part)
			code, body := readResponse(t, c) // the visitor sends nothing more
			if code != http.StatusRequestTimeout || !strings.Contains(body, "arrived too slowly") {
				t.Fatalf("stalled body: %d %q", code, body)
			}
		})
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.inFile) != 0 {
		t.Errorf("a timed-out body was spooled and sent on: %v", r.inFile)
	}
}

// The body PHP receives is the one sent, whether spooled in memory or in a
// file, with or without a Content-Length; beyond MaxBodyBytes it is 413.
func TestSpooledBodyIntact(t *testing.T) {
	r := newSpoolRig(t, 2, Config{MaxBodyBytes: 4 << 20})
	for _, tc := range []struct {
		name       string
		size       int
		chunked    bool
		wantFile   bool
		wantStatus int
	}{
		{"small", 1000, false, false, 200},
		{"small chunked", 1000, true, false, 200},
		{"at the memory limit", defaultBodyMemory, false, false, 200},
		{"just over, chunked", defaultBodyMemory + 1, true, true, 200},
		{"large", 3 << 20, false, true, 200},
		{"large chunked", 3 << 20, true, true, 200},
		{"too large chunked", 5 << 20, true, true, http.StatusRequestEntityTooLarge},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r.mu.Lock()
			r.inFile = nil
			r.mu.Unlock()
			body := make([]byte, tc.size)
			rand.Read(body)
			var rd io.Reader = bytes.NewReader(body)
			if tc.chunked {
				rd = struct{ io.Reader }{rd} // no length: sent chunked
			}
			req, _ := http.NewRequest("POST", r.srv.URL+"/body.php", rd)
			req.Host = "t.test"
			req.Header.Set("Content-Type", "application/octet-stream")
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tc.wantStatus {
				t.Fatalf("status %d, want %d: %.200q", resp.StatusCode, tc.wantStatus, got)
			}
			if tc.wantStatus != 200 {
				return
			}
			if want := echoOf(body); string(got) != want {
				t.Errorf("PHP received %q, want %q", got, want)
			}
			r.mu.Lock()
			defer r.mu.Unlock()
			if len(r.inFile) != 1 || r.inFile[0] != tc.wantFile {
				t.Errorf("spooled in a file: %v, want [%v]", r.inFile, tc.wantFile)
			}
		})
	}
}
