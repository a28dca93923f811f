package edgenode

import (
	"log/slog"
	"net/http"
	"path/filepath"

	"github.com/aipress/aipress/internal/platform/serve"
)

// MetricsTokenFile is the file in the edge's data directory that holds the
// bearer token of its metrics listener (`aipress edge --metrics`), unless
// --metrics-token-file names another: "aip_" and 48 hex digits, mode 0600,
// made on the first start and kept. Prometheus sends it from the same file
// (scrape config `authorization: {credentials_file: …}`, or
// `bearer_token_file` in older configs).
const MetricsTokenFile = serve.MetricsTokenFile

// metricsHandler is the handler of `aipress edge --metrics`: metrics
// at GET /metrics behind the token in tokenFile (empty:
// <dataDir>/MetricsTokenFile, created when missing). It returns the path
// of the token file too.
func metricsHandler(metrics http.Handler, dataDir, tokenFile string, log *slog.Logger) (http.Handler, string, error) {
	if tokenFile == "" {
		tokenFile = filepath.Join(dataDir, MetricsTokenFile)
	}
	h, err := serve.MetricsHandler(metrics, tokenFile, "the edge's metrics token file", log)
	if err != nil {
		return nil, "", err
	}
	return h, tokenFile, nil
}
