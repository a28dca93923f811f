package cli

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/aipress/aipress/internal/assistant"
)

func newAskCmd(d deps) *cobra.Command {
	var f clientFlags
	var yes bool
	var output string
	cmd := &cobra.Command{
		Use:   `ask "REQUEST" [--yes] [-o json]`,
		Short: "Ask the assistant, in plain language, to do something",
		Long: `Map a plain request to API calls with the built-in offline engine and run
them with your own token (the API decides what you may do). Calls are audited
with channel "assistant" and request IDs that start with the conversation id.

Destructive or costly steps (delete, restore, clone, move, suspend) are only
proposed: they run with --yes, or after you answer y when stdin is a
terminal. Secrets in answers (passwords, tokens, keys) are redacted.
A request the engine does not understand is answered with what it can do.`,
		Example: `  aipress ask "list my sites"
  aipress ask "back up every site of acme"
  aipress ask "delete blog.localhost" --yes
  aipress ask "what's the status of blog.localhost" -o json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "text" && output != "json" {
				return fmt.Errorf("unknown output format %q: use text or json", output)
			}
			plan, err := assistant.Parse(args[0])
			if err != nil {
				return err
			}
			c, err := newClient(d, f)
			if err != nil {
				return err
			}
			l, err := assistant.NewLayer(assistant.Config{BaseURL: c.BaseURL, Token: c.Token, HTTPClient: c.HTTPClient})
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			results, runErr := assistant.Run(ctx, l, plan)
			out := cmd.OutOrStdout()
			for i := range results {
				p := results[i].Result
				if p == nil || p.Proposal == nil {
					continue
				}
				fmt.Fprintf(cmd.ErrOrStderr(), "Proposed: %s %s  [%s]\n", p.Proposal.Request.Method, p.Proposal.Request.Path, p.Proposal.Summary)
				ok := yes
				if !ok && isTerminal(cmd.InOrStdin()) {
					fmt.Fprint(cmd.ErrOrStderr(), "Do it? [y/N] ")
					line, _ := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
					ok = strings.EqualFold(strings.TrimSpace(line), "y") || strings.EqualFold(strings.TrimSpace(line), "yes")
				}
				if !ok {
					fmt.Fprintln(cmd.ErrOrStderr(), "Not done: confirm with --yes.")
					continue
				}
				res, err := l.Confirm(ctx, p.Proposal.ID)
				if err != nil {
					results[i].Error = err.Error()
					runErr = err
					break
				}
				results[i].Result = res
			}
			if output == "json" {
				b, err := json.MarshalIndent(map[string]any{"conversation": l.Conversation(), "plan": plan, "results": results}, "", "  ")
				if err != nil {
					return fmt.Errorf("encode json: %w", err)
				}
				fmt.Fprintf(out, "%s\n", b)
			} else {
				for _, r := range results {
					if r.Result == nil || r.Result.Proposal != nil {
						continue
					}
					b, _ := json.MarshalIndent(r.Result.Data, "", "  ")
					fmt.Fprintf(out, "%s %v: HTTP %d\n%s\n", r.Step.Tool, r.Args, r.Result.Status, b)
				}
			}
			return runErr
		},
	}
	cmd.Flags().StringVar(&f.url, "url", "", "API base URL (env "+EnvURL+")")
	cmd.Flags().StringVar(&f.token, "token", "", "API token (env "+EnvToken+")")
	cmd.Flags().BoolVar(&yes, "yes", false, "perform destructive steps without asking")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}

func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
