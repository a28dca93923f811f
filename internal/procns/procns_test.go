package procns_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aipress/aipress/internal/procns"
)

// nobody returns the credentials of the user nobody, or skips.
func nobody(t *testing.T) *syscall.Credential {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (other users' processes, mount namespaces)")
	}
	u, err := user.Lookup("nobody")
	if err != nil {
		t.Skipf("no user nobody: %v", err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
}

// A shell run as nobody reports its own identity and whether it sees this
// test's process (root's) in /proc and can read its command line; wrapped
// it sees only its own user's, plain (the baseline, which shows the check
// works) everything.
func TestHidesOtherUsersProcesses(t *testing.T) {
	cred := nobody(t)
	if err := procns.Check(context.Background()); err != nil {
		t.Fatal(err)
	}
	me := strconv.Itoa(os.Getpid())
	for _, tc := range []struct {
		name    string
		wrap    bool
		wantSee bool
	}{{"plain", false, true}, {"wrapped", true, false}} {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command("/bin/sh", "-c", `
				echo "id $(id -u) $(id -g) $(id -G)"
				[ -e /proc/$$ ] && echo self
				ls /proc | grep -qx "$1" && echo listed
				[ -e /proc/$1 ] && echo exists
				cat /proc/$1/cmdline >/dev/null 2>&1 && echo cmdline
				cat /proc/loadavg >/dev/null && echo loadavg
				true`, "sh", me)
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
			if tc.wrap {
				if err := procns.Wrap(cmd); err != nil {
					t.Fatal(err)
				}
			}
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%v: %s", err, out)
			}
			o := string(out)
			if want := fmt.Sprintf("id %d %d %d\n", cred.Uid, cred.Gid, cred.Gid); !strings.HasPrefix(o, want) {
				t.Errorf("identity: %q, want %q (no supplementary groups)", strings.SplitN(o, "\n", 2)[0], want)
			}
			if !strings.Contains(o, "self") || !strings.Contains(o, "loadavg") {
				t.Errorf("does not see itself or /proc/loadavg:\n%s", o)
			}
			for _, w := range []string{"listed", "exists", "cmdline"} {
				if strings.Contains(o, w) != tc.wantSee {
					t.Errorf("root's process %s: %v, want %v", w, strings.Contains(o, w), tc.wantSee)
				}
			}
		})
	}
	if _, err := os.Stat("/proc/1"); err != nil {
		t.Errorf("the test's own /proc lost pid 1: %v", err)
	}
}

// The wrapped program keeps the process: its pid is the one started, and
// its command line is the program's (what internal/supervise matches).
func TestKeepsProcess(t *testing.T) {
	nobody(t)
	cmd := exec.Command("/bin/sleep", "300")
	if err := procns.Wrap(cmd); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { cmd.Process.Kill(); cmd.Wait() }()
	var cmdline []byte
	for deadline := time.Now().Add(10 * time.Second); ; {
		cmdline, _ = os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", cmd.Process.Pid))
		if bytes.HasPrefix(cmdline, []byte("/bin/sleep\x00")) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d never became sleep: %q", cmd.Process.Pid, cmdline)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err == nil || !strings.Contains(err.Error(), "terminated") {
		t.Errorf("sleep after SIGTERM: %v", err)
	}
}

// A program run as another user still dies with its parent: a helper
// process starts a wrapped sleep as nobody with a parent-death signal,
// prints its pid and exits; the sleep must follow.
func TestParentDeathSignalKept(t *testing.T) {
	if os.Getenv("PROCNS_HELPER") == "1" {
		return
	}
	nobody(t)
	helper := exec.Command(os.Args[0], "-test.run=^TestPdeathHelper$")
	helper.Env = append(os.Environ(), "PROCNS_HELPER=1")
	out, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	var pid int
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "child "); ok {
			pid, _ = strconv.Atoi(v)
		}
	}
	helper.Wait()
	if pid == 0 {
		t.Fatal("helper reported no child")
	}
	for deadline := time.Now().Add(10 * time.Second); ; {
		st, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil || strings.Contains(string(st), ") Z ") {
			return // gone (or a zombie waiting for its new parent)
		}
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("child %d outlived its parent: %s", pid, st)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPdeathHelper is the helper process of TestParentDeathSignalKept.
func TestPdeathHelper(t *testing.T) {
	if os.Getenv("PROCNS_HELPER") != "1" {
		t.Skip("helper process")
	}
	cmd := exec.Command("/bin/sleep", "300")
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: nobody(t), Pdeathsig: syscall.SIGKILL}
	if err := procns.Wrap(cmd); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// Exit only once the wrapper became sleep (setpriv has run).
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", cmd.Process.Pid))
		if bytes.HasPrefix(b, []byte("/bin/sleep\x00")) {
			break
		}
	}
	fmt.Printf("child %d\n", cmd.Process.Pid)
	os.Exit(0)
}

// Without CAP_SYS_ADMIN (dropped from the bounding set, as a container
// would) the wrapper fails and Check says why.
func TestCheckWithoutCapability(t *testing.T) {
	nobody(t)
	// setpriv drops CAP_SYS_ADMIN from the bounding set and the current
	// sets, then runs this test binary's helper, which calls Check.
	cmd := exec.Command("/usr/bin/setpriv", "--bounding-set", "-sys_admin", "--inh-caps", "-sys_admin", "--",
		os.Args[0], "-test.run=^TestCheckHelper$")
	cmd.Env = append(os.Environ(), "PROCNS_HELPER=1")
	out, _ := cmd.CombinedOutput()
	if !strings.Contains(string(out), "CHECK needs a mount namespace (CAP_SYS_ADMIN)") {
		t.Errorf("Check without CAP_SYS_ADMIN:\n%s", out)
	}
}

// TestCheckHelper is the helper process of TestCheckWithoutCapability.
func TestCheckHelper(t *testing.T) {
	if os.Getenv("PROCNS_HELPER") != "1" {
		t.Skip("helper process")
	}
	if err := procns.Check(context.Background()); err != nil {
		fmt.Println("CHECK", strings.SplitN(err.Error(), "which ", 2)[1])
	} else {
		fmt.Println("CHECK ok")
	}
}

// The machine's shared temporary directories are small tmpfs mounts of the
// namespace: a site's PHP cannot fill the machine's /tmp or /dev/shm, and
// what it leaves there is gone with the namespace. A directory holding a
// path the command must see (Keep) is left alone; plain (the baseline) the
// command sees the machine's own.
func TestSharedTmpBounded(t *testing.T) {
	cred := nobody(t)
	keep := t.TempDir() // under /tmp, as a test's data directory is
	probe := func(t *testing.T, wrap bool, o procns.Options) map[string]string {
		t.Helper()
		// df's size of each directory (KiB), and whether a 20 MiB file fits in /dev/shm.
		cmd := exec.Command("/bin/sh", "-c", `
			for d in /tmp /var/tmp /dev/shm; do echo "$d $(df -k --output=size "$d" | tail -1 | tr -d ' ')"; done
			if dd if=/dev/zero of=/dev/shm/aipress-procns-$$ bs=1M count=20 2>/dev/null; then echo "shm-fill ok"; else echo "shm-fill refused"; fi
			rm -f /dev/shm/aipress-procns-$$`)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
		if wrap {
			if err := procns.WrapWith(cmd, o); err != nil {
				t.Fatal(err)
			}
		}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %s", err, out)
		}
		m := map[string]string{}
		for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			k, v, _ := strings.Cut(line, " ")
			m[k] = v
		}
		return m
	}
	kib := func(s string) int { n, _ := strconv.Atoi(s); return n }
	plain := probe(t, false, procns.Options{})
	if plain["shm-fill"] != "ok" || kib(plain["/dev/shm"]) <= 16<<10 {
		t.Skipf("baseline: the machine's /dev/shm takes 20 MiB? %v (nothing to compare with)", plain)
	}
	wrapped := probe(t, true, procns.Options{Keep: []string{keep}})
	if wrapped["shm-fill"] != "refused" || kib(wrapped["/dev/shm"]) > 16<<10 || kib(wrapped["/var/tmp"]) > 64<<10 {
		t.Errorf("wrapped: %v, want /dev/shm ≤ 16 MiB (a 20 MiB file refused) and /var/tmp ≤ 64 MiB", wrapped)
	}
	if wrapped["/tmp"] != plain["/tmp"] {
		t.Errorf("/tmp holds a kept path but was covered: %s KiB, the machine's %s KiB", wrapped["/tmp"], plain["/tmp"])
	}
	if w := probe(t, true, procns.Options{}); kib(w["/tmp"]) > 64<<10 {
		t.Errorf("/tmp without a kept path: %s KiB, want ≤ 64 MiB", w["/tmp"])
	}
	// The kept path is still there, and nothing leaked out.
	if _, err := os.Stat(keep); err != nil {
		t.Fatal(err)
	}
}
