// Package fsperm holds the few file-permission helpers the platform needs to
// run sites under their own Unix users.
package fsperm

import (
	"fmt"
	"os"
	"path/filepath"
)

// EnsureTraversable makes every directory from / down to dir searchable
// (o+x, never o+r) so that per-site Unix users and the mysql user can reach
// paths below dir. It returns the directories it changed.
func EnsureTraversable(dir string) ([]string, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("traversable %s: %w", dir, err)
	}
	var changed []string
	for p := abs; ; p = filepath.Dir(p) {
		fi, err := os.Stat(p)
		if err != nil {
			return changed, fmt.Errorf("traversable %s: %w", p, err)
		}
		if fi.IsDir() && fi.Mode().Perm()&0o001 == 0 {
			if err := os.Chmod(p, fi.Mode().Perm()|0o001); err != nil {
				return changed, fmt.Errorf("traversable %s: %w", p, err)
			}
			changed = append(changed, p)
		}
		if p == filepath.Dir(p) {
			return changed, nil
		}
	}
}
