// Package caps reports which Linux capabilities this process has in
// effect, for code that must not ask a tool to do what it would be refused
// (a loop device's mount, a process priority below the current one). It is
// a few lines over capget(2): no library of the module's set offers it
// without pulling in more than this.
package caps

import "golang.org/x/sys/unix"

// Has reports whether this process has capability c (unix.CAP_*) in its
// effective set; false when the set cannot be read.
func Has(c int) bool {
	if c < 0 || c >= 64 {
		return false
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return false
	}
	return data[c/32].Effective&(1<<(uint(c)%32)) != 0
}
