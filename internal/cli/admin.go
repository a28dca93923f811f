package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/aipress/aipress/internal/platform/controlplane"
)

// newAdminCmd is `aipress admin`: the platform operator's chores on a data
// directory (no API token needed, the store is opened directly).
func newAdminCmd(d deps) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "admin",
		Short: "Operator chores on a data directory (reset the portal's admin password)",
	}
	var dataDir, storeSpec string
	reset := &cobra.Command{
		Use:   "reset-password",
		Short: "Give admin@localhost a new portal password and print it",
		Long: `Give the bootstrap admin user (` + controlplane.AdminEmail + `) a new random password, store only its hash,
write it to <data-dir>/` + controlplane.AdminPasswordFile + ` (mode 0600) and print it. It also ends a lock-out
after failed sign-ins. Run it on the machine of the data directory, as the user that runs
'aipress up' (root); the platform may be running.

'aipress up' gives that user a password on its first start and writes it to the same file;
a restart keeps it.`,
		Example: `  aipress admin reset-password
  aipress admin reset-password --data-dir /srv/aipress`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if dataDir == "" {
				dataDir = d.getenv(EnvDataDir)
			}
			if dataDir == "" {
				dataDir = DefaultDataDir
			}
			if storeSpec == "" {
				storeSpec = d.getenv(EnvStore)
			}
			pw, path, err := controlplane.ResetAdminPassword(cmd.Context(), storeSpec, dataDir)
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "New password for %s: %s\n(also in %s)\n", controlplane.AdminEmail, pw, path)
			return nil
		},
	}
	reset.Flags().StringVar(&dataDir, "data-dir", "", "the platform's data directory (env "+EnvDataDir+", default "+DefaultDataDir+")")
	reset.Flags().StringVar(&storeSpec, "store", "", "control-plane store: empty for SQLite in the data dir, or a postgres:// URL (env "+EnvStore+")")
	cmd.AddCommand(reset)
	return cmd
}
