package precompress

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"strings"
	"testing"
)

func TestAcceptsGzip(t *testing.T) {
	for _, tc := range []struct {
		accept []string
		want   bool
	}{
		{nil, false},
		{[]string{""}, false},
		{[]string{"gzip"}, true},
		{[]string{"GZIP"}, true},
		{[]string{"gzip, deflate, br"}, true},
		{[]string{"br", "gzip"}, true},
		{[]string{"x-gzip"}, true},
		{[]string{"gzip;q=0"}, false},
		{[]string{"gzip; q=0.000"}, false},
		{[]string{"gzip;q=0.5"}, true},
		{[]string{"gzip;q=0.01"}, true},
		{[]string{"*"}, true},
		{[]string{"*;q=0"}, false},
		{[]string{"gzip;q=0, *"}, false},
		{[]string{"*, gzip;q=0"}, false},
		{[]string{"identity"}, false},
		{[]string{"br, deflate"}, false},
		{[]string{"gzipx"}, false},
	} {
		r, _ := http.NewRequest("GET", "/", nil)
		for _, v := range tc.accept {
			r.Header.Add("Accept-Encoding", v)
		}
		if got := AcceptsGzip(r); got != tc.want {
			t.Errorf("AcceptsGzip(%q) = %v, want %v", tc.accept, got, tc.want)
		}
	}
}

func TestCompressible(t *testing.T) {
	for ctype, want := range map[string]bool{
		"text/html; charset=UTF-8": true, "text/css": true, "application/javascript": true, "text/javascript; charset=utf-8": true,
		"application/json": true, "image/svg+xml": true, "image/png": false, "image/jpeg": false, "font/woff2": false,
		"application/octet-stream": false, "": false, "application/zip": false,
	} {
		if got := Compressible(ctype); got != want {
			t.Errorf("Compressible(%q) = %v, want %v", ctype, got, want)
		}
	}
}

func TestGzip(t *testing.T) {
	text := []byte(strings.Repeat("hello, world ", 500))
	z := Gzip(text)
	if z == nil || len(z) >= len(text) {
		t.Fatalf("Gzip of text: %d bytes", len(z))
	}
	zr, err := gzip.NewReader(bytes.NewReader(z))
	if err != nil {
		t.Fatal(err)
	}
	back, err := io.ReadAll(zr)
	if err != nil || !bytes.Equal(back, text) {
		t.Fatalf("round trip: %v, equal %v", err, bytes.Equal(back, text))
	}
	if Gzip([]byte("short")) != nil {
		t.Error("short body compressed")
	}
	// Bytes that do not compress (a PRNG's) get no variant.
	noise := make([]byte, 4096)
	x := uint32(2463534242)
	for i := range noise {
		x ^= x << 13
		x ^= x >> 17
		x ^= x << 5
		noise[i] = byte(x)
	}
	if Gzip(noise) != nil {
		t.Error("incompressible body compressed")
	}
}

func TestAddVary(t *testing.T) {
	for _, tc := range []struct{ in, want []string }{
		{nil, []string{"Accept-Encoding"}},
		{[]string{"Cookie"}, []string{"Cookie", "Accept-Encoding"}},
		{[]string{"accept-encoding"}, []string{"accept-encoding"}},
		{[]string{"Origin, Accept-Encoding"}, []string{"Origin, Accept-Encoding"}},
		{[]string{"*"}, []string{"*"}},
	} {
		h := http.Header{}
		for _, v := range tc.in {
			h.Add("Vary", v)
		}
		AddVary(h)
		if got := h.Values("Vary"); strings.Join(got, "|") != strings.Join(tc.want, "|") {
			t.Errorf("AddVary(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}
