package cli

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/aipress/aipress/internal/api"
)

func newAskCmd(d deps) *cobra.Command {
	var f clientFlags
	var yes bool
	var output, conversation string
	cmd := &cobra.Command{
		Use:   `ask "REQUEST" [--yes] [-o json]`,
		Short: "Ask the assistant, in plain language, to do something",
		Long: `Send a request to the server's assistant (POST /v1/assistant/chat), which
answers with the provider the server is configured with (offline rules, Gemini
or an OpenAI-compatible model; see 'aipress up --help', --assistant-provider).
The assistant acts with your own token (the API decides what you may do);
its calls are audited with channel "assistant" and request IDs that start
with the conversation id.

The answer's text and its tool calls are printed as they arrive. Destructive
or costly steps (delete, restore, clone, move, suspend; create a site, take
a backup) are only proposed: they run with --yes, or after you answer y
when stdin is a terminal.
Secrets in answers (passwords, tokens, keys) are redacted. The command fails
when a call failed or the assistant reported an error.`,
		Example: `  aipress ask "list my sites"
  aipress ask "back up every site of acme"
  aipress ask "delete blog.localhost" --yes
  aipress ask "what's the status of blog.localhost" -o json
  aipress ask --conversation cnv-0123456789abcdef "and its backups?"`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if output != "text" && output != "json" {
				return fmt.Errorf("unknown output format %q: use text or json", output)
			}
			c, err := newClient(d, f)
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			out, errw := cmd.OutOrStdout(), cmd.ErrOrStderr()
			var all []api.AssistantEvent
			var proposals []api.AssistantEvent
			var failures []string
			inText := false
			on := func(ev api.AssistantEvent) error {
				all = append(all, ev)
				switch ev.Type {
				case api.EventConversation:
					conversation = ev.ID
				case api.EventProposal:
					proposals = append(proposals, ev)
				case api.EventError:
					failures = append(failures, ev.Message)
				case api.EventToolResult:
					if ev.Error != "" {
						failures = append(failures, ev.Error)
					}
				}
				if output == "json" {
					return nil
				}
				if ev.Type != api.EventText && inText {
					fmt.Fprintln(out)
					inText = false
				}
				switch ev.Type {
				case api.EventText:
					fmt.Fprint(out, ev.Text)
					inText = true
				case api.EventToolCall:
					a, _ := json.Marshal(ev.Args)
					fmt.Fprintf(out, "→ %s %s\n", ev.Tool, a)
				case api.EventToolResult:
					if ev.Error != "" {
						fmt.Fprintf(out, "← %s failed: %s\n", ev.Tool, ev.Error)
						break
					}
					b, _ := json.MarshalIndent(ev.Result, "  ", "  ")
					fmt.Fprintf(out, "← %s: HTTP %d\n  %s\n", ev.Tool, ev.Status, b)
				case api.EventError:
					fmt.Fprintf(errw, "error: %s\n", ev.Message)
				}
				return nil
			}
			if err := c.AssistantChat(ctx, conversation, args[0], on); err != nil {
				return err
			}
			stdinTTY := isTerminal(cmd.InOrStdin())
			var in *bufio.Reader
			for _, p := range proposals {
				a, _ := json.Marshal(p.Args)
				fmt.Fprintf(errw, "Proposed: %s %s  [%s]\n", p.Tool, a, p.Summary)
				ok := yes
				if !ok && stdinTTY {
					if in == nil {
						in = bufio.NewReader(cmd.InOrStdin())
					}
					fmt.Fprint(errw, "Do it? [y/N] ")
					line, _ := in.ReadString('\n')
					line = strings.TrimSpace(line)
					ok = strings.EqualFold(line, "y") || strings.EqualFold(line, "yes")
				}
				if !ok {
					fmt.Fprintln(errw, "Not done: confirm with --yes.")
					if stdinTTY {
						_ = c.AssistantCancel(ctx, conversation, p.ID)
					}
					continue
				}
				if err := c.AssistantConfirm(ctx, conversation, p.ID, on); err != nil {
					return err
				}
			}
			if inText {
				fmt.Fprintln(out)
			}
			if output == "json" {
				b, err := json.MarshalIndent(map[string]any{"conversation": conversation, "events": all}, "", "  ")
				if err != nil {
					return fmt.Errorf("encode json: %w", err)
				}
				fmt.Fprintf(out, "%s\n", b)
			} else {
				fmt.Fprintf(errw, "conversation: %s\n", conversation)
			}
			if len(failures) > 0 {
				return errors.New(strings.Join(failures, "; "))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&f.url, "url", "", "API base URL (env "+EnvURL+")")
	cmd.Flags().StringVar(&f.token, "token", "", "API token (env "+EnvToken+")")
	cmd.Flags().BoolVar(&yes, "yes", false, "perform destructive or costly steps (create a site, take a backup) without asking")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json (every event of the answer)")
	cmd.Flags().StringVar(&conversation, "conversation", "", "continue this conversation (its id is printed on stderr)")
	return cmd
}

func isTerminal(r io.Reader) bool {
	f, ok := r.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
