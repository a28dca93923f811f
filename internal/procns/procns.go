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
// The namespace also gets small tmpfs mounts of its own over the machine's
// world-writable directories (SharedTmp: /tmp, /var/tmp, /dev/shm, …): a
// site's own temporary files go to its own tmp/ (PHP's sys_temp_dir,
// upload_tmp_dir and session.save_path, on its size-limited volume), so
// these are only for code that names them outright, and they must not let
// one site fill the machine's disk or memory, nor leave files another site
// reads. Each is bounded (size and inodes) and sticky; a directory that
// holds one of the paths the command must see (Options.Keep: the shard's
// data directory when it lies under /tmp, as in tests) is left as it is.
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
	"path/filepath"
	"strconv"
	"strings"
)

// The tools Wrap uses (util-linux, dash and mount: always on Debian).
const (
	unshareBin = "/usr/bin/unshare"
	shBin      = "/bin/sh"
	setprivBin = "/usr/bin/setpriv"
)

// procMount mounts the procfs.
const procMount = `/bin/mount -t proc -o nosuid,nodev,noexec,hidepid=invisible proc /proc`

// TmpDir is a world-writable directory of the machine and the tmpfs that
// covers it inside the namespace.
type TmpDir struct {
	Path    string
	Mode    string // octal, e.g. "1777"
	SizeMiB int
	Inodes  int
}

// SharedTmp are the world-writable directories of a Debian machine.
var SharedTmp = []TmpDir{
	{"/tmp", "1777", 64, 16384},
	{"/var/tmp", "1777", 64, 16384},
	{"/dev/shm", "1777", 16, 4096},
	{"/run/lock", "1777", 1, 256},
	{"/var/lib/php/sessions", "1733", 16, 16384},
}

// Options adjust Wrap.
type Options struct {
	// Keep are paths the command must see as they are: a SharedTmp
	// directory that holds one of them gets no tmpfs.
	Keep []string
}

// script mounts the procfs and the tmpfs mounts and becomes the program.
func script(o Options) string {
	parts := []string{procMount}
	for _, d := range SharedTmp {
		if fi, err := os.Stat(d.Path); err != nil || !fi.IsDir() || holds(d.Path, o.Keep) {
			continue
		}
		parts = append(parts, fmt.Sprintf("/bin/mount -t tmpfs -o nosuid,nodev,noexec,size=%dm,nr_inodes=%d,mode=%s aipress-tmp %s",
			d.SizeMiB, d.Inodes, d.Mode, d.Path))
	}
	return strings.Join(parts, " && ") + ` && exec "$@"`
}

// holds reports whether dir is one of paths or contains one.
func holds(dir string, paths []string) bool {
	for _, p := range paths {
		if rel, err := filepath.Rel(dir, p); err == nil && rel != ".." && !strings.HasPrefix(rel, "../") {
			return true
		}
	}
	return false
}

// Wrap rewrites cmd, which must not have been started, to run in a mount
// namespace of its own with a procfs that hides other users' processes and
// bounded tmpfs mounts over the machine's shared temporary directories (see
// the package documentation). A Credential in cmd.SysProcAttr is applied
// after the mounts (with setpriv) instead of before the first exec. Without
// root Wrap changes nothing.
func Wrap(cmd *exec.Cmd) error { return WrapWith(cmd, Options{}) }

// WrapWith is Wrap with options.
func WrapWith(cmd *exec.Cmd, o Options) error {
	if os.Geteuid() != 0 {
		return nil
	}
	if cmd.Process != nil {
		return errors.New("procns: command already started")
	}
	if cmd.Err != nil {
		return cmd.Err
	}
	args := []string{"unshare", "--mount", "--propagation", "slave", "--", shBin, "-c", script(o), "aipress-procns"}
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
