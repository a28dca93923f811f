// Package supervise runs a child process in the foreground of the platform
// and keeps it running: it restarts the process when it exits unexpectedly
// (with capped exponential backoff), stops it gracefully when the context
// ends, and makes sure it dies with the platform.
//
// It is hand-written because what we need is small and specific: Linux
// process groups so a whole php-fpm tree is stopped at once, the parent-death
// signal so a kill -9 of aipress takes its children along, and pid files so
// a restarted platform can kill what a crashed one left behind.
package supervise

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Process describes one supervised child.
type Process struct {
	Name string
	// Command builds a fresh *exec.Cmd for each start.
	Command func() *exec.Cmd
	// PIDFile, if set, is where the child's pid is recorded; a process left
	// behind by a crashed platform under that pid (with Match in its command
	// line) is killed before the first start.
	PIDFile string
	Match   string
	// StopSignal is sent first on shutdown (default SIGTERM); after
	// StopTimeout (default 20s) the process group is killed.
	StopSignal  syscall.Signal
	StopTimeout time.Duration
	// OrphanGrace, if set, is how long the rest of a dead leader's group
	// may finish what it holds before it is killed: it gets StopSignal at
	// once (php-fpm's workers, given SIGQUIT after their master was
	// killed, finish the request they are answering and exit) while the
	// new leader starts. Zero: the group is killed at once. The group's
	// id is kept in PIDFile+".orphans" meanwhile, for KillLeftover.
	OrphanGrace time.Duration
	Logger      *slog.Logger

	mu      sync.Mutex
	cmd     *exec.Cmd
	started chan struct{}
	starts  int
}

// Restarts: a process that ran healthyRun or longer is restarted at once;
// one that dies sooner waits firstBackoff, doubling up to 10 s.
const (
	healthyRun   = 10 * time.Second
	firstBackoff = 250 * time.Millisecond
)

// Run starts the process and restarts it whenever it exits, until ctx is
// done; then it stops the process and returns. onStart, if not nil, is called
// after every (re)start with the new pid; it may wait for readiness.
func (p *Process) Run(ctx context.Context, onStart func(ctx context.Context, pid int) error) error {
	log := p.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("process", p.Name)
	p.KillLeftover()
	backoff := firstBackoff
	for {
		if ctx.Err() != nil {
			return nil
		}
		cmd := p.Command()
		if cmd.SysProcAttr == nil {
			cmd.SysProcAttr = &syscall.SysProcAttr{}
		}
		cmd.SysProcAttr.Setpgid = true
		cmd.SysProcAttr.Pdeathsig = syscall.SIGKILL
		begun := time.Now()
		if err := cmd.Start(); err != nil {
			log.Error("start failed", "err", err)
			if !sleep(ctx, backoff) {
				return nil
			}
			backoff = min(backoff*2, 10*time.Second)
			continue
		}
		p.mu.Lock()
		p.cmd = cmd
		p.starts++
		p.mu.Unlock()
		if p.PIDFile != "" {
			_ = os.WriteFile(p.PIDFile, []byte(strconv.Itoa(cmd.Process.Pid)+"\n"), 0o600)
		}
		log.Info("started", "pid", cmd.Process.Pid)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		if onStart != nil {
			if err := onStart(ctx, cmd.Process.Pid); err != nil && ctx.Err() == nil {
				log.Error("not ready after start", "err", err)
			}
		}
		select {
		case err := <-done:
			// Whatever the dead leader left in its group (php-fpm
			// workers) is killed, at once or after OrphanGrace.
			p.retire(ctx, cmd.Process.Pid)
			p.clear()
			if ctx.Err() != nil {
				return nil
			}
			if time.Since(begun) > healthyRun {
				// A crash after a healthy run: back at once (visitors
				// wait for it); a crash loop still backs off.
				backoff = 0
			}
			log.Warn("exited; restarting", "err", err, "after", backoff)
			if !sleep(ctx, backoff) {
				return nil
			}
			backoff = max(firstBackoff, min(backoff*2, 10*time.Second))
		case <-ctx.Done():
			p.stop(cmd, done, log)
			p.clear()
			return nil
		}
	}
}

// retire ends the group pgid of a dead leader: SIGKILL at once, or
// StopSignal now and SIGKILL after OrphanGrace (at once when ctx ends).
func (p *Process) retire(ctx context.Context, pgid int) {
	if p.OrphanGrace <= 0 || p.StopSignal == 0 {
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		return
	}
	if len(groupMembers(pgid, p.Match)) == 0 {
		return
	}
	_ = syscall.Kill(-pgid, p.StopSignal)
	orphans := ""
	if p.PIDFile != "" {
		orphans = p.PIDFile + ".orphans"
		_ = os.WriteFile(orphans, []byte(strconv.Itoa(pgid)+"\n"), 0o600)
	}
	go func() {
		t := time.NewTimer(p.OrphanGrace)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
		}
		// Only members that still match: the group id may not be
		// reused while a member lives, but be exact anyway.
		for _, pid := range groupMembers(pgid, p.Match) {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		if orphans != "" {
			_ = os.Remove(orphans)
		}
	}()
}

func (p *Process) clear() {
	p.mu.Lock()
	p.cmd = nil
	p.mu.Unlock()
	if p.PIDFile != "" {
		_ = os.Remove(p.PIDFile)
	}
}

func (p *Process) stop(cmd *exec.Cmd, done chan error, log *slog.Logger) {
	sig := p.StopSignal
	if sig == 0 {
		sig = syscall.SIGTERM
	}
	timeout := p.StopTimeout
	if timeout == 0 {
		timeout = 20 * time.Second
	}
	_ = cmd.Process.Signal(sig)
	select {
	case <-done:
		log.Info("stopped")
	case <-time.After(timeout):
		log.Warn("did not stop in time; killing", "timeout", timeout)
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
	}
	_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
}

// Signal sends sig to the running process. It fails with ErrNotRunning
// if none runs, also when it exited and is not yet restarted.
func (p *Process) Signal(sig os.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return fmt.Errorf("signal %s: %w", p.Name, ErrNotRunning)
	}
	err := p.cmd.Process.Signal(sig)
	if errors.Is(err, os.ErrProcessDone) {
		// Exited, and not yet noticed by the loop that restarts it.
		return fmt.Errorf("signal %s: %w", p.Name, ErrNotRunning)
	}
	return err
}

// PID returns the running process's pid, or 0.
func (p *Process) PID() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.cmd == nil || p.cmd.Process == nil {
		return 0
	}
	return p.cmd.Process.Pid
}

// Starts reports how many times the process was started.
func (p *Process) Starts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.starts
}

// ErrNotRunning is returned by Signal when no process runs.
var ErrNotRunning = errors.New("not running")

// KillLeftover kills what a crashed platform left behind: every process of
// the process group recorded in PIDFile whose command line contains Match.
// The group's leader may be gone while its children live on (php-fpm
// workers outlive a killed master and keep its sockets).
func (p *Process) KillLeftover() {
	if p.PIDFile == "" {
		return
	}
	p.killGroupIn(p.PIDFile)
	p.killGroupIn(p.PIDFile + ".orphans") // a dead leader's group in its grace (OrphanGrace)
}

// killGroupIn kills the members of the group whose id file names, then
// removes the file.
func (p *Process) killGroupIn(file string) {
	defer os.Remove(file)
	b, err := os.ReadFile(file)
	if err != nil {
		return
	}
	pgid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pgid <= 1 {
		return
	}
	members := groupMembers(pgid, p.Match)
	if len(members) == 0 {
		return
	}
	if p.Logger != nil {
		p.Logger.Warn("killing processes left by a previous run", "process", p.Name, "pids", members)
	}
	for _, pid := range members {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	for i := 0; i < 100 && len(groupMembers(pgid, p.Match)) > 0; i++ {
		time.Sleep(50 * time.Millisecond)
	}
}

// groupMembers lists the live processes in process group pgid whose command
// line contains match.
func groupMembers(pgid int, match string) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// Fields after the parenthesised command: state ppid pgrp ...
		i := strings.LastIndexByte(string(stat), ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 3 || f[0] == "Z" || f[2] != strconv.Itoa(pgid) {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || (match != "" && !strings.Contains(string(cmdline), match)) {
			continue
		}
		out = append(out, pid)
	}
	return out
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
