// Package procns runs the processes that run a site's code (the php-fpm
// master, whose workers run as the sites' users, and the PHP command line
// that installs WordPress and runs WP-Cron) in a mount namespace of their own
// whose /proc is a fresh procfs mounted with hidepid=invisible. There a
// process sees in /proc only the processes of its own user: a site's PHP
// cannot list other sites' workers or read their command lines (which
// /proc/<pid>/cmdline shows to everyone by default and which name the pools),
// while /proc/self, /proc/loadavg, /proc/meminfo and the rest stay as PHP
// expects them (procfs's subset=pid would hide those). environ and maps of
// another user's process are refused by the kernel's ptrace access rules
// anyway. Root — the php-fpm master — still sees everything.
//
// How: Wrap turns a command into
//
//	unshare --mount --propagation slave -- /bin/sh -c \
//	    'mount -t proc -o nosuid,nodev,noexec,hidepid=invisible proc /proc && exec "$@"' \
//	    aipress-procns [setpriv --reuid U --regid G --clear-groups --pdeathsig keep --] PROGRAM ARGS…
//
// with util-linux's unshare and setpriv (Essential in Debian) and mount(8).
// Every step execs the next, so the process keeps its pid, its process group
// and its parent-death signal, and ends as exactly the program:
// internal/supervise's pid file, command-line match, signals and php-fpm's
// USR2 re-exec work as before. Mounts are slaves of the host's: nothing made
// inside leaks out, and a mount made later on the host appears inside when
// it is made below a shared mount (a host whose root mount is private, as
// without systemd, propagates nothing: the shard makes its sites directory
// shared for the sites' volumes, volume.Share). A
// command that should run as a site user (os/exec's Credential) switches
// user with setpriv only after the mount, which needs root; --pdeathsig keep
// restores the parent-death signal the kernel clears on that switch.
//
// The alternative, unsharing on a goroutine locked to its OS thread and
// forking from there (Go cannot run code between fork and exec), was built
// first and dropped: LockOSThread binds whichever thread the goroutine runs
// on, which may have forked other children, and when that thread ends (a
// locked goroutine that exits ends its thread) the kernel sends their
// parent-death signal — a cron run's end killed the shard's mariadbd. Keeping
// such a thread forever would be process-wide state.
//
// Without root there is nothing to isolate (every child runs as the caller)
// and no right to mount: Wrap leaves the command alone. As root without
// CAP_SYS_ADMIN (a container that drops it) the wrapped command fails;
// Check says so clearly, and the shard runs it before it starts any site
// code (phpfpm.Master.Prepare), so it refuses to start rather than run site
// code with /proc open.
package procns

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// The tools Wrap uses (util-linux, dash and mount: always on Debian).
const (
	unshareBin = "/usr/bin/unshare"
	shBin      = "/bin/sh"
	setprivBin = "/usr/bin/setpriv"
)

// script mounts the procfs and becomes the program.
const script = `/bin/mount -t proc -o nosuid,nodev,noexec,hidepid=invisible proc /proc && exec "$@"`

// Wrap rewrites cmd, which must not have been started, to run in a mount
// namespace of its own with a procfs that hides other users' processes (see
// the package documentation). A Credential in cmd.SysProcAttr is applied
// after the mount (with setpriv) instead of before the first exec. Without
// root Wrap changes nothing.
func Wrap(cmd *exec.Cmd) error {
	if os.Geteuid() != 0 {
		return nil
	}
	if cmd.Process != nil {
		return errors.New("procns: command already started")
	}
	if cmd.Err != nil {
		return cmd.Err
	}
	args := []string{"unshare", "--mount", "--propagation", "slave", "--", shBin, "-c", script, "aipress-procns"}
	if sp := cmd.SysProcAttr; sp != nil && sp.Credential != nil {
		c := sp.Credential
		args = append(args, setprivBin, "--reuid", strconv.FormatUint(uint64(c.Uid), 10), "--regid", strconv.FormatUint(uint64(c.Gid), 10))
		switch {
		case c.NoSetGroups:
			args = append(args, "--keep-groups")
		case len(c.Groups) > 0:
			gs := make([]string, len(c.Groups))
			for i, g := range c.Groups {
				gs[i] = strconv.FormatUint(uint64(g), 10)
			}
			args = append(args, "--groups", strings.Join(gs, ","))
		default:
			args = append(args, "--clear-groups")
		}
		args = append(args, "--pdeathsig", "keep", "--")
		attr := *sp
		attr.Credential = nil
		cmd.SysProcAttr = &attr
	}
	cmd.Args = append(append(args, cmd.Path), cmd.Args[1:]...)
	cmd.Path = unshareBin
	return nil
}

// Check runs a wrapped /bin/true and reports why it fails, if it does (no
// CAP_SYS_ADMIN, a tool missing). Without root it does nothing.
func Check(ctx context.Context) error {
	cmd := exec.CommandContext(ctx, "/bin/true")
	if err := Wrap(cmd); err != nil {
		return err
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		var ee *exec.ExitError
		if errors.As(err, &ee) && strings.Contains(msg, "Operation not permitted") {
			return fmt.Errorf("procns: site code must run with a /proc that hides other users' processes, which needs a mount namespace (CAP_SYS_ADMIN): %w: %s", err, msg)
		}
		return fmt.Errorf("procns: %s: %w: %s", unshareBin, err, msg)
	}
	return nil
}
