package cli

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/aipress/aipress/internal/platform/up"
)

func TestUpHTTPSAndRateConfig(t *testing.T) {
	file := filepath.Join(t.TempDir(), "aipress.yaml")
	if err := os.WriteFile(file, []byte("https: ':9443'\nacme_ca: https://acme.test/dir\nacme_email: a@b.c\nrate_ip: 7\nrate_site: 0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	type want struct {
		https, ca, email string
		ip, site         float64
	}
	tests := []struct {
		name string
		env  map[string]string
		args []string
		want want
	}{
		{name: "defaults", want: want{ip: 50, site: 500}},
		{name: "file", args: []string{"--config", file}, want: want{https: ":9443", ca: "https://acme.test/dir", email: "a@b.c", ip: 7, site: -1}},
		{name: "env beats file", args: []string{"--config", file}, env: map[string]string{EnvHTTPS: ":1443", EnvRateIP: "0", EnvACMECA: "off"},
			want: want{https: ":1443", ca: "off", email: "a@b.c", ip: -1, site: -1}},
		{name: "flags", args: []string{"--https", "127.0.0.1:8443", "--rate-ip", "0", "--rate-site", "1000"}, env: map[string]string{EnvHTTPS: ":1443"},
			want: want{https: "127.0.0.1:8443", ip: -1, site: 1000}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got up.Config
			d := deps{getenv: func(k string) string { return tt.env[k] }, run: func(_ context.Context, c up.Config) error {
				got = c
				return nil
			}}
			if _, _, err := runCmd(t, d, append([]string{"up"}, tt.args...)...); err != nil {
				t.Fatal(err)
			}
			g := want{got.HTTPSAddr, got.ACMECA, got.ACMEEmail, got.RateIP, got.RateSite}
			if g != tt.want {
				t.Errorf("got %+v, want %+v", g, tt.want)
			}
		})
	}
	d := deps{getenv: func(string) string { return "" }, run: func(context.Context, up.Config) error { return nil }}
	if _, _, err := runCmd(t, d, "up", "--rate-ip", "-1"); err == nil {
		t.Error("negative rate accepted")
	}
}
