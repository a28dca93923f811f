package searchreplace

import (
	"bytes"
	"strings"
	"testing"
)

const (
	oldURL = "http://old.example"
	newURL = "http://new.example.org"
)

// ser is PHP's serialize() of a string.
func ser(s string) string { return "s:" + itoa(len(s)) + `:"` + s + `";` }

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

func TestReplace(t *testing.T) {
	inner := `a:1:{s:3:"url";` + ser(oldURL+"/x") + `}`
	innerNew := `a:1:{s:3:"url";` + ser(newURL+"/x") + `}`
	cases := []struct {
		name, in, want string
		malformed      bool
	}{
		// Plain text.
		{"empty", "", "", false},
		{"no match", "nothing here", "nothing here", false},
		{"exact", oldURL, newURL, false},
		{"path", `<a href="http://old.example/about/">x</a>`, `<a href="http://new.example.org/about/">x</a>`, false},
		{"several", oldURL + " and " + oldURL + "/a", newURL + " and " + newURL + "/a", false},
		{"port kept", "http://old.example:8080/x", "http://new.example.org:8080/x", false},
		{"query", "http://old.example?p=1", "http://new.example.org?p=1", false},
		{"fragment", "http://old.example#top", "http://new.example.org#top", false},
		{"end of sentence", "See http://old.example.", "See http://new.example.org.", false},
		{"quote after", `"http://old.example"`, `"http://new.example.org"`, false},
		{"nbsp after", "http://old.example\u00a0now", "http://new.example.org\u00a0now", false},
		{"longer host", "http://old.example.org/x", "http://old.example.org/x", false},
		{"longer host2", "http://old.examples/x", "http://old.examples/x", false},
		{"hyphen host", "http://old.example-cdn.net/x", "http://old.example-cdn.net/x", false},
		{"underscore", "http://old.example_x", "http://old.example_x", false},
		{"other scheme keeps scheme", "https://old.example/x", "https://new.example.org/x", false},
		{"scheme relative", `<img src="//old.example/a.png">`, `<img src="//new.example.org/a.png">`, false},
		{"prefixed scheme", "xhttp://old.example", "xhttp://new.example.org", false}, // the //… form still matches
		{"email untouched", "admin@old.example", "admin@old.example", false},
		{"bare host untouched", "old.example", "old.example", false},
		{"case sensitive", "HTTP://OLD.EXAMPLE", "HTTP://OLD.EXAMPLE", false},
		{"json", `{"u":"http:\/\/old.example\/x"}`, `{"u":"http:\/\/new.example.org\/x"}`, false},
		{"json https", `"https:\/\/old.example"`, `"https:\/\/new.example.org"`, false},
		{"json longer host", `"http:\/\/old.example.org"`, `"http:\/\/old.example.org"`, false},
		{"urlencoded", "share?u=http%3A%2F%2Fold.example%2Fp", "share?u=http%3A%2F%2Fnew.example.org%2Fp", false},
		{"urlencoded lower", "u=http%3a%2f%2fold.example", "u=http%3a%2f%2fnew.example.org", false},
		{"urlencoded https", "u=https%3A%2F%2Fold.example", "u=https%3A%2F%2Fnew.example.org", false},
		{"mixed forms", "http://old.example http:\\/\\/old.example //old.example", "http://new.example.org http:\\/\\/new.example.org //new.example.org", false},
		{"adjacent", "http://old.example/http://old.example", "http://new.example.org/http://new.example.org", false},
		{"utf8 around", "→http://old.example←", "→http://new.example.org←", false},
		{"not serialized: s: without end", "s: http://old.example", "s: http://new.example.org", false},

		// Serialised data.
		{"string", ser(oldURL), ser(newURL), false},
		{"string, whitespace kept", "\n " + ser(oldURL) + " \n", "\n " + ser(newURL) + " \n", false},
		{"string no match", ser("hello"), ser("hello"), false},
		{"string longer host", ser("http://old.example.org"), ser("http://old.example.org"), false},
		{"array", `a:2:{i:0;` + ser(oldURL) + `s:1:"k";` + ser("x "+oldURL+" y") + `}`,
			`a:2:{i:0;` + ser(newURL) + `s:1:"k";` + ser("x "+newURL+" y") + `}`, false},
		{"keys untouched", `a:1:{` + ser(oldURL) + ser(oldURL) + `}`, `a:1:{` + ser(oldURL) + ser(newURL) + `}`, false},
		{"scalars kept", `a:6:{i:0;b:1;i:1;i:-5;i:2;d:0.1000000000000000055511151231257827;i:3;N;i:4;d:-INF;i:5;` + ser(oldURL) + `}`,
			`a:6:{i:0;b:1;i:1;i:-5;i:2;d:0.1000000000000000055511151231257827;i:3;N;i:4;d:-INF;i:5;` + ser(newURL) + `}`, false},
		{"nested arrays", `a:1:{s:1:"a";a:1:{s:1:"b";a:1:{i:0;` + ser(oldURL) + `}}}`,
			`a:1:{s:1:"a";a:1:{s:1:"b";a:1:{i:0;` + ser(newURL) + `}}}`, false},
		{"object", `O:8:"stdClass":2:{s:3:"url";` + ser(oldURL) + `s:1:"n";i:1;}`,
			`O:8:"stdClass":2:{s:3:"url";` + ser(newURL) + `s:1:"n";i:1;}`, false},
		{"private property name kept", "O:3:\"Foo\":1:{s:6:\"\x00Foo\x00u\";" + ser(oldURL) + "}",
			"O:3:\"Foo\":1:{s:6:\"\x00Foo\x00u\";" + ser(newURL) + "}", false},
		{"references kept", `a:2:{i:0;` + ser(oldURL) + `i:1;R:2;}`, `a:2:{i:0;` + ser(newURL) + `i:1;R:2;}`, false},
		{"double serialized", ser(inner), ser(innerNew), false},
		{"triple serialized", ser(ser(inner)), ser(ser(innerNew)), false},
		{"array of serialized", `a:1:{i:0;` + ser(inner) + `}`, `a:1:{i:0;` + ser(innerNew) + `}`, false},
		{"json in serialized", ser(`{"u":"http:\/\/old.example"}`), ser(`{"u":"http:\/\/new.example.org"}`), false},
		{"multibyte lengths", ser("é http://old.example ü"), ser("é http://new.example.org ü"), false},
		{"string with quotes and semicolons", ser(`";} http://old.example ";}`), ser(`";} http://new.example.org ";}`), false},
		{"custom C: untouched", `C:11:"ArrayObject":` + itoa(len(ser(oldURL))) + `:{` + ser(oldURL) + `}`,
			`C:11:"ArrayObject":` + itoa(len(ser(oldURL))) + `:{` + ser(oldURL) + `}`, false},

		// Broken serialised data is rewritten as plain text (PHP rejects
		// it before and after) and reported.
		{"wrong length", `s:5:"http://old.example";`, `s:5:"http://new.example.org";`, true},
		{"truncated", `a:2:{i:0;` + ser(oldURL) + `}`, `a:2:{i:0;s:18:"http://new.example.org";}`, true},
		{"bad key", `a:1:{d:1.5;` + ser(oldURL) + `}`, `a:1:{d:1.5;s:18:"http://new.example.org";}`, true},
		{"bad reference", `a:1:{i:0;` + ser(oldURL) + `i:1;R:9;}`, `a:1:{i:0;s:18:"http://new.example.org";i:1;R:9;}`, true},
		{"malformed inside valid", `a:1:{i:0;` + ser(`s:99:"http://old.example";`) + `}`,
			`a:1:{i:0;` + ser(`s:99:"http://new.example.org";`) + `}`, true},
		{"malformed inner, valid sibling changed", `a:2:{i:0;` + ser(`s:99:"http://old.example";`) + `i:1;` + ser(oldURL) + `}`,
			`a:2:{i:0;` + ser(`s:99:"http://new.example.org";`) + `i:1;` + ser(newURL) + `}`, true},
		// What PHP's unserialize accepts is rewritten as serialised data.
		{"trailing bytes (PHP ignores them)", ser(oldURL) + `i:1;`, ser(newURL) + `i:1;`, false},
		{"trailing values and text", ser(oldURL) + ser(oldURL) + `x;` + ser(oldURL), ser(newURL) + ser(newURL) + `x;s:18:"http://new.example.org";`, false},
		{"S string", `S:18:"http://old.example";`, `S:22:"http://new.example.org";`, false},
		// Text that merely looks serialised is text, and not reported.
		{"looks serialised", `b:hover{` + oldURL + `;}`, `b:hover{` + newURL + `;}`, false},
	}
	r, err := New(oldURL, newURL)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			out, res := r.Rewrite([]byte(c.in))
			if string(out) != c.want {
				t.Errorf("Rewrite(%q)\n got %q\nwant %q", c.in, out, c.want)
			}
			if res.Changed != (c.in != c.want) {
				t.Errorf("Changed = %v", res.Changed)
			}
			if res.Malformed != c.malformed {
				t.Errorf("Malformed = %v, want %v", res.Malformed, c.malformed)
			}
			// A second pass changes nothing.
			if again, res := r.Rewrite(out); res.Changed {
				t.Errorf("second pass changed %q to %q", out, again)
			}
		})
	}
}

func TestVariantsAndBoundaries(t *testing.T) {
	cases := []struct {
		name, from, to, in, want string
	}{
		{"port in from", "http://old.example:8080", "http://new.example", "http://old.example:8080/ http://old.example:80801/ http://old.example/", "http://new.example/ http://old.example:80801/ http://old.example/"},
		{"path in from", "http://old.example/blog", "http://new.example", "http://old.example/blog/x http://old.example/blog2 http://old.example/blog-x", "http://new.example/x http://old.example/blog2 http://old.example/blog-x"},
		{"path in from, encoded", "http://old.example/blog", "http://new.example/b", "http:\\/\\/old.example\\/blog\\/x u=http%3A%2F%2Fold.example%2Fblog%2Fx", "http:\\/\\/new.example\\/b\\/x u=http%3A%2F%2Fnew.example%2Fb%2Fx"},
		{"scheme change", "http://old.example", "https://new.example", "http://old.example https://old.example //old.example", "https://new.example https://new.example //new.example"},
		{"scheme only", "http://same.example", "https://same.example", "http://same.example https://same.example //same.example", "https://same.example https://same.example //same.example"},
		{"bare host", "old.example", "new.example", "old.example sub.old.example old.example.org gold.example a@old.example", "new.example sub.old.example old.example.org gold.example a@new.example"},
		{"to without scheme", "http://old.example", "/", "http://old.example //old.example", "/ //old.example"},
		{"trailing slash in from", "http://old.example/", "http://new.example/", "http://old.example/x http://old.example.org/", "http://new.example/x http://old.example.org/"},
		{"non-url", "foo", "barbaz", "foo food foo-bar (foo)", "barbaz food foo-bar (barbaz)"},
		{"to contains from", "http://a.example", "http://a.example.org", "http://a.example/", "http://a.example.org/"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, _ := Replace(c.in, c.from, c.to)
			if got != c.want {
				t.Errorf("\n got %q\nwant %q", got, c.want)
			}
			if again, changed := Replace(got, c.from, c.to); changed && !strings.Contains(c.to, c.from) {
				t.Errorf("second pass changed %q to %q", got, again)
			}
		})
	}
}

func TestNewRejects(t *testing.T) {
	if _, err := New("", "x"); err == nil {
		t.Error("empty from accepted")
	}
	if _, err := New("a\x00", "x"); err == nil {
		t.Error("NUL accepted")
	}
	if got, changed := Replace("x", "", "y"); got != "x" || changed {
		t.Error("Replace with empty from changed the value")
	}
}

func TestProbe(t *testing.T) {
	for _, c := range []struct{ from, want string }{
		{"http://old.example", "old.example"},
		{"https://old.example:8443/blog", "old.example"},
		{"http://a.b/longer-path", "longer-path"},
		{"old.example", "old.example"},
		{"//", ""},
		// The block editor writes "--" as \u002d\u002d.
		{"https://xn--caf-dma.example", "caf-dma.example"},
		{"http://café.example", ".example"},
	} {
		r, err := New(c.from, "x")
		if err != nil {
			t.Fatal(err)
		}
		if r.Probe() != c.want {
			t.Errorf("Probe(%q) = %q, want %q", c.from, r.Probe(), c.want)
		}
		// Every variant holds the probe.
		for _, v := range r.variants {
			if !bytes.Contains(v.from, []byte(r.Probe())) {
				t.Errorf("variant %q of %q lacks probe %q", v.from, c.from, r.Probe())
			}
		}
	}
}

func TestDeepNesting(t *testing.T) {
	r, _ := New(oldURL, newURL)
	// Arrays nest without a limit (PHP's unserialize_max_depth may be
	// raised or 0) and without recursion.
	for _, n := range []int{100, 4096, 200000} {
		in := strings.Repeat("a:1:{i:0;", n) + ser(oldURL) + strings.Repeat("}", n)
		want := strings.Repeat("a:1:{i:0;", n) + ser(newURL) + strings.Repeat("}", n)
		if out, res := r.Rewrite([]byte(in)); string(out) != want || res.Malformed || res.TooDeep {
			t.Errorf("%d levels not rewritten: %+v", n, res)
		}
	}
	// Serialised strings holding serialised strings are followed
	// maxNesting levels deep; deeper ones are left as they were.
	nest := func(n int, s string) string {
		for range n {
			s = ser(s)
		}
		return s
	}
	in, want := nest(maxNesting, oldURL), nest(maxNesting, newURL)
	if out, res := r.Rewrite([]byte(in)); string(out) != want || res.TooDeep {
		t.Errorf("%d strings deep not rewritten: %+v", maxNesting, res)
	}
	in = nest(maxNesting+1, ser(oldURL))
	out, res := r.Rewrite([]byte(in))
	if string(out) != in || !res.TooDeep || res.Changed || res.Malformed {
		t.Errorf("%d strings deep: changed=%v %+v", maxNesting+2, string(out) != in, res)
	}
	// Text there that only looks serialised is still rewritten.
	in, want = nest(maxNesting, "a:1:{"+oldURL+"}"), nest(maxNesting, "a:1:{"+newURL+"}")
	if out, res := r.Rewrite([]byte(in)); string(out) != want || res.TooDeep {
		t.Errorf("text %d strings deep not rewritten: %+v", maxNesting, res)
	}
}

// TestKnownDefects holds the defects of issue 16, found by differential
// testing against wp-cli, each with the cases that failed before the fix.
func TestKnownDefects(t *testing.T) {
	const (
		https = "https://old.example"
		to    = "http://new.example:8080"
		css   = "a:hover{color:#c00}\n.hero{background:url(http://old.example/bg.jpg)}"
		cssN  = "a:hover{color:#c00}\n.hero{background:url(http://new.example.org/bg.jpg)}"
	)
	deep := func(n int, s string) string {
		return strings.Repeat("a:1:{i:0;", n) + ser(s) + strings.Repeat("}", n)
	}
	cases := []struct {
		name, from, to, in, want string
		malformed                bool
	}{
		// 1. A URL right after a JSON escape that ends in a letter or digit.
		{"json \\n, scheme changes", https, to, `{"text":"Line one\nhttps:\/\/old.example\/x"}`, `{"text":"Line one\nhttp:\/\/new.example:8080\/x"}`, false},
		{"json \\t", https, to, `{"t":"a\thttps:\/\/old.example"}`, `{"t":"a\thttp:\/\/new.example:8080"}`, false},
		{"json \\r\\n", https, to, `"a\r\nhttps:\/\/old.example"`, `"a\r\nhttp:\/\/new.example:8080"`, false},
		{"json \\u0022", https, to, `{"html":"\u003ca href=\u0022https:\/\/old.example\/x\u0022\u003e"}`, `{"html":"\u003ca href=\u0022http:\/\/new.example:8080\/x\u0022\u003e"}`, false},
		{"block attribute \\u003e", https, to, `<!-- wp:paragraph {"c":"\u003ca href=\u0022x\u0022\u003ehttps://old.example/p\u003c/a\u003e"} -->`, `<!-- wp:paragraph {"c":"\u003ca href=\u0022x\u0022\u003ehttp://new.example:8080/p\u003c/a\u003e"} -->`, false},
		{"json \\n, bare host", "old.example", "new.example", `{"text":"Line one\nold.example\/x"}`, `{"text":"Line one\nnew.example\/x"}`, false},
		{"json \\u0022, bare host", "old.example", "new.example", `\u0022old.example\u0022`, `\u0022new.example\u0022`, false},
		{"not an escape: xn", "old.example", "new.example", `xnold.example`, `xnold.example`, false},
		{"not an escape: escaped backslash", "old.example", "new.example", `"a\\nold.example"`, `"a\\nold.example"`, false},
		{"escape of a letter continues the host", "old.example", "new.example", `"\u0041old.example"`, `"\u0041old.example"`, false},
		{"escape of a letter after continues the host", https, to, `"https:\/\/old.example\u0041"`, `"https:\/\/old.example\u0041"`, false},

		// 2. After a percent-encoded byte.
		{"bare host after %2F", "old.example", "new.example", "?url=https%3A%2F%2Fold.example%2Fpost", "?url=https%3A%2F%2Fnew.example%2Fpost", false},
		{"bare host after %2f", "old.example", "new.example", "?url=https%3a%2f%2fold.example%2fpost", "?url=https%3a%2f%2fnew.example%2fpost", false},
		{"encoded URL, scheme changes", https, to, "?u=https%3A%2F%2Fold.example%2Fpost", "?u=http%3A%2F%2Fnew.example%3A8080%2Fpost", false},
		{"encoded URL after encoded =, scheme changes", https, to, "?r=%2Fgo%3Fnext%3Dhttps%3A%2F%2Fold.example%2Fx", "?r=%2Fgo%3Fnext%3Dhttp%3A%2F%2Fnew.example%3A8080%2Fx", false},
		{"encoded dot continues the host", "old.example", "new.example", "sub%2Eold.example old.example%2Eorg", "sub%2Eold.example old.example%2Eorg", false},

		// 3. Text that only looks serialised.
		{"css alone", oldURL, newURL, css, cssN, false},
		{"css in a serialised array", oldURL, newURL, `a:1:{s:3:"css";` + ser(css) + `}`, `a:1:{s:3:"css";` + ser(cssN) + `}`, false},
		{"css in a serialised string", oldURL, newURL, ser(css), ser(cssN), false},

		// Smaller ones.
		{"non-ASCII host in \\u JSON", "http://café.example", "http://new.example", `{"u":"http:\/\/caf\u00e9.example\/x"}`, `{"u":"http:\/\/new.example\/x"}`, false},
		{"non-ASCII path in \\u JSON, unescaped slashes", "https://old.example/café", "https://new.example/menu", `{"u":"https://old.example/caf\u00e9/x"}`, `{"u":"https://new.example/menu/x"}`, false},
		{"non-ASCII to in \\u JSON", "http://café.example", "http://thé.example", `"http:\/\/caf\u00e9.example"`, `"http:\/\/th\u00e9.example"`, false},
		{"punycode host in a block attribute", "https://xn--caf-dma.example", "https://new.example", `<!-- wp:image {"url":"https://xn\u002d\u002dcaf-dma.example/i.png"} -->`, `<!-- wp:image {"url":"https://new.example/i.png"} -->`, false},
		{"S: string", oldURL, newURL, `S:18:"http://old.example";`, `S:22:"http://new.example.org";`, false},
		{"S: string with escapes, S: key", oldURL, newURL, `a:1:{S:1:"\6b";S:19:"\68ttp:\2f/old.example\0a";}`, `a:1:{S:1:"\6b";S:23:"http://new.example.org\0a";}`, false},
		{"4096-deep arrays", oldURL, newURL, deep(4096, oldURL), deep(4096, newURL), false},
		{"5000-deep arrays", oldURL, newURL, deep(5000, oldURL), deep(5000, newURL), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r, err := New(c.from, c.to)
			if err != nil {
				t.Fatal(err)
			}
			out, res := r.Rewrite([]byte(c.in))
			if string(out) != c.want {
				t.Errorf("Rewrite(%.300q)\n got %.300q\nwant %.300q", c.in, out, c.want)
			}
			if res.Changed != (c.in != c.want) || res.Malformed != c.malformed {
				t.Errorf("result %+v", res)
			}
		})
	}
}
