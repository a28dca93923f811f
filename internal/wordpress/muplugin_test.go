package wordpress

import (
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestMUPluginWriteAndLink(t *testing.T) {
	lib := filepath.Join(t.TempDir(), "lib")
	path, err := WriteMUPlugins(lib)
	if err != nil {
		t.Fatal(err)
	}
	if st, err := os.Stat(path); err != nil || st.Mode().Perm() != 0o644 {
		t.Fatalf("plugin: %v %v", st, err)
	}
	if _, err := WriteMUPlugins(lib); err != nil { // unchanged: kept
		t.Fatal(err)
	}
	docroot := filepath.Join(t.TempDir(), "htdocs")
	// A site that replaced the link with its own file gets the link back.
	os.MkdirAll(filepath.Join(docroot, "wp-content", "mu-plugins"), 0o755)
	link := filepath.Join(docroot, "wp-content", "mu-plugins", CachePluginName)
	os.WriteFile(link, []byte("<?php // evil"), 0o644)
	for range 2 {
		if err := LinkMUPlugin(docroot, path); err != nil {
			t.Fatal(err)
		}
		if got, err := os.Readlink(link); err != nil || got != path {
			t.Fatalf("link = %q, %v; want %q", got, err, path)
		}
	}
	if _, err := exec.LookPath("php"); err == nil {
		if out, err := exec.Command("php", "-l", path).CombinedOutput(); err != nil {
			t.Fatalf("php -l: %v: %s", err, out)
		}
	}
}

// TestStoragePlugin runs the aipress-storage mu-plugin's upload prefilter
// and REST check in PHP (with WordPress's few functions it calls stubbed)
// against a real directory's free space.
func TestStoragePlugin(t *testing.T) {
	if _, err := exec.LookPath("php"); err != nil {
		t.Skip("php missing")
	}
	lib := filepath.Join(t.TempDir(), "lib")
	if _, err := WriteMUPlugins(lib); err != nil {
		t.Fatal(err)
	}
	plugin := filepath.Join(lib, StoragePluginName)
	if st, err := os.Stat(plugin); err != nil || st.Mode().Perm() != 0o644 {
		t.Fatalf("storage plugin: %v %v", st, err)
	}
	harness := `<?php
define('ABSPATH', '/');
define('WP_CONTENT_DIR', sys_get_temp_dir());
$GLOBALS['filters'] = array();
function add_filter($name, $fn) { $GLOBALS['filters'][$name] = $fn; }
function __($s) { return $s; }
function wp_upload_dir() { return array('basedir' => getenv('UPLOADS')); }
class WP_Error { public $code; public $message; public $data;
	function __construct($c, $m, $d) { $this->code = $c; $this->message = $m; $this->data = $d; } }
class Req { public $body; public $files;
	function get_method() { return 'POST'; } function get_route() { return '/wp/v2/media'; }
	function get_body() { return $this->body; } function get_file_params() { return $this->files; } }
require $argv[1];
$free = disk_free_space(getenv('UPLOADS'));
// More than the whole disk: never fits, however much other work frees
// meanwhile (free+1 was flaky in the full run).
$never = disk_total_space(getenv('UPLOADS')) + 1;
$pre = $GLOBALS['filters']['wp_handle_upload_prefilter'];
$side = $GLOBALS['filters']['wp_handle_sideload_prefilter'];
$rest = $GLOBALS['filters']['rest_pre_dispatch'];
$out = array();
$out['no-constant'] = call_user_func($pre, array('size' => $free * 2, 'error' => 0));
define('AIPRESS_DISK_LIMIT_MB', 512);
$out['fits'] = call_user_func($pre, array('size' => 1024, 'error' => 0));
$out['too-big'] = call_user_func($side, array('size' => $never, 'error' => 0));
$out['cant-write'] = call_user_func($pre, array('size' => 5, 'error' => UPLOAD_ERR_CANT_WRITE));
$r = new Req(); $r->body = ''; $r->files = array();
$_SERVER['CONTENT_LENGTH'] = (string) $never;
$e = call_user_func($rest, null, null, $r);
$out['rest-no-body'] = $e instanceof WP_Error ? $e->message . ' ' . $e->data['status'] : 'passed';
$r->body = 'x'; $_SERVER['CONTENT_LENGTH'] = '1000';
$out['rest-fits'] = call_user_func($rest, null, null, $r) === null ? 'passed' : 'refused';
echo json_encode($out);
`
	hf := filepath.Join(t.TempDir(), "harness.php")
	if err := os.WriteFile(hf, []byte(harness), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("php", hf, plugin)
	cmd.Env = append(os.Environ(), "UPLOADS="+t.TempDir())
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("php: %v: %s", err, out)
	}
	var got map[string]any
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	errOf := func(k string) string {
		m, _ := got[k].(map[string]any)
		s, _ := m["error"].(string)
		return s
	}
	if e := errOf("no-constant"); e != "" {
		t.Errorf("without AIPRESS_DISK_LIMIT_MB an upload was refused: %q", e)
	}
	if e := errOf("fits"); e != "" {
		t.Errorf("an upload that fits was refused: %q", e)
	}
	for _, k := range []string{"too-big", "cant-write"} {
		if e := errOf(k); !strings.HasPrefix(e, "This site's storage is full: ") || !strings.Contains(e, " MB of 512 MB used") {
			t.Errorf("%s: error %q, want the storage-full message", k, e)
		}
	}
	if s, _ := got["rest-no-body"].(string); !strings.Contains(s, "storage is full") || !strings.HasSuffix(s, " 507") {
		t.Errorf("REST upload PHP could not hold: %q", s)
	}
	if s, _ := got["rest-fits"].(string); s != "passed" {
		t.Errorf("REST upload that fits: %q", s)
	}
}

// TestDBErrorDropIn: the drop-in is linked into wp-content, and what
// WordPress includes when its database is down answers 503 (the edge's
// marker header itself is checked through php-fpm in internal/edge's
// TestRetryDatabase, which plays the same answer); requested directly, it
// is a 404.
func TestDBErrorDropIn(t *testing.T) {
	lib := filepath.Join(t.TempDir(), "lib")
	if _, err := WriteMUPlugins(lib); err != nil {
		t.Fatal(err)
	}
	dropIn := filepath.Join(lib, DBErrorDropInName)
	docroot := filepath.Join(t.TempDir(), "htdocs")
	if err := LinkDropIn(docroot, dropIn); err != nil {
		t.Fatal(err)
	}
	if got, err := os.Readlink(filepath.Join(docroot, "wp-content", DBErrorDropInName)); err != nil || got != dropIn {
		t.Fatalf("link = %q, %v; want %q", got, err, dropIn)
	}
	src, _ := os.ReadFile(dropIn)
	for _, want := range []string{"header('X-Aipress-Retry: database')", "header('Retry-After: 5')"} {
		if !strings.Contains(string(src), want) {
			t.Errorf("drop-in lacks %s", want)
		}
	}
	if _, err := exec.LookPath("php"); err != nil {
		t.Skip("php missing")
	}
	for _, tc := range []struct {
		name, prelude, want string
	}{
		{"included by WordPress", `define('ABSPATH', '/');`, "code=503"},
		{"requested directly", ``, "code=404"},
	} {
		code := `register_shutdown_function(function () { echo "\ncode=", http_response_code(), "\n"; }); ` + tc.prelude + ` require $argv[1];`
		out, err := exec.Command("php", "-r", code, dropIn).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v: %s", tc.name, err, out)
		}
		if !strings.Contains(string(out), tc.want) {
			t.Errorf("%s: %s, want %s", tc.name, out, tc.want)
		}
	}
}
