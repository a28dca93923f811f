package searchreplace

import (
	"bytes"
	"strings"
	"testing"
)

// BenchmarkRewrite measures Rewrite's throughput on typical values next to
// its anchor, bytes.ReplaceAll of the literal URL on the same post content
// (what a plain sed-like replacement costs).
func BenchmarkRewrite(b *testing.B) {
	para := `<!-- wp:paragraph --><p>Some text with a <a href="http://old.example/2024/05/post/">link</a> and more words around it, é ü.</p><!-- /wp:paragraph -->` + "\n"
	block := `<!-- wp:image {"id":7,"url":"http:\/\/old.example\/wp-content\/uploads\/a.jpg","caption":"Line one\nhttp:\/\/old.example\/x \u003ca\u003e"} -->` + "\n"
	post := strings.Repeat(para, 40) + strings.Repeat(block, 10)
	inner := `a:2:{s:3:"url";` + ser(oldURL+"/x") + `s:4:"list";a:3:{i:0;` + ser(oldURL+"/1") + `i:1;d:0.5;i:2;b:1;}}`
	var sb strings.Builder
	sb.WriteString("a:100:{")
	for i := range 100 {
		sb.WriteString("i:" + itoa(i) + ";" + ser(inner))
	}
	sb.WriteString("}")
	values := []struct{ name, v string }{
		{"post", post},
		{"serialized", sb.String()},
		{"css", strings.Repeat("a:hover{color:#c00}\n.hero{background:url(http://old.example/bg.jpg)}\n", 100)},
	}
	r, err := New(oldURL, newURL)
	if err != nil {
		b.Fatal(err)
	}
	b.Run("anchor=bytes.ReplaceAll/post", func(b *testing.B) {
		v, from, to := []byte(post), []byte(oldURL), []byte(newURL)
		b.SetBytes(int64(len(v)))
		for b.Loop() {
			bytes.ReplaceAll(v, from, to)
		}
	})
	for _, c := range values {
		b.Run(c.name, func(b *testing.B) {
			v := []byte(c.v)
			if _, res := r.Rewrite(v); !res.Changed {
				b.Fatal("unchanged")
			}
			b.SetBytes(int64(len(v)))
			for b.Loop() {
				r.Rewrite(v)
			}
		})
	}
}
