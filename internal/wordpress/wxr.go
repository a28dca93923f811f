package wordpress

import (
	"context"
	_ "embed"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"
)

//go:embed wxr.php
var wxrScript []byte

// WriteWXRScript writes the WXR import and export script into dir
// (root-owned, world-readable) and returns its path.
func WriteWXRScript(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("wxr script: %w", err)
	}
	p := filepath.Join(dir, "wxr.php")
	if err := os.WriteFile(p, wxrScript, 0o644); err != nil {
		return "", fmt.Errorf("wxr script: %w", err)
	}
	return p, nil
}

// WXRImported is what the WXR import script did.
type WXRImported struct {
	Authors      int            `json:"authors"`
	UsersCreated int            `json:"users_created"`
	Terms        int            `json:"terms"`
	Posts        int            `json:"posts"`
	PostsByType  map[string]int `json:"posts_by_type"`
	// Skipped are items a post of the same type, title and date stood
	// for already (the importer's rule): imported again, they are kept.
	Skipped       int      `json:"skipped"`
	Comments      int      `json:"comments"`
	MenuItems     int      `json:"menu_items"`
	Attachments   int      `json:"attachments"`
	Failures      []string `json:"failures"`
	FailuresTotal int      `json:"failures_total"`
	OK            bool     `json:"ok"`
	Error         string   `json:"error,omitempty"`
}

// wxrTimeout bounds one import or export run.
const wxrTimeout = 2 * time.Hour

// ImportWXR runs the script's import with records (JSON lines, package
// wxr) on its stdin and returns what it did.
func (r Runner) ImportWXR(ctx context.Context, script string, records io.Reader) (*WXRImported, error) {
	out, err := r.runIO(ctx, script, []string{"AIP_WXR_MODE=import"}, wxrTimeout, scriptIO{stdin: records})
	var res WXRImported
	if jerr := json.Unmarshal(lastLine(out), &res); jerr != nil || (!res.OK && res.Error == "") {
		if err != nil {
			return nil, fmt.Errorf("import WXR: %w", err)
		}
		return nil, fmt.Errorf("import WXR: %s", summarize(out))
	}
	if res.Error != "" {
		return &res, fmt.Errorf("import WXR: %s", res.Error)
	}
	if err != nil {
		return &res, fmt.Errorf("import WXR: %w", err)
	}
	return &res, nil
}

// ExportWXR runs WordPress's own export (export_wp) and writes it to w,
// at most max bytes.
func (r Runner) ExportWXR(ctx context.Context, script string, w io.Writer, max int64) error {
	if _, err := r.runIO(ctx, script, []string{"AIP_WXR_MODE=export"}, wxrTimeout, scriptIO{stdout: w, max: max}); err != nil {
		return fmt.Errorf("export WXR: %w", err)
	}
	return nil
}
