package api

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/store"
	"gocloud.dev/blob/fileblob"
)

// deltaArchive is a tar.gz as liveimport.Pull writes a delta.
func deltaArchive(t *testing.T, withListing bool) string {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	add := func(name, body string) {
		typ := byte(tar.TypeReg)
		if strings.HasSuffix(name, "/") {
			typ = tar.TypeDir
		}
		if err := tw.WriteHeader(&tar.Header{Name: name, Mode: 0o644, Size: int64(len(body)), Typeflag: typ}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(body))
	}
	add("database.sql", "/*!40101 SET NAMES utf8mb4 */;\nCREATE TABLE `wp_options` (`option_id` int, `option_name` varchar(191), `option_value` longtext, `autoload` varchar(20));\nCREATE TABLE `wp_posts` (`ID` int);\n"+
		"INSERT INTO `wp_options` VALUES (1,'siteurl','https://old.example','yes'),(2,'home','https://old.example','yes');\n")
	add("wp-content/", "")
	add("wp-content/uploads/", "")
	add("wp-content/uploads/a.txt", "a\n")
	if withListing {
		add("aipress-live.json", `{"format":1,"source":"deploy@old.example:22:/var/www","delta":true,"listing":{"files":[]}}`)
	}
	tw.Close()
	zw.Close()
	return buf.String()
}

// TestResyncSite: POST /v1/sites/{name}/resync inspects the delta archive
// (refused with the reason without its listing), stores it in the
// transfer store and creates a live-resync job on the site's shard; a
// site not Ready, a second re-sync while one runs and a viewer are
// refused.
func TestResyncSite(t *testing.T) {
	e := newEnv(t)
	bucket, err := fileblob.OpenBucket(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer bucket.Close()
	e.handler = New(Config{Store: e.store, Placer: StaticPlacer("s1"), Clock: func() time.Time { return testNow },
		PublicURL: func(d string) string { return "http://" + d + ":8080" }, Transfer: bucket})
	e.place(t, "a.com", "s1", site.PhaseReady)
	e.place(t, "p.com", "s1", site.PhaseCreating)

	if code, m, _ := e.do(t, "POST", "/v1/sites/a.com/resync", viewerSecret, deltaArchive(t, true)); code != 403 {
		t.Errorf("viewer: %d %v", code, m)
	}
	if code, m, _ := e.do(t, "POST", "/v1/sites/a.com/resync", adminSecret, deltaArchive(t, false)); code != 422 || !strings.Contains(errMessage(m), "aipress-live.json") {
		t.Errorf("without the listing: %d %v", code, m)
	}
	if code, m, _ := e.do(t, "POST", "/v1/sites/a.com/resync", adminSecret, "not an archive"); code != 422 {
		t.Errorf("not an archive: %d %v", code, m)
	}
	if code, m, _ := e.do(t, "POST", "/v1/sites/p.com/resync", adminSecret, deltaArchive(t, true)); code != 409 {
		t.Errorf("a site not Ready: %d %v", code, m)
	}
	code, m, _ := e.do(t, "POST", "/v1/sites/a.com/resync", adminSecret, deltaArchive(t, true))
	if code != 202 || get(m, "job.kind") != string(store.JobResync) || get(m, "job.shard") != "s1" || get(m, "inspection.old_url") != "https://old.example" {
		t.Fatalf("re-sync: %d %v", code, m)
	}
	j, err := e.store.GetJob(context.Background(), get(m, "job.id").(string))
	if err != nil {
		t.Fatal(err)
	}
	var p store.ResyncParams
	if err := json.Unmarshal(j.Params, &p); err != nil || !strings.HasPrefix(p.Key, store.ResyncPrefix(j.SiteUID)) {
		t.Fatalf("params %s: %v", j.Params, err)
	}
	if ok, err := bucket.Exists(context.Background(), p.Key); err != nil || !ok {
		t.Errorf("the archive is not in the transfer store at %s: %v", p.Key, err)
	}
	if code, m, _ := e.do(t, "POST", "/v1/sites/a.com/resync", adminSecret, deltaArchive(t, true)); code != 409 || !strings.Contains(errMessage(m), "re-sync running") {
		t.Errorf("a second re-sync while one runs: %d %v", code, m)
	}
}
