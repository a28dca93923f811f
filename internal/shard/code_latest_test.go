package shard

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aipress/aipress/internal/artefact"
	"github.com/aipress/aipress/internal/site"
)

// An unpinned plugin ("" or "latest") that a code job installed from the
// catalogue is met by what the site runs: a later job (a changed option)
// neither asks the catalogue nor upgrades it. A changed version or source
// is resolved again. The store here has no catalogue: asking it fails.
func TestCodeLatestMetByInstalledLink(t *testing.T) {
	as, err := artefact.Open(artefact.Config{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	s := lockTestShard(t)
	s.cfg.Artefacts = as
	st := readySite(t, s)
	n := s.NamesFor(st.Metadata.UID)

	// hello 1.0, unpacked from the catalogue by an earlier job.
	digest := strings.Repeat("c", 64)
	dir := filepath.Join(as.Root(), "plugin", digest, "hello")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	mark, _ := json.Marshal(artefact.Artefact{Kind: artefact.Plugin, Name: "hello", Digest: digest, Version: "1.0", Main: "hello.php"})
	if err := os.WriteFile(filepath.Join(dir, "..", ".complete"), mark, 0o644); err != nil {
		t.Fatal(err)
	}
	plugins := filepath.Join(n.Docroot, "wp-content", "plugins")
	if err := os.MkdirAll(plugins, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(dir, filepath.Join(plugins, "hello")); err != nil {
		t.Fatal(err)
	}
	installed := site.Extension{Name: "hello", Active: true}
	if err := writeCodeSources(n, []wanted{{kind: "plugin", ext: installed, target: dir, digest: digest, ver: "1.0"}}); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct {
		name    string
		ext     site.Extension
		resolve bool // asks the catalogue (fails here)
	}{
		{"unchanged", site.Extension{Name: "hello", Active: true}, false},
		{"unchanged, deactivated", site.Extension{Name: "hello"}, false},
		{"latest, the same as empty", site.Extension{Name: "hello", Version: "latest", Active: true}, false},
		{"pinned", site.Extension{Name: "hello", Version: "2.0", Active: true}, true},
		{"another source", site.Extension{Name: "hello", Active: true, Source: site.ExtensionSource{Type: site.SourceUpload,
			SHA256: strings.Repeat("d", 64)}}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st := *st
			st.Spec.Plugins = []site.Extension{tc.ext}
			st.Spec.Options = map[string]string{"blogname": "Changed"}
			cr := &codeRun{s: s, st: &st, n: n, progress: func(string) {}}
			want, err := cr.resolve(context.Background())
			if tc.resolve {
				if err == nil {
					t.Fatalf("resolved %+v without asking the catalogue", want)
				}
				return
			}
			if err != nil {
				t.Fatalf("resolve: %v (asked the catalogue)", err)
			}
			if len(want) != 1 || want[0].target != dir || want[0].version() != "1.0" || want[0].ext.Active != tc.ext.Active {
				t.Errorf("resolve = %+v, want hello 1.0 at %s", want, dir)
			}
		})
	}

	// A link that is not the recorded one (a rollback, drift) is
	// resolved again.
	os.Remove(filepath.Join(plugins, "hello"))
	os.Symlink(filepath.Join(as.Root(), "plugin", strings.Repeat("e", 64), "hello"), filepath.Join(plugins, "hello"))
	st.Spec.Plugins = []site.Extension{installed}
	cr := &codeRun{s: s, st: st, n: n, progress: func(string) {}}
	if want, err := cr.resolve(context.Background()); err == nil {
		t.Errorf("resolved %+v for a link not recorded", want)
	}
}
