package api

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
	"gocloud.dev/blob"
	"gocloud.dev/blob/fileblob"
)

// importEnv is an env with a transfer store and an organisation "acme"
// on the business plan.
func importEnv(t *testing.T) (*env, *blob.Bucket) {
	t.Helper()
	transfer, err := fileblob.OpenBucket(t.TempDir(), &fileblob.Options{Metadata: fileblob.MetadataDontWrite})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { transfer.Close() })
	e := newEnv(t, func(c *Config) { c.Transfer = transfer })
	if err := e.store.CreateOrg(context.Background(), &store.Org{Name: "acme", Kind: store.OrgCustomer, Plan: "business", CreatedAt: testNow}); err != nil {
		t.Fatal(err)
	}
	return e, transfer
}

// siteArchive is a tar.gz of a WordPress site: wp-content and its dump
// (at dumpName; "" leaves the dump out).
func siteArchive(t *testing.T, dumpName string) []byte {
	t.Helper()
	dump := "/*!40101 SET NAMES utf8mb4 */;\n" +
		"CREATE TABLE `wp_options` (`option_id` bigint unsigned NOT NULL AUTO_INCREMENT, `option_name` varchar(191) NOT NULL, `option_value` longtext NOT NULL, `autoload` varchar(20) NOT NULL DEFAULT 'yes', PRIMARY KEY (`option_id`));\n" +
		"CREATE TABLE `wp_posts` (`ID` bigint unsigned NOT NULL AUTO_INCREMENT, PRIMARY KEY (`ID`));\n" +
		"INSERT INTO `wp_options` VALUES (1,'siteurl','http://old.example','yes'),(2,'home','http://old.example','yes'),(3,'active_plugins','a:1:{i:0;s:13:\\\"shop/shop.php\\\";}','yes');\n"
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	tw := tar.NewWriter(zw)
	ents := [][2]string{{"wp-content/uploads/2024/05/a.txt", "an upload"},
		// A plugin the artefact store takes (active in the dump), one it
		// refuses (no "Plugin Name:" header).
		{"wp-content/plugins/shop/shop.php", "<?php\n/*\nPlugin Name: Shop\nVersion: 1.4\n*/\n"},
		{"wp-content/plugins/hostile/hostile.php", "<?php echo 1;"}}
	if dumpName != "" {
		ents = append(ents, [2]string{dumpName, dump})
	}
	for _, e := range ents {
		if err := tw.WriteHeader(&tar.Header{Name: e[0], Mode: 0o644, Size: int64(len(e[1])), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(e[1]))
	}
	tw.Close()
	zw.Close()
	return b.Bytes()
}

// keys lists the transfer store's objects below prefix.
func keys(t *testing.T, b *blob.Bucket, prefix string) []string {
	t.Helper()
	var out []string
	it := b.List(&blob.ListOptions{Prefix: prefix})
	for {
		o, err := it.Next(context.Background())
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, o.Key)
	}
}

func postBody(e *env, path, token string, body []byte) (int, string) {
	req := httptest.NewRequest(http.MethodPost, path, bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/octet-stream")
	rec := httptest.NewRecorder()
	e.handler.ServeHTTP(rec, req)
	return rec.Code, rec.Body.String()
}

// TestImportDryRun: POST /v1/imports?dry_run=true inspects the archive and
// answers what it holds (or refuses it, 422) and makes nothing: no site,
// nothing in the transfer store; without dry_run the same archive makes
// the site and is stored.
func TestImportDryRun(t *testing.T) {
	e, transfer := importEnv(t)
	ctx := context.Background()
	good := siteArchive(t, "database.sql")
	broken := good[:len(good)/2]
	tests := []struct {
		name, query string
		body        []byte
		status      int
		want        []string // in the body
	}{
		{"dry run", "domain=new.test&org=acme&dry_run=true", good, http.StatusOK,
			[]string{`"dry_run": true`, `"old_url": "http://old.example"`, `"table_prefix": "wp_"`,
				`"storable": true,`, `"version": "1.4",`, `"active": true`,
				`"reason": "\"hostile/\": no PHP file in the plugin's folder has a \"Plugin Name:\" header`}},
		{"dry run, 1", "domain=new.test&org=acme&dry_run=1", good, http.StatusOK, []string{`"dry_run": true`}},
		{"dry run of a truncated archive", "domain=new.test&org=acme&dry_run=true", broken, http.StatusUnprocessableEntity, []string{"import refused"}},
		{"dry run without a dump", "domain=new.test&org=acme&dry_run=true", siteArchive(t, ""), http.StatusUnprocessableEntity, []string{"import refused"}},
		{"dry run of a taken domain", "domain=taken.test&org=acme&dry_run=true", good, http.StatusConflict, nil},
	}
	if err := e.store.CreateSite(ctx, &site.Site{Metadata: site.Metadata{Name: "taken.test", UID: "uid-taken", Org: "acme", CreatedAt: testNow},
		Spec: site.Spec{Domain: "taken.test", Plan: "basic"}, Status: site.Status{Phase: site.PhaseReady, Shard: "local"}}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		code, body := postBody(e, "/v1/imports?"+tc.query, adminSecret, tc.body)
		if code != tc.status {
			t.Errorf("%s: %d %s, want %d", tc.name, code, body, tc.status)
			continue
		}
		for _, w := range tc.want {
			if !strings.Contains(body, w) {
				t.Errorf("%s: body lacks %s: %s", tc.name, w, body)
			}
		}
		if strings.Contains(body, `"site"`) {
			t.Errorf("%s: a dry run answered a site: %s", tc.name, body)
		}
		if _, err := e.store.GetSite(ctx, "new.test"); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("%s: the dry run made the site (%v)", tc.name, err)
		}
		if k := keys(t, transfer, ""); len(k) != 0 {
			t.Fatalf("%s: the dry run stored %q", tc.name, k)
		}
	}
	// The same archive without dry_run: stored, and the site made.
	code, body := postBody(e, "/v1/imports?domain=new.test&org=acme", adminSecret, good)
	if code != http.StatusCreated || !strings.Contains(body, `"dry_run": false`) {
		t.Fatalf("import: %d %s", code, body)
	}
	s, err := e.store.GetSite(ctx, "new.test")
	if err != nil || s.Spec.Source == nil || s.Spec.Source.Import == nil {
		t.Fatalf("site %+v, %v", s, err)
	}
	if k := keys(t, transfer, "imports/"); len(k) != 1 || k[0] != s.Spec.Source.Import.Key {
		t.Errorf("stored %q, the site names %s", k, s.Spec.Source.Import.Key)
	}
	// The storable plugin is an upload of the organisation, named by the
	// spec (active, as in the dump); the hostile one is not.
	if len(s.Spec.Plugins) != 1 || s.Spec.Plugins[0].Name != "shop" || !s.Spec.Plugins[0].Active ||
		s.Spec.Plugins[0].Source.Type != site.SourceUpload || s.Spec.Plugins[0].Version != "1.4" {
		t.Fatalf("spec plugins %+v, want shop from an upload, active", s.Spec.Plugins)
	}
	sha := s.Spec.Plugins[0].Source.SHA256
	if k := keys(t, e.uploads, "orgs/acme/"); !slices.Equal(k, []string{"orgs/acme/" + sha + ".json"}) {
		t.Errorf("acme's uploads %q, want %s", k, sha)
	}
	if k := keys(t, e.uploads, "archives/"); !slices.Equal(k, []string{"archives/" + sha + ".zip"}) {
		t.Errorf("uploaded archives %q, want %s", k, sha)
	}
}

// TestWXRImportDryRun: POST /v1/sites/{name}/wxr-import?dry_run=true
// reads the file and answers its counts (or refuses it) without a job or
// anything in the transfer store.
func TestWXRImportDryRun(t *testing.T) {
	e, transfer := importEnv(t)
	ctx := context.Background()
	if err := e.store.CreateSite(ctx, &site.Site{Metadata: site.Metadata{Name: "blog.test", UID: "uid-blog", Org: "acme", CreatedAt: testNow},
		Spec: site.Spec{Domain: "blog.test", Plan: "basic"}, Status: site.Status{Phase: site.PhaseReady, Shard: "local"}}); err != nil {
		t.Fatal(err)
	}
	const head = `<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/" xmlns:dc="http://purl.org/dc/elements/1.1/" xmlns:wp="http://wordpress.org/export/1.2/">
<channel><title>Blog</title><link>http://old.example</link><wp:wxr_version>1.2</wp:wxr_version>
`
	good := head + `<item><title>Hello</title><dc:creator>ann</dc:creator><content:encoded><![CDATA[<p>Body</p>]]></content:encoded>
<wp:post_id>10</wp:post_id><wp:post_date>2024-05-01 10:00:00</wp:post_date><wp:post_name>hello</wp:post_name><wp:status>publish</wp:status><wp:post_type>post</wp:post_type></item>
</channel></rss>
`
	dtd := `<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]>` + good[len(`<?xml version="1.0" encoding="UTF-8"?>`):]
	for _, tc := range []struct {
		name, body string
		status     int
		want       string
	}{
		{"dry run", good, http.StatusOK, `"dry_run": true`},
		{"dry run of a file with a DTD", dtd, http.StatusUnprocessableEntity, "WXR import refused"},
		{"dry run of a truncated file", good[:len(good)/2], http.StatusUnprocessableEntity, "WXR import refused"},
	} {
		code, body := postBody(e, "/v1/sites/blog.test/wxr-import?dry_run=true", adminSecret, []byte(tc.body))
		if code != tc.status || !strings.Contains(body, tc.want) {
			t.Errorf("%s: %d %s, want %d with %q", tc.name, code, body, tc.status, tc.want)
		}
		if strings.Contains(body, `"job"`) {
			t.Errorf("%s: a dry run answered a job: %s", tc.name, body)
		}
		jobs, err := e.store.ListJobs(ctx, store.JobListOptions{Kind: store.JobWXRImport})
		if err != nil || len(jobs.Items) != 0 {
			t.Fatalf("%s: jobs %+v, %v", tc.name, jobs, err)
		}
		if k := keys(t, transfer, ""); len(k) != 0 {
			t.Fatalf("%s: the dry run stored %q", tc.name, k)
		}
	}
	code, body := postBody(e, "/v1/sites/blog.test/wxr-import", adminSecret, []byte(good))
	if code != http.StatusAccepted || !strings.Contains(body, `"job"`) || len(keys(t, transfer, "imports/wxr/")) != 1 {
		t.Errorf("import: %d %s, stored %q", code, body, keys(t, transfer, ""))
	}
}
