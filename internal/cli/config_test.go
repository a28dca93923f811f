package cli

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aipress/aipress/internal/platform/up"
)

func TestWriteClientConfigMode(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	if err := WriteClientConfig(dir, "http://127.0.0.1:7070", "secret"); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, ClientConfigFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("mode = %v, want 0600", fi.Mode().Perm())
	}
	b, _ := os.ReadFile(filepath.Join(dir, ClientConfigFile))
	if !strings.Contains(string(b), `"url": "http://127.0.0.1:7070"`) || !strings.Contains(string(b), `"token": "secret"`) {
		t.Errorf("content: %s", b)
	}
}

// TestClientDiscovery checks --url/--token > AIPRESS_URL/AIPRESS_TOKEN >
// client.json in $AIPRESS_DATA_DIR (or ./aipress-data), per field.
func TestClientDiscovery(t *testing.T) {
	h := newHarness(t)
	dataDir := t.TempDir()
	if err := WriteClientConfig(dataDir, h.url, adminSecret); err != nil {
		t.Fatal(err)
	}
	badDir := t.TempDir()
	if err := WriteClientConfig(badDir, h.url, "wrong"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want string // "" = success, else error substring
	}{
		{name: "file in AIPRESS_DATA_DIR", env: map[string]string{EnvDataDir: dataDir}},
		{name: "env token beats file", env: map[string]string{EnvDataDir: dataDir, EnvToken: "wrong"}, want: "invalid token"},
		{name: "flag token beats env", env: map[string]string{EnvDataDir: dataDir, EnvToken: "wrong"}, args: []string{"--token", adminSecret}},
		{name: "env url beats file", env: map[string]string{EnvDataDir: dataDir, EnvURL: "http://127.0.0.1:1"}, want: "connection refused"},
		{name: "flag url beats env", env: map[string]string{EnvURL: "http://127.0.0.1:1", EnvToken: adminSecret}, args: []string{"--url", h.url}},
		{name: "bad file token", env: map[string]string{EnvDataDir: badDir}, want: "invalid token"},
		{name: "flags only", args: []string{"--url", h.url, "--token", adminSecret}, env: map[string]string{EnvDataDir: badDir}},
		{name: "nothing", env: map[string]string{EnvDataDir: filepath.Join(dataDir, "missing")}, want: "cannot find the AIPress API"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := h.deps()
			d.getenv = func(k string) string { return tt.env[k] }
			_, _, err := runCmd(t, d, append([]string{"site", "list"}, tt.args...)...)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("err = %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
	t.Run("default ./aipress-data", func(t *testing.T) {
		t.Chdir(t.TempDir())
		if err := WriteClientConfig("aipress-data", h.url, adminSecret); err != nil {
			t.Fatal(err)
		}
		d := h.deps()
		d.getenv = func(string) string { return "" }
		if _, _, err := runCmd(t, d, "site", "list"); err != nil {
			t.Fatal(err)
		}
	})
}

func TestUpConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "aipress.yaml")
	if err := os.WriteFile(file, []byte("data_dir: /file/data\nhttp: ':81'\napi: 127.0.0.1:7081\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	def := up.Config{DataDir: DefaultDataDir, HTTPAddr: DefaultHTTPAddr, APIAddr: DefaultAPIAddr}
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want up.Config
	}{
		{name: "defaults", want: def},
		{name: "file", args: []string{"--config", file}, want: up.Config{DataDir: "/file/data", HTTPAddr: ":81", APIAddr: "127.0.0.1:7081"}},
		{name: "env beats file", args: []string{"--config", file}, env: map[string]string{EnvHTTP: ":82", EnvDataDir: "/env/data"},
			want: up.Config{DataDir: "/env/data", HTTPAddr: ":82", APIAddr: "127.0.0.1:7081"}},
		{name: "flag beats env", args: []string{"--config", file, "--http", ":83", "--api", "0.0.0.0:7083"}, env: map[string]string{EnvHTTP: ":82", EnvAPI: "x:1"},
			want: up.Config{DataDir: "/file/data", HTTPAddr: ":83", APIAddr: "0.0.0.0:7083"}},
		{name: "env only", env: map[string]string{EnvAPI: "127.0.0.1:9999"}, want: up.Config{DataDir: DefaultDataDir, HTTPAddr: DefaultHTTPAddr, APIAddr: "127.0.0.1:9999"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got up.Config
			d := deps{getenv: func(k string) string { return tt.env[k] }, run: func(ctx context.Context, c up.Config) error {
				if ctx.Err() != nil {
					t.Error("context already cancelled")
				}
				got = c
				return nil
			}}
			if _, _, err := runCmd(t, d, append([]string{"up"}, tt.args...)...); err != nil {
				t.Fatal(err)
			}
			if got.Logger == nil {
				t.Error("no logger")
			}
			got.Logger = nil
			got.Version = ""
			got.Ready = nil
			if got.DataDir != tt.want.DataDir || got.HTTPAddr != tt.want.HTTPAddr || got.APIAddr != tt.want.APIAddr {
				t.Errorf("config = %+v, want %+v", got, tt.want)
			}
		})
	}
}

func TestUpConfigFileErrors(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	tests := []struct {
		name, path, want string
	}{
		{"unknown key", write("unknown.yaml", "data_dir: x\nhtttp: ':80'\n"), `unknown field "htttp"`},
		{"wrong type", write("type.yaml", "http: [1, 2]\n"), "cannot unmarshal"},
		{"duplicate key", write("dup.yaml", "http: ':1'\nhttp: ':2'\n"), "http"},
		{"missing file", filepath.Join(dir, "nope.yaml"), "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := deps{getenv: func(string) string { return "" }, run: func(context.Context, up.Config) error {
				t.Error("platform ran despite a bad config file")
				return nil
			}}
			_, _, err := runCmd(t, d, "up", "--config", tt.path)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("err = %v, want %q", err, tt.want)
			}
		})
	}
}
