package phpfpm_test

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/phpfpm"
	"github.com/aipress/aipress/internal/phpini"
)

// BenchmarkReload: one graceful reload (SIGUSR2 until the new master
// serves) of a master with 1 and 50 pools, with the pool files as
// RenderPool writes them ("lean") and with the PHP_INI_SYSTEM hardening
// repeated in every pool as php_admin_* ("repeated", the pool files before
// phpini's System settings). php-fpm reads pool files one byte per read(2),
// so a reload's cost grows with their bytes: it is on the path of every
// site creation (a new pool) and plan change. "busy" is "lean" with a
// spinning goroutine per CPU (GOMAXPROCS) for the whole loop, the machine
// a new site's reload meets while its files and database are made: the
// master runs MasterNiceBoost below the test's nice value when it may
// ("Priority" in the package documentation; on 2 cores, 50 pools, before
// the boost: 360 ms busy against 180 quiet; with it: 225). Reports
// ms/reload and the bytes of one pool file.
func BenchmarkReload(b *testing.B) {
	for _, n := range []int{1, 50} {
		for _, format := range []string{"lean", "repeated", "busy"} {
			b.Run(fmt.Sprintf("%dpools/%s", n, format), func(b *testing.B) {
				dir := b.TempDir()
				m := &phpfpm.Master{Dir: filepath.Join(dir, "php"), Logger: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))}
				ctx := runMaster(b, m)
				size := 0
				for i := range n {
					p := phpfpm.Pool{Name: fmt.Sprintf("wp_%012d", i), SiteDir: dir, SlowLog: m.SlowLog(fmt.Sprintf("wp_%012d", i))}
					if os.Geteuid() == 0 {
						p.User, p.Group = "nobody", "nogroup"
					}
					conf, err := phpfpm.RenderPool(p, m.Socket(p.Name))
					if err != nil {
						b.Fatal(err)
					}
					if format == "repeated" {
						// (the pool files before phpini's System settings)
						for _, st := range phpini.Settings() {
							if !st.System {
								continue
							}
							kind := "value"
							if st.Flag {
								kind = "flag"
							}
							conf = fmt.Appendf(conf, "php_admin_%s[%s] = %s\n", kind, st.Name, st.Value)
						}
						conf = append(conf, "php_admin_flag[expose_php] = off\n"...)
					}
					size = len(conf)
					if err := os.WriteFile(m.PoolFile(p.Name), conf, 0o644); err != nil {
						b.Fatal(err)
					}
				}
				if err := m.Reload(ctx); err != nil { // every pool in, before timing
					b.Fatal(err)
				}
				if format == "busy" {
					stop := make(chan struct{})
					var wg sync.WaitGroup
					for range runtime.GOMAXPROCS(0) {
						wg.Go(func() {
							for {
								select {
								case <-stop:
									return
								default:
								}
							}
						})
					}
					defer func() { close(stop); wg.Wait() }()
				}
				start := time.Now()
				for b.Loop() {
					if err := m.Reload(ctx); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(time.Since(start).Microseconds())/1000/float64(b.N), "ms/reload")
				b.ReportMetric(float64(size), "bytes/pool")
			})
		}
	}
}
