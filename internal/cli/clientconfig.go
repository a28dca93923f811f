package cli

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"github.com/aipress/aipress/internal/apiclient"
	"github.com/aipress/aipress/internal/store"
)

// ClientConfigFile is the name of the file, in the data directory, that
// holds the API URL and token for client commands ({"url","token"}).
const ClientConfigFile = apiclient.ConfigFile

// WriteClientConfig writes dataDir/client.json with mode 0600.
//
// The platform package cannot import cli (cli imports platform), so it
// should call apiclient.WriteConfig, which this wraps.
func WriteClientConfig(dataDir, url, token string) error {
	return apiclient.WriteConfig(dataDir, url, token)
}

// clientFlags are the connection flags of client commands.
type clientFlags struct {
	url   string
	token string
}

// newClient finds the API: --url/--token, else AIPRESS_URL/AIPRESS_TOKEN,
// else client.json in $AIPRESS_DATA_DIR or ./aipress-data. Each of URL and
// token is resolved on its own, in that order.
func newClient(d deps, f clientFlags) (*apiclient.Client, error) {
	url, token := f.url, f.token
	if url == "" {
		url = d.getenv(EnvURL)
	}
	if token == "" {
		token = d.getenv(EnvToken)
	}
	if url == "" || token == "" {
		dir := d.getenv(EnvDataDir)
		if dir == "" {
			dir = DefaultDataDir
		}
		cfg, err := apiclient.ReadConfig(dir)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return nil, fmt.Errorf("cannot find the AIPress API: pass --url and --token, set %s and %s, "+
				"or run from the directory where 'aipress up' runs (it writes %s)", EnvURL, EnvToken,
				filepath.Join(dir, ClientConfigFile))
		case err != nil:
			return nil, err
		}
		if url == "" {
			url = cfg.URL
		}
		if token == "" {
			token = cfg.Token
		}
		if url == "" || token == "" {
			return nil, fmt.Errorf("%s: url and token are required", filepath.Join(dir, ClientConfigFile))
		}
	}
	c := apiclient.New(url, token)
	c.Channel = store.ChannelCLI
	return c, nil
}
