package searchreplace

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// FuzzRewrite feeds arbitrary bytes. Invariants: no panic; an unchanged
// value comes back as it was; a value that is valid serialised data stays
// valid; a second pass changes nothing; and rewriting back (new → old)
// restores the input when the input held no form of the new URL and no
// value that looked serialised was rewritten as plain text (a wrong length
// may have become right).
func FuzzRewrite(f *testing.F) {
	inner := `a:1:{s:3:"url";` + ser(oldURL+"/x") + `}`
	for _, s := range []string{
		"", oldURL, "http://old.example.org", "x http:\\/\\/old.example y", "http%3A%2F%2Fold.example",
		ser(oldURL), ser(inner), ser(ser(inner)), `a:2:{i:0;` + ser(oldURL) + `i:1;R:2;}`,
		`O:8:"stdClass":1:{s:1:"a";` + ser(oldURL) + `}`, `a:1:{i:0;d:-INF;}`, `b:1;`, `N;`,
		`s:5:"http://old.example";`, `C:11:"ArrayObject":` + strconv.Itoa(len(ser(oldURL))) + `:{` + ser(oldURL) + `}`,
		" \n" + ser(oldURL) + "\n", `a:1:{i:0;` + ser(`s:99:"http://old.example";`) + `}`,
		`{"t":"a\nhttp:\/\/old.example\u0022"}`, "u=x%3Dhttp%3A%2F%2Fold.example%2Fp",
		"a:hover{color:#c00}\n.hero{background:url(http://old.example/bg.jpg)}",
		`a:1:{S:1:"\6b";S:19:"\68ttp:\2f/old.example\0a";}`, ser(oldURL) + "i:1;" + ser(oldURL),
	} {
		f.Add([]byte(s))
	}
	fwd, err := New(oldURL, newURL)
	if err != nil {
		f.Fatal(err)
	}
	back, err := New(newURL, oldURL)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		orig := bytes.Clone(in)
		out, res := fwd.Rewrite(in)
		if !bytes.Equal(in, orig) {
			t.Fatal("input modified")
		}
		if !res.Changed && !bytes.Equal(out, in) {
			t.Fatalf("unchanged but different: %q → %q", in, out)
		}
		if res.Changed && bytes.Equal(out, in) {
			t.Fatalf("changed but equal: %q", in)
		}
		if validSerialized(fwd, in) && !validSerialized(fwd, out) {
			t.Fatalf("valid %q became invalid %q", in, out)
		}
		if res.Malformed && !res.Changed {
			t.Fatalf("malformed but unchanged: %q", in)
		}
		if again, res2 := fwd.Rewrite(out); res2.Changed {
			t.Fatalf("second pass changed %q to %q", out, again)
		}
		if back.mayMatch(in) || res.fellBack {
			return
		}
		if restored, _ := back.Rewrite(out); !bytes.Equal(restored, in) {
			t.Fatalf("round trip: %q → %q → %q", in, out, restored)
		}
	})
}

// validSerialized reports whether b (trimmed) is serialised data our
// parser accepts.
func validSerialized(r *Replacer, b []byte) bool {
	_, body, _ := trimPHP(b)
	_, _, err := r.rewriteSerialized(body, 0)
	return err == nil
}

// FuzzTree builds a PHP value from the fuzzer's bytes — arrays, objects,
// scalars, strings (also S: ones) of URL fragments, some starting like
// serialised data (custom CSS), and strings that are serialised values
// themselves — serialises it together with the value expected after the
// rewrite, and checks that Rewrite turns one into the other.
func FuzzTree(f *testing.F) {
	for _, s := range []string{"", "\x00", "\x05\x01\x02\x03", "\x06\x06\x06\x00\x01", "\x07\x07\x05\x00\x03\x04", "\x08\x01\x02\x05\x02\x06\x07"} {
		f.Add([]byte(s))
	}
	r, err := New(oldURL, newURL)
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		g := &tree{src: data}
		in, want := g.value(0)
		out, res := r.Rewrite([]byte(in))
		if string(out) != want {
			t.Fatalf("Rewrite(%q)\n got %q\nwant %q", in, out, want)
		}
		if res.Malformed || res.Changed != (in != want) {
			t.Fatalf("result %+v for %q", res, in)
		}
	})
}

// tree generates serialised values from a byte source (zeros once it is
// used up), each with the value expected after rewriting oldURL to newURL.
type tree struct {
	src []byte
	i   int
}

func (g *tree) next() int {
	if g.i >= len(g.src) {
		return 0
	}
	g.i++
	return int(g.src[g.i-1])
}

// fragments of plain strings, before and after the rewrite. They are
// joined with spaces, a boundary for every fragment.
var fragments = [][2]string{
	{"", ""},
	{oldURL, newURL},
	{oldURL + "/wp-content/x.png", newURL + "/wp-content/x.png"},
	{"http://old.example.org/", "http://old.example.org/"},
	{"https://old.example", "https://new.example.org"},
	{`<a href="//old.example/p?x=1">é</a>`, `<a href="//new.example.org/p?x=1">é</a>`},
	{`http:\/\/old.example\/j`, `http:\/\/new.example.org\/j`},
	{"u=http%3A%2F%2Fold.example%2F", "u=http%3A%2F%2Fnew.example.org%2F"},
	{`";}s:3:"`, `";}s:3:"`},
	{"日本語", "日本語"},
	{"old.example", "old.example"},
	{"\x00\xff", "\x00\xff"},
	{`{"t":"Line\nhttp:\/\/old.example\/x\u0022"}`, `{"t":"Line\nhttp:\/\/new.example.org\/x\u0022"}`},
	{`\u003ehttp://old.example\u003c`, `\u003ehttp://new.example.org\u003c`},
	{"r=%2Fgo%3Fnext%3Dhttp%3A%2F%2Fold.example%2Fx", "r=%2Fgo%3Fnext%3Dhttp%3A%2F%2Fnew.example.org%2Fx"},
	{`\u0041old.example %2Eold.example`, `\u0041old.example %2Eold.example`},
}

var floats = []string{"0.5", "-1.25", "1.0E+25", "0.1", "INF", "-INF", "NAN", "-0"}

func (g *tree) value(depth int) (in, want string) {
	in, want, _ = g.valueCanon(depth)
	return in, want
}

// valueCanon also returns canon, what PHP's serialize writes for want's
// value: S: strings (PHP reads them, never writes them) become s: ones.
func (g *tree) valueCanon(depth int) (in, want, canon string) {
	k := g.next()
	if depth > 6 {
		k %= 6 // leaves only
	}
	switch k % 9 {
	case 0:
		in, want = g.str()
		return in, want, want
	case 6:
		// An S: string (escaped).
		i, w := g.text()
		return serEscaped(i), serEscaped(w), ser(w)
	case 1:
		n := "i:" + strconv.Itoa(g.next()-128) + ";"
		return n, n, n
	case 2:
		d := "d:" + floats[g.next()%len(floats)] + ";"
		return d, d, d
	case 3:
		b := "b:" + strconv.Itoa(g.next()%2) + ";"
		return b, b, b
	case 4:
		return "N;", "N;", "N;"
	case 5:
		// A string holding a serialised value (WordPress stores a
		// plugin's serialised array this way); its bytes are kept.
		i, w := g.value(depth + 1)
		return ser(i), ser(w), ser(w)
	case 7, 8:
		n := g.next() % 5
		var bi, bw, bc strings.Builder
		for j := 0; j < n; j++ {
			var key string
			if k%9 == 7 && g.next()%2 == 0 { // objects: string keys (PHP 8 turns int ones into strings)
				key = "i:" + strconv.Itoa(j) + ";"
			} else {
				// Keys are never rewritten, even when they hold the URL.
				ks, _ := g.str()
				key = ser("k" + strconv.Itoa(j) + " " + ks)
			}
			i, w, c := g.valueCanon(depth + 1)
			bi.WriteString(key + i)
			bw.WriteString(key + w)
			bc.WriteString(key + c)
		}
		head := "a:"
		if k%9 == 8 {
			head = `O:8:"stdClass":`
		}
		head += strconv.Itoa(n) + ":{"
		return head + bi.String() + "}", head + bw.String() + "}", head + bc.String() + "}"
	}
	panic("unreachable")
}

// str returns a serialised string of fragments and its rewrite.
func (g *tree) str() (in, want string) {
	i, w := g.text()
	return ser(i), ser(w)
}

// heads start a string's text: a word, text that only looks serialised
// (custom CSS), a serialised value followed by text.
var heads = []string{"T", "a:hover{color:#c00}", "i:1;", "b:x;"}

// text returns a string's text of fragments and its rewrite.
func (g *tree) text() (in, want string) {
	n := g.next() % 5
	h := heads[g.next()%len(heads)]
	is, ws := []string{h}, []string{h}
	for j := 0; j < n; j++ {
		fr := fragments[g.next()%len(fragments)]
		is, ws = append(is, fr[0]), append(ws, fr[1])
	}
	return strings.Join(is, " "), strings.Join(ws, " ")
}

// serEscaped is s as an S: string, escaped as the Replacer escapes one.
func serEscaped(s string) string {
	return "S:" + strconv.Itoa(len(s)) + `:"` + string(appendEscaped(nil, []byte(s))) + `";`
}

// TestGeneratedAgainstPHP rewrites a batch of generated values and has
// PHP's unserialize accept each output and re-serialise it to the bytes
// expected for the rewritten value (the output itself, but for S: strings,
// which PHP writes as s:).
func TestGeneratedAgainstPHP(t *testing.T) {
	php, err := exec.LookPath("php8.2")
	if err != nil {
		if php, err = exec.LookPath("php"); err != nil {
			t.Skip("php not installed")
		}
	}
	r, err := New(oldURL, newURL)
	if err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	var outs [][2][]byte // rewritten, and PHP's serialize of its value
	for i := 0; i < 2000; i++ {
		src := make([]byte, 8+rng.IntN(200))
		for j := range src {
			src[j] = byte(rng.UintN(256))
		}
		in, want, canon := (&tree{src: src}).valueCanon(0)
		out, _ := r.Rewrite([]byte(in))
		if string(out) != want {
			t.Fatalf("Rewrite(%q)\n got %q\nwant %q", in, out, want)
		}
		outs = append(outs, [2][]byte{out, []byte(canon)})
	}
	dir := t.TempDir()
	data, _ := json.Marshal(outs)
	if err := os.WriteFile(filepath.Join(dir, "v.json"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	script := `<?php
$fail = 0; $n = 0;
foreach (json_decode(file_get_contents($argv[1])) as $p) {
	$s = base64_decode($p[0]); $n++;
	$v = @unserialize($s);
	if ($v === false && $s !== 'b:0;') { echo "rejected: $s\n"; $fail++; continue; }
	// NAN never equals itself; compare serialisations instead.
	if (serialize($v) !== base64_decode($p[1])) { echo "not the expected value: $s\n"; $fail++; }
}
echo "checked $n failed $fail\n";
`
	if err := os.WriteFile(filepath.Join(dir, "c.php"), []byte(script), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(php, filepath.Join(dir, "c.php"), filepath.Join(dir, "v.json")).CombinedOutput()
	if err != nil {
		t.Fatalf("php: %v\n%s", err, out)
	}
	if !strings.HasSuffix(strings.TrimSpace(string(out)), "failed 0") {
		t.Errorf("php:\n%s", out)
	}
	t.Logf("php: %s", bytes.TrimSpace(out))
}
