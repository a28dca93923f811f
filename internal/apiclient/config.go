package apiclient

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// ConfigFile is the name of the client configuration file that `aipress up`
// writes into its data directory on first start, and that CLI client
// commands read when no --url/--token or AIPRESS_URL/AIPRESS_TOKEN is given.
const ConfigFile = "client.json"

// Config is the content of ConfigFile.
type Config struct {
	URL   string `json:"url"`
	Token string `json:"token"`
}

// WriteConfig writes dataDir/ConfigFile (mode 0600, atomically), creating
// dataDir (0700) if needed.
func WriteConfig(dataDir, url, token string) error {
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return fmt.Errorf("write client config: %w", err)
	}
	b, err := json.MarshalIndent(Config{URL: url, Token: token}, "", "  ")
	if err != nil {
		return fmt.Errorf("write client config: %w", err)
	}
	f, err := os.CreateTemp(dataDir, ConfigFile+".tmp*")
	if err != nil {
		return fmt.Errorf("write client config: %w", err)
	}
	defer os.Remove(f.Name()) // no-op after the rename
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("write client config: %w", err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("write client config: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write client config: %w", err)
	}
	if err := os.Rename(f.Name(), filepath.Join(dataDir, ConfigFile)); err != nil {
		return fmt.Errorf("write client config: %w", err)
	}
	return nil
}

// ReadConfig reads dataDir/ConfigFile. A missing file gives an error
// satisfying errors.Is(err, fs.ErrNotExist).
func ReadConfig(dataDir string) (*Config, error) {
	path := filepath.Join(dataDir, ConfigFile)
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read client config: %w", err)
	}
	var c Config
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("read client config %s: %w", path, err)
	}
	return &c, nil
}
