package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/aipress/aipress/internal/apiclient"
	"github.com/aipress/aipress/internal/store"
)

// parseSince reads --since: a duration back from now (24h, 90m) or an
// RFC 3339 time. "" is the zero time (everything).
func parseSince(v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(v); err == nil {
		if d < 0 {
			return time.Time{}, fmt.Errorf("--since %q: give a positive duration (how far back) or a time", v)
		}
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		return time.Time{}, fmt.Errorf("--since %q: want a duration such as 24h or an RFC 3339 time such as 2025-03-14T15:00:00Z", v)
	}
	return t, nil
}

func newAuditCmd(d deps) *cobra.Command {
	o := &siteOpts{d: d}
	cmd := clientCmd(&cobra.Command{
		Use:   "audit",
		Short: "Read, export and verify the tamper-evident audit log",
		Long: `The audit log records every mutating API call and sign-in event: who (token,
user), for which organisation, through which channel (cli, portal, assistant,
api), what, on what, the outcome, the request ID, source IP and time.

It is a hash chain: each entry's hash covers all its fields and the hash of the
entry before it, and the control plane signs checkpoints of the chain with a
key derived from the platform secret. 'aipress audit verify' checks
the chain and every checkpoint and fails on an edited, deleted or reordered
entry (docs/security.md, "Audit log").`,
		Example: `  aipress audit list --since 24h
  aipress audit list --org acme -o json
  aipress audit export --since 2025-03-01T00:00:00Z > audit.jsonl
  aipress audit verify`,
	}, o)
	var org, since string
	var limit int
	list := &cobra.Command{
		Use:   "list [--since 24h|RFC3339] [--org ORG] [--limit N]",
		Short: "List audit entries, oldest first",
		Long: `List audit entries in sequence order (oldest first), at most --limit (default
100, max 1000; the table ends with how to get the next page).`,
		Example: "  aipress audit list --since 24h\n  aipress audit list --org acme --limit 20 -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, err := parseSince(since, d.now())
			if err != nil {
				return err
			}
			if limit < 0 || limit > store.MaxLimit {
				return fmt.Errorf("--limit %d: want 1 to %d", limit, store.MaxLimit)
			}
			c, err := o.connect()
			if err != nil {
				return err
			}
			after, _ := cmd.Flags().GetInt64("after")
			page, err := c.ListAudit(cmd.Context(), apiclient.AuditQuery{Org: org, Since: t, After: after, Limit: limit})
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if o.output != "table" {
				return printData(w, o.output, page)
			}
			tw := tabwriter.NewWriter(w, 0, 0, 3, ' ', 0)
			fmt.Fprintln(tw, "SEQ\tTIME\tACTOR\tORG\tCHANNEL\tACTION\tTARGET\tOUTCOME\tDETAIL")
			for _, e := range page.Items {
				actor := e.Actor
				if e.ActorUser != "" {
					actor += " (" + e.ActorUser + ")"
				}
				fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", e.Seq, e.Time.UTC().Format(time.RFC3339), dash(actor),
					dash(e.Org), dash(e.Channel), e.Action, dash(e.Target), e.Outcome, dash(e.Detail))
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			if page.Next != 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "more: aipress audit list --after %d\n", page.Next)
			}
			return nil
		},
	}
	list.Flags().StringVar(&since, "since", "", "only entries since this long ago (24h) or this time (RFC 3339)")
	list.Flags().StringVar(&org, "org", "", "only this organisation's entries")
	list.Flags().IntVar(&limit, "limit", 0, "at most this many entries (default 100, max 1000)")
	list.Flags().Int64("after", 0, "only entries after this sequence number (the next page)")

	export := &cobra.Command{
		Use:   "export [--since 24h|RFC3339] [--org ORG]",
		Short: "Write audit entries to stdout as JSON lines",
		Long: `Write every audit entry the filters select to stdout, one JSON object per line,
in sequence order, with their hashes (a chain an auditor can recompute, see
store.AuditHash). A transfer the server broke off is an error, never a short file
that looks complete.`,
		Example: "  aipress audit export --since 720h > audit.jsonl\n  aipress audit export --org acme",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			t, err := parseSince(since, d.now())
			if err != nil {
				return err
			}
			c, err := o.connect()
			if err != nil {
				return err
			}
			enc := json.NewEncoder(cmd.OutOrStdout())
			return c.ExportAudit(cmd.Context(), apiclient.AuditQuery{Org: org, Since: t}, func(e store.AuditEntry) error { return enc.Encode(e) })
		},
	}
	export.Flags().StringVar(&since, "since", "", "only entries since this long ago (24h) or this time (RFC 3339)")
	export.Flags().StringVar(&org, "org", "", "only this organisation's entries")

	verify := &cobra.Command{
		Use:   "verify",
		Short: "Verify the audit chain and its signed checkpoints (platform admin)",
		Long: `Walk the whole audit chain and every signed checkpoint. Exits 0 when intact;
exits non-zero, naming the first entry that cannot be trusted and what is wrong,
when an entry was edited, deleted or reordered, or the chain was rewritten past
a checkpoint. Entries after the last checkpoint are covered by the chain only:
deleting all of them at once cannot be detected (the output says how many).`,
		Example: "  aipress audit verify\n  aipress audit verify -o json",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.connect()
			if err != nil {
				return err
			}
			rep, err := c.VerifyAudit(cmd.Context())
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if o.output != "table" {
				if err := printData(w, o.output, rep); err != nil {
					return err
				}
			} else if rep.OK {
				fmt.Fprintf(w, "Audit log intact: %d entries, %d signed checkpoints (the last at entry %d; %d entries after it).\n",
					rep.Entries, rep.Checkpoints, rep.CheckpointSeq, rep.Unsigned)
			}
			if !rep.OK {
				return fmt.Errorf("audit log TAMPERED: %s (first entry that cannot be trusted: %d)", strings.TrimSuffix(rep.Problem, "."), rep.FirstBadSeq)
			}
			return nil
		},
	}
	checkpoint := &cobra.Command{
		Use:     "checkpoint",
		Short:   "Sign a checkpoint of the audit chain now (platform admin)",
		Long:    `Sign a checkpoint of the audit chain's last entry now (the control plane also signs one every 100 entries).`,
		Example: "  aipress audit checkpoint",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := o.connect()
			if err != nil {
				return err
			}
			resp, err := c.CheckpointAudit(cmd.Context())
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if o.output != "table" {
				return printData(w, o.output, resp)
			}
			switch {
			case resp.Checkpoint.Seq == 0:
				return errors.New("the audit log is empty: nothing to checkpoint")
			case resp.Created:
				fmt.Fprintf(w, "Signed a checkpoint at entry %d (key %s).\n", resp.Checkpoint.Seq, resp.Checkpoint.KeyID)
			default:
				fmt.Fprintf(w, "Entry %d has a checkpoint already.\n", resp.Checkpoint.Seq)
			}
			return nil
		},
	}
	cmd.AddCommand(list, export, verify, checkpoint)
	return cmd
}
