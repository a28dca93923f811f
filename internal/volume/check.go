package volume

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// Check reports why this host cannot give sites volumes, nil when it can:
// it needs root, loop devices and e2fsprogs, and then proves it by making,
// mounting, writing and removing a small volume in a directory of its own
// below dir.
func Check(ctx context.Context, dir string) error {
	if os.Geteuid() != 0 {
		return errors.New("not running as root")
	}
	if _, err := os.Stat("/dev/loop-control"); err != nil {
		return fmt.Errorf("no loop devices: %w", err)
	}
	for _, t := range tools {
		if _, err := lookTool(t); err != nil {
			return err
		}
	}
	// What a check a crash interrupted left (maybe mounted).
	old, _ := filepath.Glob(filepath.Join(dir, ".volume-check-*"))
	for _, d := range old {
		if err := UnmountUnder(d); err != nil {
			return err
		}
		if err := os.RemoveAll(d); err != nil {
			return err
		}
	}
	probe, err := os.MkdirTemp(dir, ".volume-check-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(probe)
	v := Volume{Image: filepath.Join(probe, "disk.img"), Dir: filepath.Join(probe, "mnt")}
	if err := os.Mkdir(v.Dir, 0o700); err != nil {
		return err
	}
	defer v.Remove() //nolint:errcheck // best effort; RemoveAll follows
	if err := v.Create(ctx, MinSize); err != nil {
		return err
	}
	if err := v.Mount(ctx); err != nil {
		return err
	}
	if _, err := v.SetLimit(ctx, MinSize/2); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(v.Dir, "probe"), []byte("ok"), 0o600); err != nil {
		return fmt.Errorf("write to a test volume: %w", err)
	}
	return v.Remove()
}
