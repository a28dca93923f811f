package shard_test

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/aipress/aipress/internal/plans"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/volume"
)

// TestPlanChangeLive: moving a site to another plan (what PATCH
// /v1/sites/{name} {"plan"} stores) changes its pool (max_children,
// memory, upload limit), its database user's MAX_USER_CONNECTIONS, its
// volume (grown online; the quota condition names the new limit) and the
// disk limit WordPress knows, on the next pass, while the site keeps
// answering every request, with the same php-fpm master (a graceful
// reload, not a restart).
func TestPlanChangeLive(t *testing.T) {
	needVolumes(t)
	c := newCluster(t)
	sh := c.start("local")
	t.Cleanup(c.deleteAll)
	c.create("plan.localhost", "uid-plan", "local", "Plan Site", adminFor(t))
	n := sh.NamesFor("uid-plan")
	ps := plans.Defaults()

	setPlan := func(name string) {
		t.Helper()
		p, err := ps.Lookup(name)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.st.UpdateSite(c.ctx, "plan.localhost", func(s *site.Site) error { p.Apply(&s.Spec); return nil }); err != nil {
			t.Fatal(err)
		}
	}
	type observed struct {
		children, memory, upload, conns, wpLimit, quota string
		image                                           int64
	}
	observe := func() observed {
		t.Helper()
		var o observed
		conf, err := os.ReadFile(sh.FPM().PoolFile(n.Pool))
		if err != nil {
			t.Fatal(err)
		}
		for _, l := range strings.Split(string(conf), "\n") {
			if v, ok := strings.CutPrefix(l, "pm.max_children = "); ok {
				o.children = v
			}
			if v, ok := strings.CutPrefix(l, "php_admin_value[memory_limit] = "); ok {
				o.memory = v
			}
			if v, ok := strings.CutPrefix(l, "php_admin_value[upload_max_filesize] = "); ok {
				o.upload = v
			}
		}
		if o.conns, err = sh.DB().QueryString(c.ctx, "SELECT max_user_connections FROM mysql.user WHERE User = ?", n.DBUser); err != nil {
			t.Fatal(err)
		}
		wpc, _ := os.ReadFile(filepath.Join(n.Docroot, "wp-config.php"))
		for _, l := range strings.Split(string(wpc), "\n") {
			if v, ok := strings.CutPrefix(l, "define('AIPRESS_DISK_LIMIT_MB', "); ok {
				o.wpLimit = strings.TrimSuffix(v, ");")
			}
		}
		o.image = mustSize(t, filepath.Join(n.Dir, "disk.img"))
		o.quota = c.diskCond("plan.localhost").Message
		return o
	}
	// change sets the plan and converges while a visitor keeps asking
	// for the front page; it returns how many requests failed.
	change := func(plan string) (failed, served int64) {
		t.Helper()
		setPlan(plan)
		ctx, stop := context.WithCancel(c.ctx)
		var wg sync.WaitGroup
		var bad, ok atomic.Int64
		wg.Go(func() {
			client := &http.Client{}
			for ctx.Err() == nil || ok.Load()+bad.Load() == 0 {
				req, _ := http.NewRequest("GET", c.srv.URL+"/?nocache="+plan, nil)
				req.Host = "plan.localhost:" + c.port
				resp, err := client.Do(req)
				if err != nil || resp.StatusCode != 200 {
					bad.Add(1)
				} else {
					ok.Add(1)
				}
				if resp != nil {
					resp.Body.Close()
				}
			}
		})
		err := c.converge("local")
		stop()
		wg.Wait()
		if err != nil {
			t.Fatalf("converge after moving to %s: %v", plan, err)
		}
		return bad.Load(), ok.Load()
	}

	setPlan("basic")
	if err := c.converge("local"); err != nil {
		t.Fatal(err)
	}
	master := sh.FPM().Process().PID()
	got := observe()
	if want := (observed{children: "5", memory: "256M", upload: "64M", conns: "20", wpLimit: "1024", image: volume.Size(1024 * volume.MiB)}); got.children != want.children ||
		got.memory != want.memory || got.upload != want.upload || got.conns != want.conns || got.wpLimit != want.wpLimit || got.image != want.image ||
		!strings.Contains(got.quota, "of 1024 MB used") {
		t.Fatalf("on basic: %+v, want %+v and a quota of 1024 MB", got, want)
	}

	tests := []struct {
		plan string
		want observed
	}{
		// Up: the image grows online.
		{"pro", observed{children: "8", memory: "384M", upload: "128M", conns: "30", wpLimit: "5120", image: volume.Size(5120 * volume.MiB)}},
		// Down: the limit is lowered (the image may stay: the reserve
		// holds the site to its limit).
		{"dev", observed{children: "2", memory: "256M", upload: "64M", conns: "10", wpLimit: "512"}},
	}
	// What the pool's PHP runs with, asked of PHP itself: a plan change
	// reaches a serving pool with the reload at the end of the pass.
	if err := os.WriteFile(filepath.Join(n.Docroot, "limit.php"), []byte("<?php echo ini_get('memory_limit');"), 0o644); err != nil {
		t.Fatal(err)
	}
	liveMemory := func() string {
		t.Helper()
		req, _ := http.NewRequest("GET", c.srv.URL+"/limit.php", nil)
		req.Host = "plan.localhost:" + c.port
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	for _, tt := range tests {
		reloads := sh.FPM().Reloads()
		failed, served := change(tt.plan)
		if d := sh.FPM().Reloads() - reloads; d != 1 {
			t.Errorf("moving to %s: %d php-fpm reloads in the pass, want 1", tt.plan, d)
		}
		if got := liveMemory(); got != tt.want.memory {
			t.Errorf("on %s: PHP runs with memory_limit %q, want %s", tt.plan, got, tt.want.memory)
		}
		if failed != 0 {
			t.Errorf("moving to %s: %d of %d requests failed while the shard applied it", tt.plan, failed, failed+served)
		}
		got := observe()
		if tt.want.image == 0 {
			tt.want.image = got.image
		}
		wantQuota := "of " + tt.want.wpLimit + " MB used"
		if got.children != tt.want.children || got.memory != tt.want.memory || got.upload != tt.want.upload || got.conns != tt.want.conns ||
			got.wpLimit != tt.want.wpLimit || got.image != tt.want.image || !strings.Contains(got.quota, wantQuota) {
			t.Errorf("on %s: %+v, want %+v and a quota %q", tt.plan, got, tt.want, wantQuota)
		}
		if pid := sh.FPM().Process().PID(); pid != master {
			t.Errorf("moving to %s restarted php-fpm (master %d, was %d)", tt.plan, pid, master)
		}
		if s := c.get("plan.localhost"); s.Status.Phase != site.PhaseReady || s.Status.DiskUsedMB <= 0 {
			t.Errorf("on %s: phase %s, disk_used_mb %d; want Ready and a measured use", tt.plan, s.Status.Phase, s.Status.DiskUsedMB)
		}
	}
}

// TestPlanOverQuotaUpload: on a site whose plan gives 24 MB of disk and
// already stores 10, an upload bigger than what remains is refused by
// WordPress with a message naming the plan's limit (507 from the REST
// API), while one that fits goes through.
func TestPlanOverQuotaUpload(t *testing.T) {
	needVolumes(t)
	ps, err := plans.Parse([]byte(`default: tiny
plans:
- {name: tiny, max_sites: 1, disk_mb: 24, db_connections: 5, php: {max_children: 2, memory_limit_mb: 128, upload_max_mb: 24, idle_timeout_seconds: 10, request_timeout_seconds: 60}, backup: {every_hours: -1}, bandwidth_gb: 1}
`), "test")
	if err != nil {
		t.Fatal(err)
	}
	c := newCluster(t)
	sh := c.start("local")
	t.Cleanup(c.deleteAll)
	c.create("tiny.localhost", "uid-tiny", "local", "Tiny Site", adminFor(t))
	if _, err := c.st.UpdateSite(c.ctx, "tiny.localhost", func(s *site.Site) error { ps.Default().Apply(&s.Spec); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := c.converge("local"); err != nil {
		t.Fatal(err)
	}
	n := sh.NamesFor("uid-tiny")
	uid, gid := siteUser(t, sh, "uid-tiny")
	if out := writeAs(t, uid, gid, filepath.Join(n.Docroot, "wp-content", "uploads", "old-media"), 10); out != "" {
		t.Fatalf("storing 10 MiB: %s", out)
	}
	cookies := c.login("tiny.localhost")
	if code, body := c.mediaUpload("tiny.localhost", cookies, "small.png", png(t, 512<<10)); code != 201 {
		t.Fatalf("an upload that fits = %d: %.400s", code, body)
	}
	code, body := c.mediaUpload("tiny.localhost", cookies, "big.png", png(t, 16<<20))
	if code != 507 || !strings.Contains(body, "storage is full") || !strings.Contains(body, "MB of 24 MB used, and this file needs 17 MB") {
		t.Errorf("uploading 16 MiB with about 13 MB left = %d: %.600s; want 507 naming the 24 MB limit", code, body)
	}
}
