package lean

import (
	"bufio"
	"bytes"
	"net/http"
	"reflect"
	"strings"
	"testing"
)

func TestParseRequest(t *testing.T) {
	big := strings.Repeat("a", maxHeaderBlock)
	for _, tc := range []struct {
		name, in string
		want     parseResult
		path     string // URL.Path when taken
		close    bool
	}{
		{name: "plain", in: "GET / HTTP/1.1\r\nHost: a.test\r\n\r\n", want: take, path: "/"},
		{name: "head", in: "HEAD /x HTTP/1.1\r\nHost: a.test\r\n\r\n", want: take, path: "/x"},
		{name: "incomplete", in: "GET / HTTP/1.1\r\nHost: a.test\r\n", want: needMore},
		{name: "incomplete line", in: "GET / HT", want: needMore},
		{name: "percent and dots", in: "GET /a%2Fb/../%2e%2e/c?x=1 HTTP/1.1\r\nHost: a\r\n\r\n", want: take, path: "/a/b/../../c"},
		{name: "close", in: "GET / HTTP/1.1\r\nHost: a\r\nConnection: Close\r\n\r\n", want: take, path: "/", close: true},
		{name: "keep-alive", in: "GET / HTTP/1.1\r\nHost: a\r\nConnection: keep-alive\r\n\r\n", want: take, path: "/"},
		{name: "connection upgrade", in: "GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n", want: handOff},
		{name: "post", in: "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\n\r\nx", want: handOff},
		{name: "lowercase method", in: "get / HTTP/1.1\r\nHost: a\r\n\r\n", want: handOff},
		{name: "http/1.0", in: "GET / HTTP/1.0\r\n\r\n", want: handOff},
		{name: "http/2 preface", in: "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", want: handOff},
		{name: "CL and TE", in: "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n", want: handOff},
		{name: "CL zero", in: "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n", want: handOff},
		{name: "duplicate CL", in: "GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nContent-Length: 5\r\n\r\n", want: handOff},
		{name: "TE", in: "GET / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n", want: handOff},
		{name: "expect", in: "GET / HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\n\r\n", want: handOff},
		{name: "obs-fold", in: "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n", want: handOff},
		{name: "bare LF in header", in: "GET / HTTP/1.1\r\nHost: a\nX: y\r\n\r\n", want: handOff},
		{name: "bare LF request line", in: "GET / HTTP/1.1\nHost: a\r\n\r\n", want: handOff},
		{name: "bare LF end", in: "GET / HTTP/1.1\r\nHost: a\r\n\n", want: handOff},
		{name: "no host", in: "GET / HTTP/1.1\r\n\r\n", want: handOff},
		{name: "two hosts", in: "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", want: handOff},
		{name: "bad host", in: "GET / HTTP/1.1\r\nHost: a b\r\n\r\n", want: handOff},
		{name: "absolute form", in: "GET http://a/ HTTP/1.1\r\nHost: a\r\n\r\n", want: handOff},
		{name: "asterisk", in: "GET * HTTP/1.1\r\nHost: a\r\n\r\n", want: handOff},
		{name: "space in target", in: "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", want: handOff},
		{name: "two spaces", in: "GET  / HTTP/1.1\r\nHost: a\r\n\r\n", want: handOff},
		{name: "non-ascii target", in: "GET /\xc3\xa9 HTTP/1.1\r\nHost: a\r\n\r\n", want: handOff},
		{name: "ctl in target", in: "GET /\x01 HTTP/1.1\r\nHost: a\r\n\r\n", want: handOff},
		{name: "bad escape", in: "GET /%zz HTTP/1.1\r\nHost: a\r\n\r\n", want: handOff},
		{name: "space before colon", in: "GET / HTTP/1.1\r\nHost : a\r\n\r\n", want: handOff},
		{name: "ctl in value", in: "GET / HTTP/1.1\r\nHost: a\r\nX: a\x00b\r\n\r\n", want: handOff},
		{name: "high byte in value", in: "GET / HTTP/1.1\r\nHost: a\r\nX: \xff\r\n\r\n", want: handOff},
		{name: "empty name", in: "GET / HTTP/1.1\r\nHost: a\r\n: x\r\n\r\n", want: handOff},
		{name: "leading empty line", in: "\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n", want: handOff},
		{name: "oversized line", in: "GET /" + big + " HTTP/1.1\r\nHost: a\r\n\r\n", want: handOff},
		{name: "oversized incomplete", in: "GET / HTTP/1.1\r\nX: " + big, want: handOff},
		{name: "h2c upgrade", in: "GET / HTTP/1.1\r\nHost: a\r\nHTTP2-Settings: x\r\n\r\n", want: handOff},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, p := parseRequest([]byte(tc.in), maxHeaderBlock)
			if got != tc.want {
				t.Fatalf("parseRequest = %d, want %d", got, tc.want)
			}
			if got != take {
				return
			}
			if p.url.Path != tc.path || p.close != tc.close || p.n != len(tc.in) {
				t.Errorf("path %q close %v n %d; want %q %v %d", p.url.Path, p.close, p.n, tc.path, tc.close, len(tc.in))
			}
			compareWithNetHTTP(t, []byte(tc.in))
		})
	}
}

// compareWithNetHTTP checks that a request parseRequest takes is the one
// net/http reads from the same bytes, consuming as many of them.
func compareWithNetHTTP(t *testing.T, in []byte) {
	t.Helper()
	res, p := parseRequest(in, maxHeaderBlock)
	if res != take {
		return
	}
	br := bufio.NewReaderSize(bytes.NewReader(in), len(in)+16)
	want, err := http.ReadRequest(br)
	if err != nil {
		t.Fatalf("lean path took %q, net/http refuses it: %v", in, err)
	}
	if consumed := len(in) - br.Buffered(); consumed != p.n {
		t.Errorf("lean consumed %d bytes, net/http %d", p.n, consumed)
	}
	delete(want.Header, "Host")
	if len(want.Header) == 0 {
		want.Header = http.Header{}
	}
	for _, f := range []struct {
		what      string
		got, want any
	}{
		{"method", p.method, want.Method},
		{"request uri", p.target, want.RequestURI},
		{"url", *p.url, *want.URL},
		{"host", p.host, want.Host},
		{"header", p.header, want.Header},
		{"close", p.close, want.Close},
		{"content length", int64(0), want.ContentLength},
	} {
		if !reflect.DeepEqual(f.got, f.want) {
			t.Errorf("%s: lean %#v, net/http %#v (request %q)", f.what, f.got, f.want, in)
		}
	}
}

func FuzzParseRequest(f *testing.F) {
	for _, s := range []string{
		"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n",
		"HEAD /a%2Fb/../c?x=%zz HTTP/1.1\r\nHost: a:80\r\nAccept-Encoding: gzip\r\ncookie: a=b\r\nCookie: c=d\r\n\r\n",
		"GET /x HTTP/1.1\r\nHost: a\r\nConnection: close\r\nPragma: no-cache\r\n\r\nGET / HTTP/1.1\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: a\r\nX: a\r\n b\r\n\r\n",
		"GET //evil/x HTTP/1.1\r\nHost: a\r\nx-lower-case:  v \t\r\n\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		compareWithNetHTTP(t, in)
	})
}
