package shard_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"testing"

	"github.com/aipress/aipress/internal/shard"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/wordpress"
)

// TestLoginKeyDuringOutage: a control plane that cannot give a site's
// login key does not hold back its files: the key its wp-config.php
// already defines for its UID is kept (none for another UID, or without
// a config), and the failure is logged.
func TestLoginKeyDuringOutage(t *testing.T) {
	outage := errors.New("control plane unreachable")
	st := &site.Site{Metadata: site.Metadata{Name: "blog", UID: "uid-1"}, Spec: site.Spec{Domain: "blog.localhost"}}
	conf := func(uid, key string) []byte {
		return wordpress.Config{Domain: "blog.localhost", URL: "http://blog.localhost", Docroot: "/d", CoreDir: "/c",
			Salts: wordpress.NewSalts(), SiteUID: uid, LoginKey: key}.Render()
	}
	tests := []struct {
		name    string
		fetch   error
		config  []byte // nil: no wp-config.php yet
		want    string
		wantLog bool
	}{
		{"fetched", nil, conf("uid-1", "aa01"), "bb02", false},
		{"outage keeps the current key", outage, conf("uid-1", "aa01"), "aa01", true},
		{"outage, key of another UID", outage, conf("uid-0", "aa01"), "", true},
		{"outage, no config yet", outage, nil, "", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			docroot := t.TempDir()
			if tt.config != nil {
				if err := os.WriteFile(filepath.Join(docroot, "wp-config.php"), tt.config, 0o640); err != nil {
					t.Fatal(err)
				}
			}
			var logs bytes.Buffer
			s := shard.New(shard.Config{
				Name: "s1", Dir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(&logs, nil)),
				LoginKey: func(context.Context, string, string) (string, error) {
					if tt.fetch != nil {
						return "", tt.fetch
					}
					return "bb02", nil
				},
			})
			if got := shard.LoginKeyFor(context.Background(), s, st, docroot); got != tt.want {
				t.Errorf("login key %q, want %q", got, tt.want)
			}
			if logged := bytes.Contains(logs.Bytes(), []byte(outage.Error())); logged != tt.wantLog {
				t.Errorf("failure logged: %v, want %v (logs: %s)", logged, tt.wantLog, logs.String())
			}
		})
	}
}
