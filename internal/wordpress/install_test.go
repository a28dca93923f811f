package wordpress

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"maps"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/attacktest"
	"github.com/aipress/aipress/internal/fsperm"
	"github.com/aipress/aipress/internal/phpini"
)

// cliProbe is a site's hostile code run by the PHP CLI (a plugin loaded by
// WP-Cron): it reports which escapes from disable_functions work and which
// processes it can see. Its arguments come from the environment.
const cliProbe = `<?php
$r = ['pid' => getmypid()];
foreach (['putenv', 'proc_open', 'exec', 'shell_exec', 'system', 'passthru', 'popen', 'pcntl_exec', 'pcntl_fork', 'dl', 'mail'] as $f) {
	$r['fn'][$f] = function_exists($f);
}
try { $r['ffi'] = 'getpid=' . FFI::cdef('int getpid(void);')->getpid(); } catch (Throwable $e) { $r['ffi'] = get_class($e) . ': ' . $e->getMessage(); }
$so = getenv('PROBE_SO');
$r['preload'] = 'not tried';
if ($so !== false && $so !== '') {
	try {
		putenv('LD_PRELOAD=' . $so);
		$r['preload'] = 'mail returned ' . var_export(@mail('nobody@example.invalid', 'x', 'y'), true);
	} catch (Throwable $e) {
		$r['preload'] = get_class($e) . ': ' . $e->getMessage();
	}
}
$pids = array_values(array_filter(scandir('/proc'), 'ctype_digit'));
$other = getenv('PROBE_PID');
$r['proc_lists_self'] = in_array((string) getmypid(), $pids, true);
$r['proc_lists_other'] = in_array($other, $pids, true);
$r['proc_other_cmdline'] = @file_get_contents("/proc/$other/cmdline") !== false;
foreach (['sendmail_path', 'mail.force_extra_parameters', 'ffi.enable', 'opcache.restrict_api'] as $k) {
	$r['ini'][$k] = ini_get($k);
}
echo json_encode($r), "\n";
`

type cliResult struct {
	Fn             map[string]bool   `json:"fn"`
	FFI            string            `json:"ffi"`
	Preload        string            `json:"preload"`
	ProcListsSelf  bool              `json:"proc_lists_self"`
	ProcListsOther bool              `json:"proc_lists_other"`
	ProcOtherCmd   bool              `json:"proc_other_cmdline"`
	INI            map[string]string `json:"ini"`
}

// The PHP CLI that installs WordPress and runs cron as the site's user has
// the pools' hardening and sees only its user's processes; plain php8.2 as
// the same user (Debian's CLI: FFI on, nothing disabled) is the baseline
// that shows each escape working.
func TestRunnerHardening(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: a site user")
	}
	if _, err := os.Stat(PHPCLI); err != nil {
		t.Skip("php8.2 CLI not installed (make deps)")
	}
	uid, gid, base, docroot := siteUser(t)
	script := filepath.Join(base, "probe.php")
	os.WriteFile(script, []byte(cliProbe), 0o644)

	marker := filepath.Join(docroot, "preload-ran")
	so := attacktest.PreloadLibrary(t, base, marker)
	if so == "" {
		t.Log("gcc missing: the LD_PRELOAD case is skipped")
	}
	// A process of another user (root's: this test) to look for.
	env := []string{"PROBE_SO=" + so, "PROBE_PID=" + strconv.Itoa(os.Getpid())}
	parse := func(t *testing.T, out []byte) cliResult {
		t.Helper()
		lines := bytes.Split(bytes.TrimSpace(out), []byte("\n"))
		var res cliResult
		if err := json.Unmarshal(lines[len(lines)-1], &res); err != nil {
			t.Fatalf("probe output: %v\n%s", err, out)
		}
		return res
	}

	t.Run("baseline", func(t *testing.T) {
		os.Remove(marker)
		cmd := exec.Command(PHPCLI, script)
		cmd.Dir, cmd.Env = docroot, append([]string{"PATH=/usr/bin:/bin"}, env...)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		res := parse(t, out)
		if !strings.HasPrefix(res.FFI, "getpid=") || !res.Fn["putenv"] || !res.Fn["proc_open"] {
			t.Errorf("Debian's CLI: FFI %q, putenv %v, proc_open %v; want all available", res.FFI, res.Fn["putenv"], res.Fn["proc_open"])
		}
		if !res.ProcListsSelf || !res.ProcListsOther || !res.ProcOtherCmd {
			t.Errorf("/proc: self %v, root's process %v, its cmdline %v; want all visible", res.ProcListsSelf, res.ProcListsOther, res.ProcOtherCmd)
		}
		if so != "" {
			if _, err := os.Stat(marker); err != nil {
				t.Errorf("putenv(LD_PRELOAD) + mail() did not run the library (%s)", res.Preload)
			}
		}
	})

	t.Run("runner", func(t *testing.T) {
		os.Remove(marker)
		r := Runner{Docroot: docroot, Host: "x.test", UID: uid, GID: gid}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		out, err := r.run(ctx, script, env, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		res := parse(t, out)
		for f, ok := range res.Fn {
			if ok != (f == "mail") {
				t.Errorf("function_exists(%s) = %v", f, ok)
			}
		}
		if !strings.Contains(res.FFI, "restricted") {
			t.Errorf("FFI::cdef: %s", res.FFI)
		}
		if !res.ProcListsSelf {
			t.Error("the script does not see itself in /proc")
		}
		if res.ProcListsOther || res.ProcOtherCmd {
			t.Errorf("/proc: root's process listed %v, its cmdline read %v", res.ProcListsOther, res.ProcOtherCmd)
		}
		want := map[string]string{
			"sendmail_path": phpini.SendmailPath, "mail.force_extra_parameters": phpini.ForceExtraParameters,
			"ffi.enable": "0", "opcache.restrict_api": phpini.RestrictAPI,
		}
		for k, v := range want {
			if res.INI[k] != v {
				t.Errorf("ini_get(%s) = %q, want %q", k, res.INI[k], v)
			}
		}
		if so != "" {
			if !strings.Contains(res.Preload, "putenv") {
				t.Errorf("putenv + mail(): %s", res.Preload)
			}
			if _, err := os.Stat(marker); err == nil {
				t.Error("the LD_PRELOAD library ran")
			}
		}
	})
}

// siteUser makes a Unix user for the test and a docroot it owns in a
// traversable temporary directory (base).
func siteUser(t *testing.T) (uid, gid int, base, docroot string) {
	t.Helper()
	b := make([]byte, 4)
	rand.Read(b)
	name := "aiptest" + hex.EncodeToString(b)
	if out, err := exec.Command("useradd", "--system", "--no-create-home", "--home-dir", "/nonexistent",
		"--shell", "/usr/sbin/nologin", "--user-group", name).CombinedOutput(); err != nil {
		t.Fatalf("useradd: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("userdel", name).Run() })
	u, err := user.Lookup(name)
	if err != nil {
		t.Fatal(err)
	}
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	base = t.TempDir()
	if _, err := fsperm.EnsureTraversable(base); err != nil {
		t.Fatal(err)
	}
	docroot = filepath.Join(base, "htdocs")
	os.MkdirAll(docroot, 0o700)
	os.Chown(docroot, uid, gid)
	return uid, gid, base, docroot
}

// A site's code that floods stdout or stderr (a hostile plugin loaded by
// the code script) is killed once it has written MaxScriptOutput bytes;
// the shard keeps no more than that. The endless writers end only because
// they are killed.
func TestRunnerOutputCapped(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: a site user")
	}
	if _, err := os.Stat(PHPCLI); err != nil {
		t.Skip("php8.2 CLI not installed (make deps)")
	}
	uid, gid, base, docroot := siteUser(t)
	r := Runner{Docroot: docroot, Host: "x.test", UID: uid, GID: gid}
	for _, tc := range []struct{ name, php string }{
		{"stdout then exit", `echo str_repeat("x", 3 << 20), "\n";`},
		{"stderr then exit", `fwrite(STDERR, str_repeat("x", 3 << 20));`},
		{"stdout forever", `$s = str_repeat("x", 65536); for (;;) { echo $s; }`},
		{"stderr forever", `$s = str_repeat("x", 65536); for (;;) { fwrite(STDERR, $s); }`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			script := filepath.Join(base, strings.ReplaceAll(tc.name, " ", "-")+".php")
			if err := os.WriteFile(script, []byte("<?php\n"+tc.php+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			// Without the cap the endless writers run into this.
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			out, err := r.run(ctx, script, nil, 2*time.Minute)
			if !errors.Is(err, ErrOutputTooLarge) {
				t.Fatalf("run: err %v (output %d bytes), want ErrOutputTooLarge", err, len(out))
			}
			if len(out) > MaxScriptOutput {
				t.Errorf("kept %d bytes of output, want at most %d", len(out), MaxScriptOutput)
			}
		})
	}
}

// What the site's code reports through the code script is cut to a shape
// the shard trusts: only asked-for options, short values, slug names, a
// bounded number of plugins and themes.
func TestObserveCodeSanitized(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: a site user")
	}
	if _, err := os.Stat(PHPCLI); err != nil {
		t.Skip("php8.2 CLI not installed (make deps)")
	}
	uid, gid, base, docroot := siteUser(t)
	r := Runner{Docroot: docroot, Host: "x.test", UID: uid, GID: gid}
	// A code script whose WordPress a hostile plugin has bent.
	script := filepath.Join(base, "code.php")
	hostile := `<?php
$p = [['name' => 'good', 'file' => 'good/good.php', 'title' => str_repeat('t', 5000), 'version' => '1.0', 'active' => true],
	['name' => '../../etc', 'file' => '../../etc/x.php', 'title' => 'x', 'version' => '1', 'active' => true],
	['name' => 'Evil Name', 'file' => 'Evil Name/x.php', 'title' => 'x', 'version' => '1', 'active' => true],
	['name' => 'sneaky', 'file' => '../sneaky.php', 'title' => 'x', 'version' => '1', 'active' => true]];
for ($i = 0; $i < 5000; $i++) { $p[] = ['name' => "p$i", 'file' => "p$i/p$i.php", 'title' => 'x', 'version' => '1', 'active' => false]; }
$t = [['name' => '<script>', 'title' => 'x', 'version' => '1', 'active' => false]];
for ($i = 0; $i < 5000; $i++) { $t[] = ['name' => "t$i", 'title' => 'x', 'version' => '1', 'active' => false]; }
echo json_encode(['core' => '6.1.9', 'plugins' => $p, 'themes' => $t, 'stylesheet' => '../x', 'active_missing' => [],
	'options' => ['blogname' => str_repeat('b', 10000), 'siteurl' => 'http://evil', 'admin_email' => 'x@evil']]), "\n";
`
	if err := os.WriteFile(script, []byte(hostile), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	o, err := r.ObserveCode(ctx, script, []string{"blogname", "blogdescription"})
	if err != nil {
		t.Fatal(err)
	}
	if len(o.Options) != 1 || len(o.Options["blogname"]) > 1024 {
		t.Errorf("options: %d kept (%v), blogname %d bytes; want only blogname, at most 1024 bytes", len(o.Options), slices.Sorted(maps.Keys(o.Options)), len(o.Options["blogname"]))
	}
	if len(o.Plugins) != MaxObservedExtensions || len(o.Themes) != MaxObservedExtensions {
		t.Errorf("%d plugins, %d themes kept; want %d of each", len(o.Plugins), len(o.Themes), MaxObservedExtensions)
	}
	if g := o.Plugin("good"); g == nil || len(g.Title) > 200 {
		t.Errorf("plugin good: %+v; want it with a title of at most 200 bytes", g)
	}
	for _, name := range []string{"../../etc", "Evil Name", "sneaky"} {
		if o.Plugin(name) != nil {
			t.Errorf("plugin %q kept", name)
		}
	}
	if o.Theme("<script>") != nil || o.Stylesheet != "" {
		t.Errorf("theme <script> kept or stylesheet %q; want neither", o.Stylesheet)
	}
}
