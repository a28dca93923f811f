package procns_test

import (
	"bytes"
	"io"
	"os"
	"os/exec"
	"os/user"
	"strconv"
	"strings"
	"syscall"
	"testing"

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

// listing runs a shell as nobody that prints its own pid, then whether it
// sees this test's process (root's) in /proc and can read its command line.
func listing(t *testing.T, isolated bool) (self bool, rootSeen bool, rootCmdline bool) {
	t.Helper()
	me := strconv.Itoa(os.Getpid())
	cmd := exec.Command("/bin/sh", "-c", `
		[ -e /proc/$$ ] && echo self
		ls /proc | grep -qx "$1" && echo listed
		[ -e /proc/$1 ] && echo exists
		cat /proc/$1/cmdline >/dev/null 2>&1 && echo cmdline
		true`, "sh", me)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: nobody(t)}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	var err error
	if isolated {
		err = procns.Run(cmd)
	} else {
		err = cmd.Run()
	}
	if err != nil {
		t.Fatalf("isolated=%v: %v: %s", isolated, err, out.String())
	}
	o := out.String()
	return strings.Contains(o, "self"), strings.Contains(o, "listed") || strings.Contains(o, "exists"), strings.Contains(o, "cmdline")
}

// A child started with procns sees its own processes in /proc but not
// root's; started plainly (the baseline, which shows the check works) it
// sees and reads both.
func TestHidesOtherUsersProcesses(t *testing.T) {
	self, seen, cmdline := listing(t, false)
	if !self || !seen || !cmdline {
		t.Fatalf("baseline: self %v, root's process seen %v, cmdline read %v; want all true", self, seen, cmdline)
	}
	self, seen, cmdline = listing(t, true)
	if !self {
		t.Error("isolated child does not see itself in /proc")
	}
	if seen || cmdline {
		t.Errorf("isolated child sees root's process (%v) or reads its cmdline (%v)", seen, cmdline)
	}
	// The host's /proc is untouched.
	if _, err := os.Stat("/proc/1"); err != nil {
		t.Errorf("the test's own /proc lost pid 1: %v", err)
	}
}

// The thread that forked a child lives until the child exits, so a
// parent-death signal does not kill it early: children that wait for their
// stdin to close exit normally, however long that takes. (Several, because a
// locked goroutine that lands on the main thread parks it rather than end
// it, which would hide the mistake for that one.)
func TestChildKeepsParentDeathSignal(t *testing.T) {
	cred := nobody(t)
	type child struct {
		in   io.WriteCloser
		out  *bytes.Buffer
		done <-chan error
	}
	var children []child
	for i := 0; i < 4; i++ {
		cmd := exec.Command("/bin/cat")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGKILL}
		in, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		out := &bytes.Buffer{}
		cmd.Stdout = out
		done, err := procns.Start(cmd)
		if err != nil {
			t.Fatal(err)
		}
		children = append(children, child{in, out, done})
	}
	// Let the runtime shuffle goroutines and threads meanwhile.
	for i := 0; i < 20; i++ {
		if err := exec.Command("/bin/true").Run(); err != nil {
			t.Fatal(err)
		}
	}
	for i, c := range children {
		io.WriteString(c.in, "still here")
		c.in.Close()
		if err := <-c.done; err != nil {
			t.Errorf("child %d ended with %v (killed by its parent-death signal?)", i, err)
		} else if c.out.String() != "still here" {
			t.Errorf("child %d wrote %q", i, c.out.String())
		}
	}
}

// A failing start is reported as an error.
func TestStartError(t *testing.T) {
	nobody(t)
	if _, err := procns.Start(exec.Command("/nonexistent/program")); err == nil {
		t.Fatal("starting a missing program succeeded")
	}
}
