package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestShardRecover loses a shard — its agent stopped and its data
// directory deleted — and rebuilds its sites on another shard from their
// latest snapshots: they serve again with their content.
func TestShardRecover(t *testing.T) {
	f := newFederation(t)
	const domain = "lost.localhost"
	c := f.createSite(domain, "Lost and Found")
	title := fmt.Sprintf("Survives the shard %d", time.Now().UnixNano())
	_, imagePath := publish(t, f.platform, domain, c, title, pngWith(randomBytes(t, 64<<10)))
	vis := f.client(domain)
	image := vis.waitStatus(imagePath, 200, 10*time.Second)
	f.backup(domain)

	lost := c.Shard
	var to string
	for _, n := range []string{"s1", "s2", "s3"} {
		if n != lost {
			to = n
			break
		}
	}
	f.shards[lost].stop()
	if err := os.RemoveAll(filepath.Join(filepath.Dir(f.dataDir), "agents", lost)); err != nil {
		t.Fatal(err)
	}
	f.waitShard(lost, "Unhealthy", func(s shardJSON) bool { return s.Phase == "Unhealthy" })
	if code, _ := vis.get("/"); code != 503 {
		t.Fatalf("a site of the lost shard answers %d", code)
	}

	start := time.Now()
	out, err := f.cli("shard", "recover", lost, "--to", to, "--wait", "-o", "json")
	if err != nil {
		t.Fatalf("shard recover: %v\n%s", err, out)
	}
	var j struct {
		Phase  string `json:"phase"`
		Result struct {
			Sites []struct {
				Site     string `json:"site"`
				Snapshot string `json:"snapshot"`
			} `json:"sites"`
			Duration string `json:"duration"`
		} `json:"result"`
	}
	if err := json.NewDecoder(strings.NewReader(out)).Decode(&j); err != nil || j.Phase != "Succeeded" ||
		len(j.Result.Sites) != 1 || j.Result.Sites[0].Site != domain || j.Result.Sites[0].Snapshot == "" {
		t.Fatalf("recover result: %v\n%s", err, out)
	}
	t.Logf("recovered %s from %s onto %s in %s (command: %v)", domain, j.Result.Sites[0].Snapshot, to, j.Result.Duration, time.Since(start).Round(time.Millisecond))
	if got := field(f.siteJSON(domain), "status", "shard"); got != to {
		t.Fatalf("after recovery the site is on %q, want %q", got, to)
	}
	f.cli("site", "purge", domain)
	if body := vis.waitStatus("/", 200, 60*time.Second); !strings.Contains(body, title) {
		t.Fatalf("recovered front page lacks %q", title)
	}
	if code, body := vis.get(imagePath); code != 200 || body != image {
		t.Fatalf("recovered image: %d", code)
	}
	login(t, f.platform, domain, c) // the admin logs in on the new shard
}
