package cli

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/aipress/aipress/internal/platform"
)

// upFile is the YAML config file of `aipress up --config FILE`. Unknown keys
// are an error.
type upFile struct {
	DataDir string `json:"data_dir"`
	HTTP    string `json:"http"`
	API     string `json:"api"`
}

func loadUpFile(path string) (upFile, error) {
	var f upFile
	b, err := os.ReadFile(path)
	if err != nil {
		return f, fmt.Errorf("config file: %w", err)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return f, nil
	}
	if err := yaml.UnmarshalStrict(b, &f); err != nil {
		return f, fmt.Errorf("config file %s: %w", path, err)
	}
	return f, nil
}

type upFlags struct {
	configFile string
	dataDir    string
	httpAddr   string
	apiAddr    string
	logLevel   string
}

// resolveUp computes the platform configuration with precedence
// flag > environment > config file > default.
func resolveUp(cmd *cobra.Command, d deps, f upFlags) (platform.Config, error) {
	var file upFile
	if f.configFile != "" {
		var err error
		if file, err = loadUpFile(f.configFile); err != nil {
			return platform.Config{}, err
		}
	}
	pick := func(flag, flagVal, env, fileVal, def string) string {
		if cmd.Flags().Changed(flag) {
			return flagVal
		}
		if v := d.getenv(env); v != "" {
			return v
		}
		if fileVal != "" {
			return fileVal
		}
		return def
	}
	cfg := platform.Config{
		DataDir:  pick("data-dir", f.dataDir, EnvDataDir, file.DataDir, DefaultDataDir),
		HTTPAddr: pick("http", f.httpAddr, EnvHTTP, file.HTTP, DefaultHTTPAddr),
		APIAddr:  pick("api", f.apiAddr, EnvAPI, file.API, DefaultAPIAddr),
	}
	if cfg.DataDir == "" || cfg.HTTPAddr == "" || cfg.APIAddr == "" {
		return cfg, fmt.Errorf("--data-dir, --http and --api must not be empty")
	}
	return cfg, nil
}

func newUpCmd(d deps) *cobra.Command {
	var f upFlags
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Run the all-in-one platform (API, shard and edge) in the foreground",
		Long: `Run the control-plane API, one local shard and the edge in this process
until interrupted (Ctrl-C or SIGTERM), then stop everything it started.

On first start it writes <data-dir>/client.json with the API URL and an admin
token, which 'aipress site ...' commands run from the same directory pick up.

Settings are taken, in order of precedence, from flags, environment variables
(AIPRESS_DATA_DIR, AIPRESS_HTTP, AIPRESS_API), a YAML config file (--config)
with the keys data_dir, http and api (unknown keys are an error), and the
defaults.`,
		Example: `  aipress up
  aipress up --http :80 --data-dir /var/lib/aipress
  AIPRESS_API=0.0.0.0:7070 aipress up
  aipress up --config aipress.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := resolveUp(cmd, d, f)
			if err != nil {
				return err
			}
			var level slog.Level
			if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
				return fmt.Errorf("--log-level: %w", err)
			}
			cfg.Logger = slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
			cfg.Version = cmd.Root().Version
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return d.run(ctx, cfg)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.configFile, "config", "", "YAML config file (keys: data_dir, http, api)")
	fl.StringVar(&f.dataDir, "data-dir", DefaultDataDir, "directory for all state (env "+EnvDataDir+")")
	fl.StringVar(&f.httpAddr, "http", DefaultHTTPAddr, "edge listen address for site traffic (env "+EnvHTTP+")")
	fl.StringVar(&f.apiAddr, "api", DefaultAPIAddr, "control-plane API listen address (env "+EnvAPI+")")
	fl.StringVar(&f.logLevel, "log-level", "info", "log level: debug, info, warn or error")
	return cmd
}
