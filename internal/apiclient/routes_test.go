package apiclient

import (
	"bytes"
	"encoding/json"
	"fmt"
	"testing"

	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
)

// routesDoc is a GET /v1/routes list of n sites as the server streams it
// (compact: zero values left out), with the site_count hint when hint >= 0
// (an older server sends none).
func routesDoc(tb testing.TB, n, hint int) []byte {
	tb.Helper()
	var buf bytes.Buffer
	buf.WriteString(`{"revision":7,`)
	if hint >= 0 {
		fmt.Fprintf(&buf, `"site_count":%d,`, hint)
	}
	buf.WriteString(`"shards":`)
	shards, _ := json.Marshal([]store.Shard{{Name: "s1", Dir: "/srv/s1", Gateway: "10.0.0.1:8443"}})
	buf.Write(shards)
	buf.WriteString(`,"sites":[`)
	for i := range n {
		if i > 0 {
			buf.WriteByte(',')
		}
		fmt.Fprintf(&buf, `{"metadata":{"name":"site-%06d.example.com","uid":"%012x","generation":1,"resource_version":%d},`+
			`"spec":{"domain":"site-%06d.example.com","cache":{"ttl_seconds":300}},"status":{"phase":"Ready","shard":"s1"}}`, i, i, i+10, i)
	}
	buf.WriteString("]}\n")
	return buf.Bytes()
}

// TestDecodeRoutes: the streaming decoder reads what encoding/json reads,
// across its chunk boundaries without a hint, and with a right, low or high
// one (the sites' slice then has the hint's capacity unless more came).
func TestDecodeRoutes(t *testing.T) {
	type tc struct{ n, hint int }
	var cases []tc
	for _, n := range []int{0, 1, routeChunk - 1, routeChunk, 2*routeChunk + 3} {
		cases = append(cases, tc{n, -1}, tc{n, n}, tc{n, n + 5}, tc{n, n / 2})
	}
	for _, c := range cases {
		n := c.n
		doc := routesDoc(t, n, c.hint)
		var want, got RoutesResponse
		if err := json.Unmarshal(doc, &want); err != nil {
			t.Fatal(err)
		}
		if err := decodeRoutes(bytes.NewReader(doc), &got); err != nil {
			t.Fatal(err)
		}
		if want.Sites == nil {
			want.Sites = []site.Site{}
		}
		wj, _ := json.Marshal(want)
		gj, _ := json.Marshal(got)
		if !bytes.Equal(wj, gj) || len(got.Sites) != n {
			t.Errorf("%d sites, hint %d: decoded %d, differs from encoding/json: %v", n, c.hint, len(got.Sites), !bytes.Equal(wj, gj))
		}
		if c.hint >= n && n > 0 && cap(got.Sites) != c.hint {
			t.Errorf("%d sites, hint %d: capacity %d, want the hint", n, c.hint, cap(got.Sites))
		}
	}
	for _, hint := range []int{-1, 3} {
		var got RoutesResponse
		if err := decodeRoutes(bytes.NewReader(routesDoc(t, 3, hint)[:200]), &got); err == nil {
			t.Errorf("hint %d: a list cut short decoded without error", hint)
		}
	}
}

// BenchmarkDecodeRoutes50k: what an edge allocates to decode the list of
// 50,000 routes (B/op with -benchmem), with the server's site_count.
func BenchmarkDecodeRoutes50k(b *testing.B) { benchDecodeRoutes(b, 50000) }

// benchDecodeRoutes decodes a list of 50,000 routes whose site_count is
// hint (-1: none) with decodeRoutes.
func benchDecodeRoutes(b *testing.B, hint int) {
	doc := routesDoc(b, 50000, hint)
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	for b.Loop() {
		var out RoutesResponse
		if err := decodeRoutes(bytes.NewReader(doc), &out); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkDecodeRoutes50kNoHint: the same without site_count (an older
// server): chunks copied into an exact slice.
func BenchmarkDecodeRoutes50kNoHint(b *testing.B) { benchDecodeRoutes(b, -1) }

// BenchmarkUnmarshalRoutes50k: the same list decoded whole by
// encoding/json, the anchor of BenchmarkDecodeRoutes50k.
func BenchmarkUnmarshalRoutes50k(b *testing.B) {
	doc := routesDoc(b, 50000, 50000)
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	for b.Loop() {
		var out RoutesResponse
		if err := json.Unmarshal(doc, &out); err != nil {
			b.Fatal(err)
		}
	}
}
