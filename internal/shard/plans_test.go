package shard_test

import (
	"context"
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
	for _, tt := range tests {
		failed, served := change(tt.plan)
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
