package edge

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

const phpFPM = "/usr/sbin/php-fpm8.2"

// testFPM is a real php-fpm master with one pool on a unix socket.
type testFPM struct {
	dir    string // world-readable scratch directory
	socket string
}

// worldReadableTempDir returns a 0755 temporary directory (t.TempDir is
// 0700, which the pool user "nobody" cannot enter).
func worldReadableTempDir(t testing.TB) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "aipress-edge-test-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// startFPM starts php-fpm and waits until its socket accepts connections.
func startFPM(t testing.TB) *testFPM {
	t.Helper()
	return startFPMChildren(t, 8)
}

// startFPMChildren is startFPM with a pool of at most children workers.
func startFPMChildren(t testing.TB, children int) *testFPM {
	t.Helper()
	if _, err := os.Stat(phpFPM); err != nil {
		t.Skipf("php-fpm not available: %v", err)
	}
	dir := worldReadableTempDir(t)
	f := &testFPM{dir: dir, socket: filepath.Join(dir, "pool.sock")}
	user := ""
	if os.Geteuid() == 0 {
		user = "user = nobody\ngroup = nogroup\n"
	}
	conf := fmt.Sprintf(`[global]
pid = %[1]s/php-fpm.pid
error_log = %[1]s/php-fpm.log
daemonize = no

[test]
%[2]slisten = %[3]s
listen.mode = 0666
pm = ondemand
pm.max_children = %[4]d
pm.process_idle_timeout = 10s
catch_workers_output = yes
php_admin_value[error_log] = %[1]s/php-error.log
php_admin_flag[log_errors] = on
`, dir, user, f.socket, children)
	confPath := filepath.Join(dir, "php-fpm.conf")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(phpFPM, "--nodaemonize", "--fpm-config", confPath)
	out, err := os.Create(filepath.Join(dir, "stdout.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatalf("start php-fpm: %v", err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		out.Close()
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		c, err := net.Dial("unix", f.socket)
		if err == nil {
			c.Close()
			return f
		}
		select {
		case <-done:
			log, _ := os.ReadFile(filepath.Join(dir, "php-fpm.log"))
			so, _ := os.ReadFile(filepath.Join(dir, "stdout.log"))
			t.Fatalf("php-fpm exited: %s\n%s", log, so)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("php-fpm socket not ready: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
