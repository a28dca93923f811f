// Command aipress is the AIPress WordPress hosting platform and its CLI.
package main

import (
	"context"
	"fmt"
	"os"

	"github.com/aipress/aipress/internal/cli"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	if err := cli.NewRoot(version).ExecuteContext(context.Background()); err != nil {
		if err.Error() != "" {
			fmt.Fprintln(os.Stderr, "error:", err)
		}
		os.Exit(cli.ExitCode(err))
	}
}
