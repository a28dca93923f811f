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
// (compact: zero values left out).
func routesDoc(tb testing.TB, n int) []byte {
	tb.Helper()
	var buf bytes.Buffer
	buf.WriteString(`{"revision":7,"shards":`)
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
// across its chunk boundaries.
func TestDecodeRoutes(t *testing.T) {
	for _, n := range []int{0, 1, routeChunk - 1, routeChunk, 2*routeChunk + 3} {
		doc := routesDoc(t, n)
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
			t.Errorf("%d sites: decoded %d, differs from encoding/json: %v", n, len(got.Sites), !bytes.Equal(wj, gj))
		}
	}
	var got RoutesResponse
	if err := decodeRoutes(bytes.NewReader(routesDoc(t, 3)[:200]), &got); err == nil {
		t.Error("a list cut short decoded without error")
	}
}

// BenchmarkDecodeRoutes50k: what an edge allocates to decode the list of
// 50,000 routes (B/op with -benchmem).
func BenchmarkDecodeRoutes50k(b *testing.B) {
	doc := routesDoc(b, 50000)
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	for b.Loop() {
		var out RoutesResponse
		if err := decodeRoutes(bytes.NewReader(doc), &out); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkUnmarshalRoutes50k: the same list decoded whole by
// encoding/json, the anchor of BenchmarkDecodeRoutes50k.
func BenchmarkUnmarshalRoutes50k(b *testing.B) {
	doc := routesDoc(b, 50000)
	b.SetBytes(int64(len(doc)))
	b.ReportAllocs()
	for b.Loop() {
		var out RoutesResponse
		if err := json.Unmarshal(doc, &out); err != nil {
			b.Fatal(err)
		}
	}
}
