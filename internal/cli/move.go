package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/aipress/aipress/internal/apiclient"
	"github.com/aipress/aipress/internal/site"
)

func newSiteMoveCmd(o *siteOpts) *cobra.Command {
	var (
		target  string
		abort   bool
		wait    bool
		cleanup bool
		timeout time.Duration
	)
	cmd := &cobra.Command{
		Use:   "move DOMAIN --to SHARD | --abort",
		Short: "Move a site to another shard, or abort its move",
		Long: `Move a Ready (or Suspended) site to another shard. The source shard exports
the site while it serves and the target imports that copy; then the source
freezes writes (visitors still read the site; changes get 503) and exports
what changed since, the target loads it, the control plane switches the site
to the target, and the source removes its copy.

With --wait the command prints each phase as it is reached and, once the site
is switched to the target (it serves and takes writes there), the freeze
window (how long writes were refused) and the total time; the source removes
its copy a few seconds later, in the background (--wait-cleanup waits for
that too: the move is Done).

--abort rolls back a move that has not switched yet.`,
		Example: `  aipress site move blog.localhost --to shard-2 --wait
  aipress site move blog.localhost --to shard-2 -o json
  aipress site move blog.localhost --abort --wait`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if (target == "") == !abort {
				return errors.New("give --to SHARD, or --abort")
			}
			c, err := o.connect()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			var s *site.Site
			if abort {
				s, err = c.AbortMove(ctx, args[0])
			} else {
				s, err = c.MoveSite(ctx, args[0], target)
			}
			if err != nil {
				return err
			}
			if cleanup {
				wait = true
			}
			if wait {
				s, err = o.waitMove(ctx, cmd.ErrOrStderr(), c, s, timeout, cleanup)
				if err != nil {
					return err
				}
			}
			return printMove(cmd.OutOrStdout(), o.output, s, wait)
		},
	}
	cmd.Flags().StringVar(&target, "to", "", "the shard to move the site to")
	cmd.Flags().BoolVar(&abort, "abort", false, "roll back the site's move (before the switch)")
	cmd.Flags().BoolVar(&wait, "wait", false, "wait until the site is switched to the target (or the move Aborted) and print its timings")
	cmd.Flags().BoolVar(&cleanup, "wait-cleanup", false, "with --wait (implied), wait until the source removed its copy too (the move is Done)")
	cmd.Flags().DurationVar(&timeout, "timeout", 30*time.Minute, "how long to wait with --wait")
	return cmd
}

// waitMove polls the site until its move (the one in s) has switched (is
// Done, with untilDone) or is Aborted, printing each phase reached.
func (o *siteOpts) waitMove(ctx context.Context, progress io.Writer, c *apiclient.Client, s *site.Site, timeout time.Duration, untilDone bool) (*site.Site, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	name, id := s.Metadata.Name, s.Move.ID
	var last site.MovePhase
	for {
		if m := s.Move; m != nil && m.ID == id && m.Phase != last {
			line := fmt.Sprintf("moving %s: %s", name, m.Phase)
			if m.Error != "" {
				line += ": " + m.Error
			}
			fmt.Fprintln(progress, line)
			last = m.Phase
		}
		switch {
		case s.Move == nil || s.Move.ID != id:
			return s, fmt.Errorf("the move of %s was replaced by another", name)
		case s.Move.Phase == site.MoveDone:
			return s, nil
		case s.Move.Switched != nil && !untilDone:
			return s, nil
		case s.Move.Phase == site.MoveAborted:
			return s, nil
		}
		t := time.NewTimer(o.d.poll)
		select {
		case <-ctx.Done():
			t.Stop()
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return s, fmt.Errorf("timed out after %s waiting for the move of %s (phase %s); it continues in the background, "+
					"check with 'aipress site get %s -o yaml'", timeout, name, last, name)
			}
			return s, ctx.Err()
		case <-t.C:
		}
		got, err := c.GetSite(ctx, name)
		if err != nil {
			if ctx.Err() != nil {
				continue // reported by the select above
			}
			return s, err
		}
		s = got
	}
}

// moveEnd is when a finished move finished: its cleanup (and, aborted, its
// unfreeze).
func moveEnd(m *site.Move) (time.Time, bool) {
	var end time.Time
	for _, t := range []*time.Time{m.CleanedUp, m.Unfrozen, m.Switched} {
		if t != nil && t.After(end) {
			end = *t
		}
	}
	return end, !end.IsZero()
}

func printMove(w io.Writer, format string, s *site.Site, waited bool) error {
	m := s.Move
	if format != "table" {
		return printData(w, format, m)
	}
	if m == nil {
		_, err := fmt.Fprintf(w, "site %s has no move\n", s.Metadata.Name)
		return err
	}
	if !waited {
		_, err := fmt.Fprintf(w, "Move %s of %s from %s to %s: %s.\n", m.ID, s.Metadata.Name, m.Source, m.Target, m.Phase)
		return err
	}
	verdict := fmt.Sprintf("Site %s moved from %s to %s.", s.Metadata.Name, m.Source, m.Target)
	if m.Phase == site.MoveCleaningUp {
		verdict = fmt.Sprintf("Site %s moved from %s to %s; %s removes its copy in the background.", s.Metadata.Name, m.Source, m.Target, m.Source)
	}
	if m.Phase == site.MoveAborted {
		verdict = fmt.Sprintf("The move of %s from %s to %s was aborted; the site stays on %s.", s.Metadata.Name, m.Source, m.Target, m.Source)
	}
	// The total is what the user waits for: until the switch (the
	// source's cleanup, after a grace period, is not), or until an abort
	// ended.
	total, end := "-", time.Time{}
	if m.Switched != nil {
		end = *m.Switched
	} else if e, ok := moveEnd(m); ok {
		end = e
	}
	if !end.IsZero() {
		total = end.Sub(m.RequestedAt).Round(time.Millisecond).String()
	}
	cleaned := ""
	if m.Switched != nil && m.CleanedUp != nil {
		cleaned = fmt.Sprintf("Source cleaned up: %s after the switch\n", m.CleanedUp.Sub(*m.Switched).Round(time.Millisecond))
	}
	_, err := fmt.Fprintf(w, "%s\nFreeze window: %s\nTotal time:    %s\n%s", verdict,
		m.FreezeWindow(end).Round(time.Millisecond), total, cleaned)
	return err
}
