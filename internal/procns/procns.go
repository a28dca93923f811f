// Package procns starts the processes that run a site's code (the php-fpm
// master, whose workers run as the sites' users, and the PHP command line
// that installs WordPress and runs WP-Cron) in a mount namespace of their own
// whose /proc is a fresh procfs mounted with hidepid=invisible. There a
// process sees in /proc only the processes of its own user: a site's PHP
// cannot list other sites' workers or read their command lines (which
// /proc/<pid>/cmdline shows to everyone by default and which name the pools),
// while /proc/self, /proc/loadavg, /proc/meminfo and the rest stay as PHP
// expects them. (environ and maps of another user's process are already
// refused by the kernel's ptrace access rules.) Root — the php-fpm master —
// still sees everything.
//
// How: Go cannot run code in a child between fork and exec, so the
// namespace is made on the thread that forks. Start locks a goroutine to its
// OS thread, unshares the mount namespace of that thread only, makes every
// mount a slave of the host's (mounts made later on the host still appear
// inside; nothing made inside leaks out), mounts the procfs over /proc and
// starts the child from that thread, which the child inherits. The goroutine
// then waits for the child and ends without unlocking, so the Go runtime
// ends the thread (or, should it be the main thread, parks it for good) and
// no other goroutine ever runs in its namespace; the runtime starts new
// threads from a clean template thread, never from a locked one.
// The thread lives exactly as long as the child, which matters: a child's
// parent-death signal (internal/supervise sets SIGKILL) fires when the thread
// that forked it exits.
//
// This was chosen over util-linux's unshare(1) with a wrapper because that
// needs a shell between unshare and the program (unshare --mount-proc takes
// no mount options, and mount(8) execs nothing), and for the CLI, which runs
// as the site user, a third tool (setpriv) to drop privileges after
// mounting; here failures are Go errors, the child is exactly the program
// (its pid, command line and signals are php-fpm's, as internal/supervise
// expects) and credentials are still set by os/exec.
// procfs's subset=pid is not used: PHP reads /proc/loadavg and friends.
//
// Without root there is nothing to isolate (every child runs as the caller)
// and no right to mount: children start in the caller's namespace. As root
// without CAP_SYS_ADMIN (a container that drops it) Start fails with an
// error that says so, rather than run site code with /proc open.
package procns

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"syscall"
)

// Start starts cmd as described in the package documentation and returns a
// channel that receives cmd.Wait's result once the child has exited. The
// caller must not call cmd.Wait itself.
func Start(cmd *exec.Cmd) (<-chan error, error) {
	done := make(chan error, 1)
	if os.Geteuid() != 0 {
		if err := cmd.Start(); err != nil {
			return nil, err
		}
		go func() { done <- cmd.Wait() }()
		return done, nil
	}
	started := make(chan error, 1)
	go func() {
		// Never unlocked: see the package documentation.
		runtime.LockOSThread()
		if err := isolate(); err != nil {
			started <- err
			return
		}
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		done <- cmd.Wait()
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return done, nil
}

// Run starts cmd with Start and waits for it, like cmd.Run.
func Run(cmd *exec.Cmd) error {
	done, err := Start(cmd)
	if err != nil {
		return err
	}
	return <-done
}

// isolate gives the calling thread its own mount namespace with a procfs
// that hides other users' processes.
func isolate() error {
	if err := syscall.Unshare(syscall.CLONE_NEWNS); err != nil {
		if errors.Is(err, syscall.EPERM) {
			return fmt.Errorf("procns: a mount namespace to hide other users' processes needs CAP_SYS_ADMIN: %w", err)
		}
		return fmt.Errorf("procns: unshare mount namespace: %w", err)
	}
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_SLAVE, ""); err != nil {
		return fmt.Errorf("procns: make mounts slaves of the host's: %w", err)
	}
	if err := syscall.Mount("proc", "/proc", "proc", syscall.MS_NOSUID|syscall.MS_NODEV|syscall.MS_NOEXEC, "hidepid=invisible"); err != nil {
		return fmt.Errorf("procns: mount /proc with hidepid=invisible: %w", err)
	}
	return nil
}
