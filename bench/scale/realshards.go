package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aipress/aipress/bench/internal/benchplatform"
	"github.com/aipress/aipress/internal/shard"
)

// realShard is an `aipress shard` process: a real agent with its own
// MariaDB and php-fpm in its data directory.
type realShard struct {
	name    string
	dataDir string
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
}

// startRealShard runs `bin shard` for shard name with the agent token in
// tokenFile, its data directory and log below dir.
func startRealShard(bin, dir, name, serverURL, tokenFile string, capacity int, labels []string) (*realShard, error) {
	port, err := benchplatform.FreePort()
	if err != nil {
		return nil, err
	}
	r := &realShard{name: name, dataDir: filepath.Join(dir, "shards", name),
		logPath: filepath.Join(dir, "shard-"+name+".log"), exited: make(chan struct{})}
	logFile, err := os.Create(r.logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close()
	args := []string{"shard", "--name", name, "--server", serverURL, "--token-file", tokenFile,
		"--data-dir", r.dataDir, "--capacity", strconv.Itoa(capacity), "--public-port", strconv.Itoa(port)}
	for _, l := range labels {
		args = append(args, "--label", l)
	}
	r.cmd = exec.Command(bin, args...)
	r.cmd.Stdout, r.cmd.Stderr = logFile, logFile
	r.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := r.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start shard %s: %w", name, err)
	}
	go func() { r.waitErr = r.cmd.Wait(); close(r.exited) }()
	logf("started %s %s (pid %d, log %s)", bin, strings.Join(args, " "), r.cmd.Process.Pid, r.logPath)
	return r, nil
}

func (r *realShard) died() error {
	select {
	case <-r.exited:
		b, _ := os.ReadFile(r.logPath)
		lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
		return fmt.Errorf("shard %s exited (%v); log tail:\n%s", r.name, r.waitErr, strings.Join(lines[max(0, len(lines)-15):], "\n"))
	default:
		return nil
	}
}

// stop sends SIGINT, waits for the shard to stop MariaDB and php-fpm (up to
// 90 s, then kills its process group), and removes its site Unix users.
func (r *realShard) stop() error {
	var errs []error
	select {
	case <-r.exited:
	default:
		_ = r.cmd.Process.Signal(os.Interrupt)
		select {
		case <-r.exited:
		case <-time.After(90 * time.Second):
			_ = syscall.Kill(-r.cmd.Process.Pid, syscall.SIGKILL)
			<-r.exited
			errs = append(errs, fmt.Errorf("shard %s did not exit within 90s after SIGINT; killed", r.name))
		}
	}
	n, err := shard.RemoveUsersUnder(context.Background(), r.dataDir)
	if err != nil {
		errs = append(errs, err)
	}
	if n > 0 {
		logf("removed %d site user(s) of shard %s", n, r.name)
	}
	return errors.Join(errs...)
}
