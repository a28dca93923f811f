package searchreplace

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// phpCases builds values with PHP's own serialize(): nesting, objects with
// private and protected properties, references, floats, binary and
// multibyte strings, and strings that are themselves serialised (as
// WordPress stores a plugin's serialised array through update_option).
const phpCases = `<?php
class Widget { public $url = 'http://old.example/w'; protected $p = 'http://old.example/p'; private $q = "http://old.example/q\0"; public $n = 1.1; }
$o = 'http://old.example';
$inner = serialize(['url' => "$o/x", 'json' => json_encode(['u' => "$o/j"]), 'n' => 3]);
$arr = ['a' => "$o/a", 'b' => ['c' => "$o/c", 'd' => [1, 2.5, true, null, "$o"]]];
$ref = ['x' => "$o/r"]; $ref['y'] = &$ref['x'];
$obj = new stdClass; $obj->link = "<a href=\"$o/p\">é</a>"; $obj->self = $obj;
$cases = [
	'http://old.example',
	"multi\nline $o/x ü 日本",
	['text' => "<p>Visit <a href=\"$o/about/\">us</a></p>", 'title' => 'T', 'filter' => false],
	[2 => ['title' => 'W', 'text' => "$o/", 'visual' => true], '_multiwidget' => 1],
	$arr,
	$inner,
	[$inner, serialize($inner)],
	['nav_menu_locations' => ['primary' => 2], 'custom_logo' => 7, 'header_image' => "$o/wp-content/uploads/h.jpg", 'header_image_data' => (object) ['url' => "$o/h.jpg", 'thumbnail_url' => "$o/h-150.jpg", 'width' => 1200]],
	new Widget,
	$ref,
	$obj,
	[0.1, -0.0, 1e100, PHP_INT_MAX, PHP_INT_MIN, INF, -INF, NAN, "$o"],
	str_repeat("$o/", 100),
	"\0\x01\xff $o \";}",
	json_encode(['url' => "$o/x", 'list' => ["$o/1", "$o/2"]]),
	['https' => "https://old.example/s", 'rel' => "//old.example/r", 'enc' => rawurlencode("$o/e")],
];
$out = [];
foreach ($cases as $c) { $out[] = base64_encode(serialize($c)); }
echo json_encode($out);
`

// phpCheck unserialises every rewritten value and checks that PHP accepts
// it, that re-serialising gives the same bytes (our output is canonical
// PHP), and that it holds no trace of the old host while keeping the
// boundaries (old.example.org is untouched).
const phpCheck = `<?php
// A class with its own (C:) format whose payload is serialised data.
class SR implements Serializable {
	public $d;
	function serialize() { return serialize($this->d); }
	function unserialize($s) { $this->d = unserialize($s); }
	function __serialize(): array { return [$this->d]; }
	function __unserialize(array $a): void { $this->d = $a[0]; }
}
$pairs = json_decode(file_get_contents($argv[1]), true);
$fail = 0;
foreach ($pairs as $i => $p) {
	$in = base64_decode($p['in']); $out = base64_decode($p['out']);
	$v = @unserialize($out);
	if ($v === false && $out !== 'b:0;') { echo "case $i: unserialize failed: $out\n"; $fail++; continue; }
	if ($p['same'] !== null && @unserialize(base64_decode($p['same'])) !== $v) { echo "case $i: not the expected value: $out\n"; $fail++; }
	if ($p['php'] && serialize($v) !== $out) { echo "case $i: not canonical:\n", serialize($v), "\n$out\n"; $fail++; }
	if ($p['php']) {
		$w = $out;
		do { $prev = $w; $w = str_replace(['old.example.org'], [''], $w); } while ($w !== $prev);
		if (strpos($w, 'old.example') !== false || strpos($w, rawurlencode('old.example')) !== false) { echo "case $i: old host left: $out\n"; $fail++; }
	}
	// Deep check: every nested serialised string is valid too.
	$walk = function ($x, $depth) use (&$walk, $i, &$fail) {
		if ($depth > 20) return;
		if (is_string($x) && preg_match('/^[aOs]:[0-9]+:/', $x)) {
			$u = @unserialize($x);
			if ($u === false) { echo "case $i: nested value does not unserialize: $x\n"; $fail++; return; }
			$walk($u, $depth + 1);
		} elseif (is_array($x) || is_object($x)) {
			foreach ((array) $x as $e) { $walk($e, $depth + 1); }
		}
	};
	$walk($v, 0);
}
echo $fail === 0 ? "OK\n" : "FAILED $fail\n";
`

func TestAgainstPHP(t *testing.T) {
	php, err := exec.LookPath("php8.2")
	if err != nil {
		if php, err = exec.LookPath("php"); err != nil {
			t.Skip("php not installed")
		}
	}
	dir := t.TempDir()
	run := func(script string, args ...string) []byte {
		t.Helper()
		f := filepath.Join(dir, "s.php")
		if err := os.WriteFile(f, []byte(script), 0o644); err != nil {
			t.Fatal(err)
		}
		var stderr bytes.Buffer
		cmd := exec.Command(php, append([]string{"-d", "display_errors=stderr", f}, args...)...)
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("php: %v\n%s%s", err, out, stderr.String())
		}
		return out
	}
	var encoded []string
	if err := json.Unmarshal(run(phpCases), &encoded); err != nil {
		t.Fatal(err)
	}
	r, err := New("http://old.example", "http://new.example.org")
	if err != nil {
		t.Fatal(err)
	}
	type pair struct {
		In  []byte `json:"in"`
		Out []byte `json:"out"`
		PHP bool   `json:"php"` // made by PHP's serialize: canonical, no old host may remain
		// Same, when set, is serialised data PHP must read as the same
		// value as Out.
		Same []byte `json:"same"`
	}
	var pairs []pair
	for i, e := range encoded {
		var in []byte
		if err := json.Unmarshal([]byte(`"`+e+`"`), &in); err != nil {
			t.Fatal(err)
		}
		out, res := r.Rewrite(in)
		if !res.Changed || res.Malformed {
			t.Errorf("case %d: %+v for %q", i, res, in)
		}
		pairs = append(pairs, pair{In: in, Out: out, PHP: true})
	}
	// Hand-written values that PHP accepts, with boundary traps.
	for _, in := range []string{
		`a:3:{i:0;` + ser("http://old.example.org/x") + `i:1;` + ser("http://old.example/x") + `i:2;` + ser("//old.example.org") + `}`,
		`a:2:{i:0;` + ser("x") + `i:1;R:2;}`,
		`O:8:"stdClass":2:{s:1:"a";` + ser("http://old.example") + `s:1:"b";r:1;}`,
		`a:1:{i:0;d:1.;}`,
		`a:2:{i:+5;` + ser("http://old.example") + `i:-1;i:+3;}`,
		`C:11:"ArrayObject":21:{x:i:0;a:0:{};m:a:0:{}}`,
		`s:0:"";`,
		`b:0;`,
		`a:1:{s:3:"css";` + ser("a:hover{color:#c00}\n.hero{background:url(http://old.example/bg.jpg)}") + `}`,
		ser(`{"text":"Line one\nhttp:\/\/old.example\/x"}`),
		ser("http://old.example") + "i:1;",
		// A reference into a C: payload (PHP numbers its values too).
		`a:3:{i:0;C:2:"SR":22:{a:1:{s:1:"u";s:1:"x";}}i:1;R:4;i:2;` + ser("http://old.example") + `}`,
		strings.Repeat("a:1:{i:0;", 4096) + ser("http://old.example") + strings.Repeat("}", 4096),
	} {
		out, res := r.Rewrite([]byte(in))
		if res.Malformed || !res.Changed && strings.Contains(in, "old.example") {
			t.Errorf("%.200q: %+v", in, res)
		}
		pairs = append(pairs, pair{In: []byte(in), Out: out})
	}
	// S: strings (escaped; PHP reads them, never writes them) come out as
	// PHP reads the rewritten string.
	for _, c := range [][2]string{
		{`S:18:"http://old.example";`, ser("http://new.example.org")},
		{`a:1:{S:1:"\6b";S:19:"\68ttp:\2f/old.example\0a";}`, `a:1:{s:1:"k";` + ser("http://new.example.org\n") + `}`},
		{`S:22:"\c3\a9 http://old.example\5c";`, ser("é http://new.example.org\\")},
	} {
		out, res := r.Rewrite([]byte(c[0]))
		if !res.Changed || res.Malformed {
			t.Errorf("%q: %+v", c[0], res)
		}
		pairs = append(pairs, pair{In: []byte(c[0]), Out: out, Same: []byte(c[1])})
	}
	f := filepath.Join(dir, "pairs.json")
	b, _ := json.Marshal(pairs)
	if err := os.WriteFile(f, b, 0o644); err != nil {
		t.Fatal(err)
	}
	res := run(phpCheck, f)
	if strings.TrimSpace(string(res)) != "OK" {
		t.Errorf("php:\n%s", res)
	}
	// The boundary trap stayed.
	if !bytes.Contains(pairs[len(encoded)].Out, []byte(ser("http://old.example.org/x"))) {
		t.Errorf("old.example.org rewritten: %q", pairs[len(encoded)].Out)
	}
	t.Logf("php unserialize accepted %d rewritten values", len(pairs))
}

// phpValid prints, for each base64 value in the JSON list $argv[1],
// whether PHP's unserialize accepts it (WordPress's maybe_unserialize
// trims first; so does the Replacer).
const phpValid = `<?php
class SR implements Serializable {
	public $d;
	function serialize() { return serialize($this->d); }
	function unserialize($s) { $this->d = unserialize($s); }
	function __serialize(): array { return [$this->d]; }
	function __unserialize(array $a): void { $this->d = $a[0]; }
}
$out = [];
foreach (json_decode(file_get_contents($argv[1])) as $b) {
	$s = trim(base64_decode($b));
	try { $v = @unserialize($s); } catch (Throwable $e) { $v = false; }
	$out[] = $v !== false || $s === 'b:0;';
}
echo json_encode($out);
`

// TestMutationsAgainstPHP mutates serialised values (lengths, counts,
// type letters, bytes dropped or doubled, tails added) and asks PHP which
// mutants it accepts: every one it accepts must still be accepted after the
// rewrite. A value the Replacer wrongly took for text would be rewritten
// without fixing its lengths and fail here.
func TestMutationsAgainstPHP(t *testing.T) {
	php, err := exec.LookPath("php8.2")
	if err != nil {
		if php, err = exec.LookPath("php"); err != nil {
			t.Skip("php not installed")
		}
	}
	dir := t.TempDir()
	valid := func(vals [][]byte) []bool {
		t.Helper()
		data, _ := json.Marshal(vals)
		f, s := filepath.Join(dir, "v.json"), filepath.Join(dir, "valid.php")
		if err := os.WriteFile(f, data, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(s, []byte(phpValid), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command(php, s, f).Output()
		if err != nil {
			t.Fatalf("php: %v\n%s", err, out)
		}
		var ok []bool
		if err := json.Unmarshal(out, &ok); err != nil || len(ok) != len(vals) {
			t.Fatalf("php: %v\n%.500s", err, out)
		}
		return ok
	}
	o := "http://old.example"
	inner := `a:1:{s:1:"u";` + ser(o+"/i") + `}`
	bases := []string{
		ser(o), ser(o + "/x é"), `a:2:{i:0;` + ser(o) + `s:1:"k";` + ser(inner) + `}`,
		`O:8:"stdClass":2:{s:3:"url";` + ser(o) + `s:1:"n";d:0.5;}`,
		`a:3:{i:0;` + ser(o) + `i:1;R:2;i:2;b:1;}`,
		`a:3:{i:0;C:2:"SR":22:{a:1:{s:1:"u";s:1:"x";}}i:1;R:4;i:2;` + ser(o) + `}`,
		ser(`{"t":"a\nhttp:\/\/old.example"}`), `a:1:{i:0;a:1:{i:0;a:1:{i:0;` + ser(o) + `}}}`,
		`S:18:"http://old.example";`, ser(ser(inner)),
	}
	rng := rand.New(rand.NewPCG(3, 4))
	const letters = "NbidsSaOCrRE"
	var mutants [][]byte
	for range 4000 {
		m := []byte(bases[rng.IntN(len(bases))])
		for range 1 + rng.IntN(2) {
			i := rng.IntN(len(m))
			switch rng.IntN(7) {
			case 0: // another digit
				if '0' <= m[i] && m[i] <= '9' {
					m[i] = byte('0' + rng.IntN(10))
				}
			case 1:
				m = append(m[:i:i], m[i+1:]...)
			case 2:
				m = append(m[:i+1:i+1], m[i:]...)
			case 3: // another type letter
				if strings.IndexByte(letters, m[i]) >= 0 && i+1 < len(m) && m[i+1] == ':' {
					m[i] = letters[rng.IntN(len(letters))]
				}
			case 4:
				m = m[:i]
			case 5:
				m = append(m, []string{"i:1;", "x", ";", "}", " \n", ser(o)}[rng.IntN(6)]...)
			case 6: // a length one more or less
				if j := bytes.Index(m, []byte(`s:`)); j >= 0 && rng.IntN(2) == 0 {
					m = bytes.Replace(m, []byte(`s:18:`), []byte(`s:17:`), 1)
				} else {
					m = bytes.Replace(m, []byte(`s:18:`), []byte(`s:19:`), 1)
				}
			}
			if len(m) == 0 {
				m = []byte("N;")
			}
		}
		mutants = append(mutants, m)
	}
	r, err := New(o, "http://new.example.org")
	if err != nil {
		t.Fatal(err)
	}
	ok := valid(mutants)
	var ins, outs [][]byte
	for i, m := range mutants {
		if !ok[i] {
			continue
		}
		if _, body, _ := trimPHP(m); !looksSerialized(body) {
			t.Errorf("PHP accepts %q; it does not look serialised", m)
		} else if _, _, ok := r.rewriteValues(body, 0); !ok {
			t.Errorf("PHP accepts %q; the Replacer does not parse it", m)
		}
		out, _ := r.Rewrite(m)
		ins, outs = append(ins, m), append(outs, out)
	}
	for i, good := range valid(outs) {
		if !good {
			t.Errorf("PHP accepts %q but not its rewrite %q", ins[i], outs[i])
		}
	}
	t.Logf("%d mutants, %d accepted by PHP, all still accepted after the rewrite", len(mutants), len(ins))
}
