package wordpress

import (
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

func TestConfigRenderGolden(t *testing.T) {
	c := Config{
		Domain: "blog.localhost", URL: "http://blog.localhost:8080",
		Docroot: "/data/sites/0123456789ab/htdocs", CoreDir: "/data/cores/6.1.9/tree",
		DBName: "wp_0123456789ab", DBUser: "wp_0123456789ab", DBPassword: "pa'ss\\word",
		DBHost:   "localhost:/data/mariadb/mysqld.sock",
		Salts:    Salts{"k1", "k2", "k3", "k4", "s1", "s2", "s3", "s4'"},
		PurgeURL: "http://127.0.0.1:8080/.aipress/purge", PurgeKey: "0123abcd",
		Constants: map[string]string{"WP_POST_REVISIONS": "5", "MEDIA_TRASH": "true", "WP_ENVIRONMENT_TYPE": "staging",
			"WP_DEFAULT_THEME": "2024", "DISALLOW_FILE_MODS": "false"},
	}
	got := c.Render()
	golden := filepath.Join("testdata", "wp-config.golden.php")
	if *update {
		if err := os.WriteFile(golden, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(want) {
		t.Errorf("wp-config differs from %s (run go test -update):\n%s", golden, got)
	}
	// The file must be valid PHP.
	if _, err := exec.LookPath("php"); err == nil {
		f := filepath.Join(t.TempDir(), "wp-config.php")
		os.WriteFile(f, got, 0o644)
		out, err := exec.Command("php", "-l", f).CombinedOutput()
		if err != nil {
			t.Fatalf("php -l: %v: %s", err, out)
		}
	}
}

func TestSaltsRandomAndSafe(t *testing.T) {
	a, b := NewSalts(), NewSalts()
	if a == b || a.AuthKey == a.NonceKey {
		t.Fatal("salts repeat")
	}
	if len(a.AuthKey) != 64 || strings.ContainsAny(a.AuthKey, `'\"`) {
		t.Fatalf("bad key %q", a.AuthKey)
	}
}

func TestConfigDiskLimit(t *testing.T) {
	const line = "define('AIPRESS_DISK_LIMIT_MB', 512);\n"
	c := Config{Domain: "blog.localhost", URL: "http://blog.localhost", Docroot: "/d", CoreDir: "/c"}
	if strings.Contains(string(c.Render()), "AIPRESS_DISK_LIMIT_MB") {
		t.Error("no volume, yet a disk limit constant")
	}
	c.DiskLimitMB = 512
	if !strings.Contains(string(c.Render()), line) {
		t.Errorf("wp-config lacks %q", line)
	}
}

func TestLoginKeyOf(t *testing.T) {
	base := Config{Domain: "blog.localhost", URL: "http://blog.localhost", Docroot: "/d", CoreDir: "/c", Salts: NewSalts()}
	with := base
	with.SiteUID, with.LoginKey = "3f2a-uid", "00ff17ab"
	tests := []struct {
		name          string
		conf          []byte
		wantUID, want string
	}{
		{"rendered with a key", with.Render(), "3f2a-uid", "00ff17ab"},
		{"rendered without", base.Render(), "", ""},
		{"not a config", []byte("<?php echo 1;"), "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			uid, key := LoginKeyOf(tt.conf)
			if uid != tt.wantUID || key != tt.want {
				t.Errorf("LoginKeyOf = %q, %q; want %q, %q", uid, key, tt.wantUID, tt.want)
			}
		})
	}
}

// The must-use settings round-trip through wp-config.php as their spec
// values; the platform's own constants cannot be overridden through them.
func TestConfigConstants(t *testing.T) {
	in := map[string]string{"WP_POST_REVISIONS": "false", "AUTOSAVE_INTERVAL": "120", "WP_ENVIRONMENT_TYPE": "production",
		"WP_DEFAULT_THEME": "it's-2024"}
	c := Config{Domain: "blog.localhost", URL: "http://blog.localhost", Docroot: "/d", CoreDir: "/c", Constants: in}
	out := c.Render()
	for _, line := range []string{"define('WP_POST_REVISIONS', false);\n", "define('AUTOSAVE_INTERVAL', 120);\n",
		"define('WP_ENVIRONMENT_TYPE', 'production');\n", `define('WP_DEFAULT_THEME', 'it\'s-2024');` + "\n"} {
		if !strings.Contains(string(out), line) {
			t.Errorf("missing %q in\n%s", line, out)
		}
	}
	got := ConstantsOf(out)
	if len(got) != len(in) {
		t.Fatalf("ConstantsOf = %v, want %v", got, in)
	}
	for k, v := range in {
		if got[k] != v {
			t.Errorf("ConstantsOf[%s] = %q, want %q", k, got[k], v)
		}
	}
	c.Constants = map[string]string{"DISALLOW_FILE_MODS": "false", "DB_HOST": "evil"}
	out = c.Render()
	if strings.Count(string(out), "DISALLOW_FILE_MODS") != 1 || strings.Contains(string(out), "evil") || ConstantsOf(out) != nil {
		t.Errorf("platform constants overridden:\n%s", out)
	}
	// Upper-case names that are not settings a spec may set are never
	// written, even when validation was skipped.
	c.Constants = map[string]string{"WP_ALLOW_MULTISITE": "true", "FORCE_SSL_ADMIN": "false", "CUSTOM_USER_TABLE": "wp_x",
		"AUTOSAVE_INTERVAL": "60"}
	out = c.Render()
	for _, k := range []string{"WP_ALLOW_MULTISITE", "FORCE_SSL_ADMIN", "CUSTOM_USER_TABLE"} {
		if strings.Contains(string(out), k) {
			t.Errorf("constant %s not in site.ConstantNames written:\n%s", k, out)
		}
	}
	if got := ConstantsOf(out); len(got) != 1 || got["AUTOSAVE_INTERVAL"] != "60" {
		t.Errorf("ConstantsOf = %v, want only AUTOSAVE_INTERVAL", got)
	}
	if ConstantsOf(Config{Domain: "x"}.Render()) != nil {
		t.Error("constants found in a config without any")
	}
}

func TestPHPString(t *testing.T) {
	for in, want := range map[string]string{
		``:        `''`,
		`plain`:   `'plain'`,
		`a'b\c`:   `'a\'b\\c'`,
		`\'`:      `'\\\''`,
		`é"$x{y}`: `'é"$x{y}'`,
	} {
		if got := phpString(in); got != want {
			t.Errorf("phpString(%q) = %s, want %s", in, got, want)
		}
	}
}
