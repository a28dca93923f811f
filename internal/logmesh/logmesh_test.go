package logmesh

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/sitelog"
)

const (
	testSite = "blog.test"
	testUID  = "uid-1"
)

// accessLine is one access-log line at second sec of a fixed minute.
func accessLine(sec int, path string, status int) string {
	t := time.Date(2026, 12, 6, 10, 0, sec, 0, time.UTC)
	b, _ := json.Marshal(sitelog.Entry{Time: t, Method: "GET", Path: path, Status: status})
	return string(b) + "\n"
}

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

// server serves the access log in dir for testSite over loopback TCP
// (the TLS in front of it is the gateway's and the edge's, tested there)
// and returns a Source named name.
func server(t *testing.T, name, dir string) Source {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); ln.Close() })
	srv := &Server{Every: 20 * time.Millisecond, Resolve: func(_ context.Context, site, uid, kind string) (sitelog.Source, error) {
		if site != testSite || uid != testUID || kind != sitelog.KindAccess {
			return sitelog.Source{}, ErrNotFound
		}
		return sitelog.Source{Dir: dir, Base: sitelog.AccessFile, Kind: kind, Site: site}, nil
	}}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go srv.ServeConn(ctx, c)
		}
	}()
	addr := ln.Addr().String()
	return Source{Name: name, Dial: func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}}
}

func request(limit int, after string, follow bool) Request {
	return Request{Site: testSite, UID: testUID, Kind: sitelog.KindAccess, Limit: limit, After: after, Follow: follow}
}

// readAll runs a reading that is not followed.
func readAll(t *testing.T, sources []Source, req Request) []sitelog.Entry {
	t.Helper()
	r, err := Open(context.Background(), sources, req, true, 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	var out []sitelog.Entry
	if err := r.Run(context.Background(), func(e sitelog.Entry) error { out = append(out, e); return nil }, func(int) error { return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

func pathsOf(es []sitelog.Entry) string {
	var p []string
	for _, e := range es {
		p = append(p, e.Path)
	}
	return strings.Join(p, " ")
}

// Two edges' parts of a site's access log are merged by time; the limit
// keeps the newest; a merged cursor resumes every edge right after its
// last entry shown, with nothing lost or repeated, also for an edge that
// had no entry in the limited reading.
func TestMergedReading(t *testing.T) {
	d1, d2 := t.TempDir(), t.TempDir()
	appendFile(t, filepath.Join(d1, sitelog.AccessFile), accessLine(1, "/a1", 200)+accessLine(3, "/a3", 404)+accessLine(5, "/a5", 200))
	appendFile(t, filepath.Join(d2, sitelog.AccessFile), accessLine(2, "/b2", 500)+accessLine(4, "/b4", 200))
	sources := []Source{server(t, "e1", d1), server(t, "e2", d2)}

	all := readAll(t, sources, request(100, "", false))
	if got := pathsOf(all); got != "/a1 /b2 /a3 /b4 /a5" {
		t.Fatalf("merged: %s", got)
	}
	for _, e := range all {
		if names := Names(e.Cursor); strings.Join(names, ",") != "e1,e2" {
			t.Errorf("cursor %q names %v", e.Cursor, names)
		}
	}
	last2 := readAll(t, sources, request(2, "", false))
	if got := pathsOf(last2); got != "/b4 /a5" {
		t.Fatalf("limit 2: %s", got)
	}
	// Resuming after the first entry of everything, and after /a3.
	if got := pathsOf(readAll(t, sources, request(100, all[0].Cursor, false))); got != "/b2 /a3 /b4 /a5" {
		t.Errorf("after /a1: %s", got)
	}
	if got := pathsOf(readAll(t, sources, request(100, all[2].Cursor, false))); got != "/b4 /a5" {
		t.Errorf("after /a3: %s", got)
	}
	// The limited reading's first entry (/b4) names e1 at /a3, though no
	// e1 entry came before it in that reading.
	appendFile(t, filepath.Join(d1, sitelog.AccessFile), accessLine(6, "/a6", 200))
	if got := pathsOf(readAll(t, sources, request(100, last2[0].Cursor, false))); got != "/a5 /a6" {
		t.Errorf("after the limited reading's /b4: %s", got)
	}
	// Filters travel.
	req := request(100, "", false)
	req.Status, _ = sitelog.ParseStatus("4xx,5xx")
	if got := pathsOf(readAll(t, sources, req)); got != "/b2 /a3" {
		t.Errorf("--status 4xx,5xx: %s", got)
	}

	// Followed: an entry written later arrives with a cursor that resumes
	// after it.
	r, err := Open(context.Background(), sources, request(1, "", true), true, 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	got := make(chan sitelog.Entry, 10)
	done := make(chan error, 1)
	go func() {
		done <- r.Run(ctx, func(e sitelog.Entry) error { got <- e; return nil }, func(int) error { return nil })
	}()
	if e := <-got; e.Path != "/a6" {
		t.Fatalf("follow's initial entry: %s", e.Path)
	}
	appendFile(t, filepath.Join(d2, sitelog.AccessFile), accessLine(7, "/b7", 200))
	var b7 sitelog.Entry
	select {
	case b7 = <-got:
	case <-time.After(30 * time.Second):
		t.Fatal("no followed entry")
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("follow: %v", err)
	}
	r.Close()
	if b7.Path != "/b7" {
		t.Fatalf("followed %s", b7.Path)
	}
	appendFile(t, filepath.Join(d1, sitelog.AccessFile), accessLine(8, "/a8", 200))
	if got := pathsOf(readAll(t, sources, request(100, b7.Cursor, false))); got != "/a8" {
		t.Errorf("after the followed /b7: %s", got)
	}

	// Bad cursors are the caller's error, before any server is asked.
	for _, c := range []string{"1:2", "e1@x", "e1@1:2,e1@1:3", "E1@1:2"} {
		if _, err := Open(context.Background(), sources, request(1, c, false), true, time.Second); !errors.Is(err, ErrBadCursor) {
			t.Errorf("after %q: %v", c, err)
		}
	}
	// Another site, or a site's other kind, is not found.
	for _, req := range []Request{
		{Site: "other.test", UID: testUID, Kind: sitelog.KindAccess},
		{Site: testSite, UID: "uid-2", Kind: sitelog.KindAccess},
		{Site: testSite, UID: testUID, Kind: sitelog.KindPHP},
	} {
		if _, err := Open(context.Background(), sources[:1], req, false, time.Second); !IsNotFound(err) {
			t.Errorf("%+v: %v, want not found", req, err)
		}
	}
}

// liar answers every request with lines.
func liar(t *testing.T, lines ...string) Source {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				buf := make([]byte, MaxRequest)
				_, _ = c.Read(buf)
				for _, l := range lines {
					if _, err := c.Write([]byte(l + "\n")); err != nil {
						return
					}
				}
			}()
		}
	}()
	addr := ln.Addr().String()
	return Source{Name: "liar", Dial: func(ctx context.Context) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "tcp", addr)
	}}
}

// What a server says is checked: another site's entries, more entries
// than asked for, entries without cursors and oversized frames end the
// reading with ErrUnreachable, showing none of it.
func TestUntrustedServer(t *testing.T) {
	entry := func(site string, cursor string) string {
		b, _ := json.Marshal(frame{Entry: &sitelog.Entry{Site: site, Kind: sitelog.KindAccess, Path: "/x", Cursor: cursor}})
		return string(b)
	}
	for name, lines := range map[string][]string{
		"another site":     {`{"ok":true}`, `{"start":""}`, entry("other.test", "1:2"), `{"end":"1:2"}`},
		"too many":         {`{"ok":true}`, `{"start":""}`, entry(testSite, "1:2"), entry(testSite, "1:3"), `{"end":"1:3"}`},
		"no cursor":        {`{"ok":true}`, `{"start":""}`, entry(testSite, ""), `{"end":"1:3"}`},
		"oversized":        {`{"ok":true}`, `{"start":""}`, `{"entry":{"site":"` + strings.Repeat("x", MaxFrame) + `"}}`},
		"no ok":            {`{"start":""}`},
		"silent end":       {`{"ok":true}`, `{"start":""}`},
		"a bad end cursor": {`{"ok":true}`, `{"start":""}`, `{"end":"nope"}`},
	} {
		t.Run(name, func(t *testing.T) {
			r, err := Open(context.Background(), []Source{liar(t, lines...)}, request(1, "", false), false, time.Second)
			if err == nil {
				var shown []sitelog.Entry
				err = r.Run(context.Background(), func(e sitelog.Entry) error { shown = append(shown, e); return nil }, func(int) error { return nil })
				r.Close()
				if len(shown) > 0 {
					t.Errorf("shown %+v", shown)
				}
			}
			if !errors.Is(err, ErrUnreachable) {
				t.Errorf("err %v, want ErrUnreachable", err)
			}
		})
	}
	// A refusal is passed on as the server's.
	_, err := Open(context.Background(), []Source{liar(t, `{"error":"no such site","code":"not_found"}`)}, request(1, "", false), false, time.Second)
	if !IsNotFound(err) {
		t.Errorf("refusal: %v", err)
	}
}

// A server answering with as many entries as asked for, each as large as a
// frame may be, does not make the client hold them all: past MaxInitial
// bytes the reading fails with ErrTooLarge, showing nothing.
func TestHostileServerSize(t *testing.T) {
	big := strings.Repeat("x", MaxFrame-1024)
	lines := []string{`{"ok":true}`, `{"start":""}`}
	n := MaxInitial/len(big) + 10
	for i := range n {
		b, _ := json.Marshal(frame{Entry: &sitelog.Entry{Site: testSite, Kind: sitelog.KindAccess, Path: big, Cursor: fmt.Sprintf("1:%d", i+1)}})
		lines = append(lines, string(b))
	}
	lines = append(lines, fmt.Sprintf(`{"end":"1:%d"}`, n))
	r, err := Open(context.Background(), []Source{liar(t, lines...)}, request(sitelog.MaxLimit, "", false), false, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	shown := 0
	err = r.Run(context.Background(), func(sitelog.Entry) error { shown++; return nil }, func(int) error { return nil })
	if !errors.Is(err, ErrTooLarge) || shown > 0 {
		t.Fatalf("err %v, %d shown; want ErrTooLarge, none", err, shown)
	}
}
