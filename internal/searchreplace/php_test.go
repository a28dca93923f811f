package searchreplace

import (
	"bytes"
	"encoding/json"
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
$pairs = json_decode(file_get_contents($argv[1]), true);
$fail = 0;
foreach ($pairs as $i => $p) {
	$in = base64_decode($p['in']); $out = base64_decode($p['out']);
	$v = @unserialize($out);
	if ($v === false && $out !== 'b:0;') { echo "case $i: unserialize failed: $out\n"; $fail++; continue; }
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
		pairs = append(pairs, pair{in, out, true})
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
	} {
		out, res := r.Rewrite([]byte(in))
		if res.Malformed {
			t.Errorf("%q reported malformed", in)
		}
		pairs = append(pairs, pair{[]byte(in), out, false})
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
