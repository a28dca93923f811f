package volume

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// attach attaches image to a free loop device with autoclear (the device
// is released when its last user closes it) and returns the device's path
// and an open file on it, which keeps it attached until closed.
func attach(image string) (string, *os.File, error) {
	ctl, err := os.OpenFile("/dev/loop-control", os.O_RDWR, 0)
	if err != nil {
		return "", nil, fmt.Errorf("volume: loop devices: %w", err)
	}
	defer ctl.Close()
	back, err := os.OpenFile(image, os.O_RDWR, 0)
	if err != nil {
		return "", nil, fmt.Errorf("volume: %w", err)
	}
	defer back.Close()
	// Another process may take the device LOOP_CTL_GET_FREE named before
	// we configure it (EBUSY): ask again.
	for range 32 {
		n, err := unix.IoctlRetInt(int(ctl.Fd()), unix.LOOP_CTL_GET_FREE)
		if err != nil {
			return "", nil, fmt.Errorf("volume: no free loop device: %w", err)
		}
		dev := "/dev/loop" + strconv.Itoa(n)
		f, err := openLoop(dev, n)
		if err != nil {
			return "", nil, err
		}
		cfg := unix.LoopConfig{Fd: uint32(back.Fd()), Size: 4096}
		cfg.Info.Flags = unix.LO_FLAGS_AUTOCLEAR | unix.LO_FLAGS_DIRECT_IO
		copy(cfg.Info.File_name[:len(cfg.Info.File_name)-1], image)
		err = unix.IoctlLoopConfigure(int(f.Fd()), &cfg)
		if errors.Is(err, unix.EINVAL) {
			// No direct I/O on the image's filesystem: through the page
			// cache then.
			cfg.Size = 0
			cfg.Info.Flags = unix.LO_FLAGS_AUTOCLEAR
			err = unix.IoctlLoopConfigure(int(f.Fd()), &cfg)
		}
		if errors.Is(err, unix.EBUSY) {
			f.Close()
			continue
		}
		if err != nil {
			f.Close()
			return "", nil, fmt.Errorf("volume: attach %s to %s: %w", image, dev, err)
		}
		return dev, f, nil
	}
	return "", nil, errors.New("volume: no free loop device after 32 tries")
}

// openLoop opens loop device n, making its node when /dev is not a
// devtmpfs that makes it.
func openLoop(dev string, n int) (*os.File, error) {
	f, err := os.OpenFile(dev, os.O_RDWR, 0)
	if errors.Is(err, os.ErrNotExist) {
		if err := unix.Mknod(dev, unix.S_IFBLK|0o600, int(unix.Mkdev(7, uint32(n)))); err != nil && !errors.Is(err, os.ErrExist) {
			return nil, fmt.Errorf("volume: make %s: %w", dev, err)
		}
		f, err = os.OpenFile(dev, os.O_RDWR, 0)
	}
	if err != nil {
		return nil, fmt.Errorf("volume: %w", err)
	}
	return f, nil
}

// backs reports whether loop device dev is attached to the file image.
func backs(image, dev string) bool {
	if !strings.HasPrefix(dev, "/dev/loop") {
		return false
	}
	var st unix.Stat_t
	if err := unix.Stat(image, &st); err != nil {
		return false
	}
	f, err := os.Open(dev)
	if err != nil {
		return false
	}
	defer f.Close()
	info, err := unix.IoctlLoopGetStatus64(int(f.Fd()))
	if err != nil {
		return false
	}
	return info.Device == st.Dev && info.Inode == st.Ino
}

// loopOf returns the loop device image is attached to, if any.
func loopOf(image string) string {
	ents, err := os.ReadDir("/sys/block")
	if err != nil {
		return ""
	}
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), "loop") {
			continue
		}
		// Only attached devices have a backing file.
		if _, err := os.Stat(filepath.Join("/sys/block", e.Name(), "loop", "backing_file")); err != nil {
			continue
		}
		if dev := "/dev/" + e.Name(); backs(image, dev) {
			return dev
		}
	}
	return ""
}
