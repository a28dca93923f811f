package supervise

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func alive(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	// A zombie has exited.
	f := strings.Fields(string(b))
	return len(f) > 2 && f[2] != "Z"
}

func TestRestartsAndStops(t *testing.T) {
	dir := t.TempDir()
	p := &Process{
		Name:    "sleeper",
		Command: func() *exec.Cmd { return exec.Command("sleep", "300") },
		PIDFile: filepath.Join(dir, "sleeper.pid"),
		Match:   "sleep",
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- p.Run(ctx, nil) }()
	waitFor(t, "first start", func() bool { return p.PID() != 0 })
	first := p.PID()
	if b, _ := os.ReadFile(p.PIDFile); strings.TrimSpace(string(b)) != strconv.Itoa(first) {
		t.Errorf("pid file = %q, want %d", b, first)
	}
	syscall.Kill(first, syscall.SIGKILL)
	waitFor(t, "restart", func() bool { return p.PID() != 0 && p.PID() != first })
	if p.Starts() != 2 {
		t.Errorf("starts = %d, want 2", p.Starts())
	}
	second := p.PID()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if alive(second) {
		t.Error("process still running after stop")
	}
	if _, err := os.Stat(p.PIDFile); !os.IsNotExist(err) {
		t.Error("pid file left after a clean stop")
	}
	if err := p.Signal(syscall.SIGTERM); err == nil {
		t.Error("Signal succeeded with nothing running")
	}
}

// TestSignalExitedNotRestarted: a process that exited and is not yet
// restarted is not running, for Signal too (php-fpm's reload treats that
// as done: the next start reads the new configuration).
func TestSignalExitedNotRestarted(t *testing.T) {
	p := &Process{Name: "quick", Command: func() *exec.Cmd { return exec.Command("true") }}
	ctx, cancel := context.WithCancel(context.Background())
	started := make(chan int)
	release := make(chan struct{})
	done := make(chan error)
	go func() {
		done <- p.Run(ctx, func(ctx context.Context, pid int) error {
			select {
			case started <- pid:
				<-release // the first start only: Run has not seen the exit yet
			default:
			}
			return nil
		})
	}()
	pid := <-started
	waitFor(t, "the process to exit and be reaped", func() bool {
		_, err := os.Stat("/proc/" + strconv.Itoa(pid))
		return err != nil
	})
	if err := p.Signal(syscall.SIGUSR2); !errors.Is(err, ErrNotRunning) {
		t.Errorf("Signal after the exit: %v, want ErrNotRunning", err)
	}
	close(release)
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestKillLeftover(t *testing.T) {
	dir := t.TempDir()
	// A process a crashed platform left behind, recorded in the pid file.
	left := exec.Command("sleep", "300")
	left.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := left.Start(); err != nil {
		t.Fatal(err)
	}
	go left.Wait()
	pidFile := filepath.Join(dir, "x.pid")
	os.WriteFile(pidFile, []byte(strconv.Itoa(left.Process.Pid)+"\n"), 0o600)

	// A pid file naming a process that is something else is only removed.
	other := &Process{PIDFile: pidFile, Match: "mariadbd"}
	other.KillLeftover()
	if !alive(left.Process.Pid) {
		t.Fatal("killed a process whose command line does not match")
	}
	os.WriteFile(pidFile, []byte(strconv.Itoa(left.Process.Pid)+"\n"), 0o600)
	(&Process{PIDFile: pidFile, Match: "sleep"}).KillLeftover()
	waitFor(t, "leftover to die", func() bool { return !alive(left.Process.Pid) })
}

// A group whose leader died keeps its children (php-fpm workers after a
// killed master); they are found by their process group and killed.
func TestKillLeftoverOrphanedGroup(t *testing.T) {
	dir := t.TempDir()
	leader := exec.Command("sh", "-c", "sleep 300 & echo $!; exec sleep 301")
	leader.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := leader.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := leader.Start(); err != nil {
		t.Fatal(err)
	}
	var child int
	if _, err := fmtFscan(out, &child); err != nil {
		t.Fatal(err)
	}
	syscall.Kill(leader.Process.Pid, syscall.SIGKILL)
	leader.Wait()
	if !alive(child) {
		t.Fatal("child died with its leader; the test proves nothing")
	}
	pidFile := filepath.Join(dir, "g.pid")
	os.WriteFile(pidFile, []byte(strconv.Itoa(leader.Process.Pid)), 0o600)
	(&Process{PIDFile: pidFile, Match: "sleep"}).KillLeftover()
	waitFor(t, "orphaned child to die", func() bool { return !alive(child) })
}

func fmtFscan(r io.Reader, v *int) (int, error) { return fmt.Fscan(r, v) }

// When the leader dies, with OrphanGrace the rest of its group gets
// StopSignal and time to finish (php-fpm's workers, given SIGQUIT, finish
// their request), is killed after the grace if still there, and the new
// leader starts meanwhile.
func TestOrphanGrace(t *testing.T) {
	dir := t.TempDir()
	quit := filepath.Join(dir, "quit")
	// The leader's child traps the stop signal, notes it and keeps
	// running (a worker still answering); it writes its pid once the
	// trap is set (written by the leader, the pid could be read before
	// the trap, and a stop signal then would kill the child instead).
	// (SIGTERM: a shell's background job ignores SIGQUIT.)
	script := fmt.Sprintf(`sh -c 'trap "touch %s" TERM; echo $$ > %s/child; while :; do sleep 0.05; done' & exec sleep 300`, quit, dir)
	p := &Process{
		Name:        "group",
		Command:     func() *exec.Cmd { return exec.Command("sh", "-c", script) },
		PIDFile:     filepath.Join(dir, "g.pid"),
		Match:       "sh",
		StopSignal:  syscall.SIGTERM,
		OrphanGrace: time.Second,
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { p.Run(ctx, nil); close(done) }()
	defer func() { cancel(); <-done }()
	childOf := func() int {
		b, _ := os.ReadFile(filepath.Join(dir, "child"))
		n, _ := strconv.Atoi(strings.TrimSpace(string(b)))
		return n
	}
	waitFor(t, "first start", func() bool { return p.PID() != 0 && childOf() != 0 })
	leader, child := p.PID(), childOf()
	os.Remove(filepath.Join(dir, "child"))
	syscall.Kill(leader, syscall.SIGKILL)
	waitFor(t, "the orphan to get the stop signal", func() bool { _, err := os.Stat(quit); return err == nil })
	if _, err := os.Stat(p.PIDFile + ".orphans"); err != nil && alive(child) {
		t.Errorf("the orphans' group is not recorded for KillLeftover: %v", err)
	}
	waitFor(t, "the restart", func() bool { return p.Starts() == 2 })
	waitFor(t, "the orphan to be killed after the grace", func() bool { return !alive(child) })
}
