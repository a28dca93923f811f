package cli

import (
	"os"
	"path/filepath"
	"testing"
)

// The shard's external database server comes from the flags, else from
// AIPRESS_DB_*; no host means the shard runs its own MariaDB.
func TestDBRemote(t *testing.T) {
	env := map[string]string{}
	d := deps{getenv: func(k string) string { return env[k] }}
	if r, err := dbRemote(d, "", "", "", ""); r != nil || err != nil {
		t.Fatalf("no host: %+v %v", r, err)
	}
	if _, err := dbRemote(d, "", "admin", "", ""); err == nil {
		t.Error("--db-user without a host accepted")
	}
	env = map[string]string{EnvDBHost: "aipress-shard-k8s-1-db:3306", EnvDBUser: "root", EnvDBPassword: "s3cret"}
	r, err := dbRemote(d, "", "", "", "")
	if err != nil || r.Addr != "aipress-shard-k8s-1-db:3306" || r.User != "root" || r.Password != "s3cret" || r.UserHost != "" {
		t.Fatalf("from env: %+v %v", r, err)
	}
	pw := filepath.Join(t.TempDir(), "pw")
	if err := os.WriteFile(pw, []byte(" with space \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r, err = dbRemote(d, "db:3307", "admin", pw, "10.%")
	if err != nil || r.Addr != "db:3307" || r.User != "admin" || r.Password != " with space " || r.UserHost != "10.%" {
		t.Fatalf("from flags: %+v %v", r, err)
	}
	for _, bad := range []map[string]string{
		{EnvDBHost: "db"},
		{EnvDBHost: "db:3306", EnvDBPassword: "x"},
		{EnvDBHost: "db:3306", EnvDBUser: "root"},
	} {
		env = bad
		if r, err := dbRemote(d, "", "", "", ""); err == nil {
			t.Errorf("%v accepted: %+v", bad, r)
		}
	}
}
