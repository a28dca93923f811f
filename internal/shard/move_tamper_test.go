package shard_test

import (
	"bytes"
	"compress/gzip"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aipress/aipress/internal/backup/repos"
	"github.com/aipress/aipress/internal/site"
)

// exportFile is the file of transfer object key in the cluster's file://
// transfer store.
func (c *cluster) exportFile(key string) string {
	return filepath.Join(c.dir, "transfer", filepath.FromSlash(key))
}

// signedManifest mirrors manifest.json (internal/shard, transfer.go).
type signedManifest struct {
	Version  int             `json:"version"`
	Manifest json.RawMessage `json:"manifest"`
	MAC      string          `json:"hmac_sha256"`
}

type exportObject struct {
	Name   string `json:"name"`
	Key    string `json:"key"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

// forge returns manifest.json for inner (a manifest's fields) signed with
// key the way the source signs (nil key: no MAC).
func forge(t *testing.T, inner map[string]any, key []byte) []byte {
	t.Helper()
	raw, err := json.Marshal(inner)
	if err != nil {
		t.Fatal(err)
	}
	sm := signedManifest{Version: 2, Manifest: raw}
	if key != nil {
		m := hmac.New(sha256.New, key)
		m.Write([]byte("aipress transfer manifest v2\x00"))
		m.Write(raw)
		sm.MAC = hex.EncodeToString(m.Sum(nil))
	}
	out, err := json.Marshal(sm)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func gzipped(t *testing.T, s string) []byte {
	t.Helper()
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	if _, err := w.Write([]byte(s)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

// refusesTamperedExports runs between the source's export of site uid's
// move and the target's import. Someone who can write to the transfer
// store (every shard can) changes the export in several ways; each time the
// target refuses it with a clear move error before it loads a byte or makes
// anything of the site. A control case signs a forged manifest with the
// move's own key: the target takes it (so the forgeries differ in their
// MAC only) and loads its dump sandboxed, which stops the shell escape in
// it. Last, the export the source wrote is put back for the caller to
// finish the move with.
func refusesTamperedExports(t *testing.T, c *cluster, targetName, host, uid string) {
	t.Helper()
	target := c.shards[targetName]
	s := c.get(host)
	moveID, artifact := s.Move.ID, s.Move.Artifact
	origManifest := mustReadBytes(t, c.exportFile(artifact))
	var sm signedManifest
	if err := json.Unmarshal(origManifest, &sm); err != nil || sm.Version != 2 || sm.MAC == "" {
		t.Fatalf("the source's manifest is not signed: %v %s", err, origManifest)
	}
	var inner map[string]any
	if err := json.Unmarshal(sm.Manifest, &inner); err != nil {
		t.Fatal(err)
	}
	var objects []exportObject
	raw, _ := json.Marshal(inner["objects"])
	if err := json.Unmarshal(raw, &objects); err != nil || len(objects) != 3 {
		t.Fatalf("manifest objects: %v %s", err, raw)
	}
	var dbObj exportObject
	for _, o := range objects {
		if o.Name == "database.sql.gz" {
			dbObj = o
		}
	}
	origDump := mustReadBytes(t, c.exportFile(dbObj.Key))

	// The attacker's dump: a table of its own in the site's database, and a
	// shell escape that would run as root in an unsandboxed client.
	marker := filepath.Join(c.dir, "pwned-by-dump")
	evilDump := gzipped(t, "CREATE TABLE pwned (x int);\n\\! touch "+marker+"\nINSERT INTO pwned VALUES (1);\n")
	sum := sha256.Sum256(evilDump)
	evilKey := strings.TrimSuffix(artifact, "manifest.json") + "evil/database.sql.gz"
	writeFile(t, c.exportFile(evilKey), evilDump)
	evilInner := map[string]any{}
	for k, v := range inner {
		evilInner[k] = v
	}
	var evilObjects []exportObject
	for _, o := range objects {
		if o.Name == "database.sql.gz" {
			o = exportObject{Name: o.Name, Key: evilKey, Size: int64(len(evilDump)), SHA256: hex.EncodeToString(sum[:])}
		}
		evilObjects = append(evilObjects, o)
	}
	evilInner["objects"] = evilObjects
	unsigned, _ := json.Marshal(inner)

	n := target.NamesFor(uid)
	scratch := filepath.Join(c.dir, "shard-"+targetName, "transfer-scratch")
	if st, err := os.Stat(scratch); err != nil || st.Mode().Perm() != 0o700 {
		t.Errorf("transfer scratch directory: %v %v", st, err)
	}
	nothingMade := func(t *testing.T) {
		t.Helper()
		if ok, _ := target.DB().DatabaseExists(c.ctx, n.DB); ok {
			t.Errorf("the target made database %s", n.DB)
		}
		if ok, _ := target.DB().UserExists(c.ctx, n.DBUser); ok {
			t.Errorf("the target made database user %s", n.DBUser)
		}
		if _, err := os.Stat(n.Dir); !os.IsNotExist(err) {
			t.Errorf("the target made the site directory: %v", err)
		}
		if ents, _ := os.ReadDir(scratch); len(ents) != 0 {
			t.Errorf("object copies left in the scratch directory: %v", ents)
		}
	}
	tests := []struct {
		name        string
		manifest    []byte // nil: the source's
		dump        []byte // at the source's database object key; nil: the source's
		wantErr     string
		nothingMade bool
	}{
		{"substituted database object", nil, evilDump, "differs from the manifest", true},
		{"truncated database object", nil, origDump[:len(origDump)/2], "differs from the manifest", true},
		{"manifest without a MAC", forge(t, evilInner, nil), nil, "not authenticated", true},
		{"MAC of the source's manifest on a forged one", func() []byte {
			b, _ := json.Marshal(signedManifest{Version: 2, Manifest: mustJSON(t, evilInner), MAC: sm.MAC})
			return b
		}(), nil, "not authenticated", true},
		{"manifest signed with another key", forge(t, evilInner, bytes.Repeat([]byte{7}, 32)), nil, "not authenticated", true},
		{"manifest signed with another move's key", forge(t, evilInner, repos.MoveKey(testKEK, uid, moveID+"-other")), nil, "not authenticated", true},
		{"version 1 manifest (unsigned)", unsigned, nil, "not authenticated", true},
		{"not JSON", []byte("\x00garbage"), nil, "not authenticated", true},
		// Control: the same forgery with the move's key is taken, and its
		// dump is loaded sandboxed.
		{"control: signed with the move's key", forge(t, evilInner, repos.MoveKey(testKEK, uid, moveID)), nil, "Unknown command", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			writeFile(t, c.exportFile(artifact), origManifest)
			writeFile(t, c.exportFile(dbObj.Key), origDump)
			if tc.manifest != nil {
				writeFile(t, c.exportFile(artifact), tc.manifest)
			}
			if tc.dump != nil {
				writeFile(t, c.exportFile(dbObj.Key), tc.dump)
			}
			if err := target.Converge(c.ctx, c.src); err == nil {
				t.Error("the target's pass reported no error")
			}
			s := c.get(host)
			if s.Move.Phase != site.MoveImporting || s.Move.Imported != nil || s.Status.Shard == s.Move.Target {
				t.Fatalf("the move went on: shard %s, move %+v", s.Status.Shard, s.Move)
			}
			if d := c.detail(s.Move.Error); !strings.Contains(d, tc.wantErr) {
				t.Errorf("move error %q (logged: %q) lacks %q", s.Move.Error, d, tc.wantErr)
			}
			if tc.nothingMade {
				nothingMade(t)
			}
			if _, err := os.Stat(marker); err == nil {
				t.Fatal("the dump's shell escape ran")
			}
			if ok, _ := target.DB().DatabaseExists(c.ctx, n.DB); ok {
				if v, _ := target.DB().QueryString(c.ctx, "SELECT COUNT(*) FROM information_schema.TABLES WHERE TABLE_SCHEMA = ? AND TABLE_NAME = 'pwned'", n.DB); v != "0" && !strings.Contains(tc.name, "control") {
					t.Error("the forged dump was loaded")
				}
			}
		})
	}
	// The export as the source wrote it.
	writeFile(t, c.exportFile(artifact), origManifest)
	writeFile(t, c.exportFile(dbObj.Key), origDump)
	if err := os.RemoveAll(filepath.Dir(c.exportFile(evilKey))); err != nil {
		t.Fatal(err)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustReadBytes(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
