// Package cli implements the aipress command line: `aipress up` runs the
// platform, `aipress site ...` talks to its API.
package cli

import (
	"context"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/aipress/aipress/internal/platform/controlplane"
	"github.com/aipress/aipress/internal/platform/edgenode"
	"github.com/aipress/aipress/internal/platform/shardagent"
	"github.com/aipress/aipress/internal/platform/up"
	"github.com/aipress/aipress/internal/sitefw"
)

// Environment variables read by the CLI.
const (
	EnvDataDir   = "AIPRESS_DATA_DIR"
	EnvStore     = "AIPRESS_STORE"
	EnvHTTP      = "AIPRESS_HTTP"
	EnvAPI       = "AIPRESS_API"
	EnvHTTPS     = "AIPRESS_HTTPS"
	EnvACMECA    = "AIPRESS_ACME_CA"
	EnvACMEEmail = "AIPRESS_ACME_EMAIL"
	EnvRateIP    = "AIPRESS_RATE_IP"
	EnvRateSite  = "AIPRESS_RATE_SITE"
	EnvBackupURL = "AIPRESS_BACKUP_URL"
	// EnvCatalogueURL is --catalogue-url of up and shard.
	EnvCatalogueURL = "AIPRESS_CATALOGUE_URL"
	EnvPlans        = "AIPRESS_PLANS"
	EnvURL          = "AIPRESS_URL"
	EnvToken        = "AIPRESS_TOKEN"
)

// Defaults of `aipress up`.
const (
	DefaultDataDir  = "./aipress-data"
	DefaultHTTPAddr = ":8080"
	DefaultAPIAddr  = "127.0.0.1:7070"
)

// deps are the CLI's outside-world dependencies, replaced in tests.
type deps struct {
	now    func() time.Time
	getenv func(string) string
	run    func(context.Context, up.Config) error
	// The separate roles: aipress server, shard and edge.
	runServer func(context.Context, controlplane.Config) error
	runShard  func(context.Context, shardagent.Config, shardagent.AgentConfig) error
	runEdge   func(context.Context, edgenode.RunConfig) error
	poll      time.Duration // wait polling interval
	// siteFirewall applies a site-user policy to an nftables table, or
	// deletes the table when the policy is nil (aipress sitefw).
	siteFirewall func(table string, p *sitefw.Policy) error
}

func defaultDeps() deps {
	return deps{now: time.Now, getenv: os.Getenv, run: up.Run, poll: 500 * time.Millisecond,
		runServer: controlplane.Run, runShard: shardagent.Run, runEdge: edgenode.Run,
		siteFirewall: applySiteFirewall}
}

// NewRoot returns the aipress root command. Errors are returned by Execute,
// not printed: the caller prints "error: <err>" and exits non-zero.
func NewRoot(version string) *cobra.Command {
	return newRoot(version, defaultDeps())
}

func newRoot(version string, d deps) *cobra.Command {
	root := &cobra.Command{
		Use:   "aipress",
		Short: "AIPress: WordPress hosting platform",
		Long: `AIPress runs and manages WordPress sites.

Start the all-in-one platform (API, one shard and the edge) with 'aipress up',
then manage sites with 'aipress site ...' from another terminal.`,
		Example: `  aipress up
  aipress site create blog.localhost --title "My blog" --admin-email me@example.com
  aipress site list`,
		Version:       version,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newUpCmd(d), newSiteCmd(d), newServerCmd(d), attachShardAgent(newShardCmd(d), d), attachEdge(newEdgeCmd(d), d), newTokenCmd(d),
		newBackupCmd(d), newJobCmd(d), newSitefwCmd(d), newAuditCmd(d), newUsageCmd(d), newCostCmd(d), newLoginCmd(d), newLogoutCmd(d),
		newOrgCmd(d), newInviteCmd(d), newUserCmd(d), newSecretsCmd(d), newAskCmd(d), newAdminCmd(d), newArtefactCmd(d),
		newApplyCmd(d), newDiffCmd(d), newSchemaCmd(), newFleetCmd(d), newSLACmd(d), newCapacityCmd())
	return root
}
