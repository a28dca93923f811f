package liveimport

import (
	"slices"
	"strings"
	"testing"
)

func TestParseSource(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Source
		err  string
	}{
		{"deploy@old.example.com:/var/www/html", Source{User: "deploy", Host: "old.example.com", Port: 22, Path: "/var/www/html"}, ""},
		{"deploy@old.example.com:2222:/srv/blog/", Source{User: "deploy", Host: "old.example.com", Port: 2222, Path: "/srv/blog"}, ""},
		{"u@[2001:db8::1]:2200:/srv", Source{User: "u", Host: "2001:db8::1", Port: 2200, Path: "/srv"}, ""},
		{"old.example.com:/var/www", Source{}, "no user"},
		{"u@old.example.com:var/www", Source{}, "no absolute path"},
		{"u@old.example.com:99999:/x", Source{}, "bad port"},
		{"u@:/x", Source{}, "no host"},
	} {
		got, err := ParseSource(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: %v, want %q", tc.in, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: %+v %v, want %+v", tc.in, got, err, tc.want)
		}
	}
}

func TestParseWPConfig(t *testing.T) {
	for _, tc := range []struct {
		name, conf string
		want       Credentials
		err        string
	}{
		{"socket", `<?php
define( 'DB_NAME', 'wp' );
define("DB_USER", "wpuser");
define( 'DB_PASSWORD', 'it\'s "q" \\ x' );
define( 'DB_HOST', 'localhost:/run/mysqld/mysqld.sock' );`, Credentials{Name: "wp", User: "wpuser", Password: `it's "q" \ x`, Host: "localhost", Socket: "/run/mysqld/mysqld.sock"}, ""},
		{"host and port", `define('DB_NAME','wp'); define('DB_USER','u');
define('DB_PASSWORD','');
define('DB_HOST','db.internal:3307');`, Credentials{}, ""},
		{"computed", `define('DB_NAME', getenv('DB_NAME')); define('DB_USER','u');`, Credentials{}, "DB_NAME"},
		{"commented out", "// define('DB_NAME', 'old');\n# define('DB_USER', 'old');\n", Credentials{}, "DB_NAME"},
	} {
		got, err := ParseWPConfig([]byte(tc.conf))
		switch {
		case tc.err != "":
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: %v, want %q", tc.name, err, tc.err)
			}
		case tc.name == "host and port":
			if err != nil || got.Host != "db.internal" || got.Port != 3307 || got.Socket != "" || got.Password != "" {
				t.Errorf("%s: %+v %v", tc.name, got, err)
			}
		case err != nil || got != tc.want:
			t.Errorf("%s: %+v %v, want %+v", tc.name, got, err, tc.want)
		}
	}
}

func TestOptionFileQuotes(t *testing.T) {
	got := optionFile(Credentials{User: "u", Password: "a\"b\\c\nd"}, "127.0.0.1", 3306, "")
	if !strings.Contains(got, `password="a\"b\\c\nd"`) || !strings.Contains(got, "port=3306") || strings.Count(got, "\n") != 5 {
		t.Errorf("option file:\n%s", got)
	}
}

func TestChanged(t *testing.T) {
	old := &Listing{Files: []File{{Path: "wp-content/a", Size: 1, MTime: 10}, {Path: "wp-content/b", Size: 2, MTime: 10}, {Path: "wp-content/gone", Size: 1, MTime: 1}}}
	now := &Listing{Files: []File{{Path: "wp-content/a", Size: 1, MTime: 10}, {Path: "wp-content/b", Size: 2, MTime: 11}, {Path: "wp-content/new", Size: 5, MTime: 1}}}
	changed, deleted := now.Changed(old)
	var paths []string
	for _, f := range changed {
		paths = append(paths, f.Path)
	}
	if !slices.Equal(paths, []string{"wp-content/b", "wp-content/new"}) || !slices.Equal(deleted, []string{"wp-content/gone"}) {
		t.Errorf("changed %q, deleted %q", paths, deleted)
	}
	if changed, deleted := now.Changed(nil); len(changed) != 3 || len(deleted) != 0 {
		t.Errorf("without an old listing: %d changed, %d deleted", len(changed), len(deleted))
	}
}
