package cli

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/aipress/aipress/internal/apiclient"
	"github.com/aipress/aipress/internal/mtls"
)

// secretCA is the mesh CA (edges ↔ shard gateways), rotated through the
// control plane's API in three phases.
const secretCA = "ca"

// rotateCA does the named phase, or the next one: the phase is resolved
// here and named in the request, so retrying the command's request never
// does two phases.
func (o *siteOpts) rotateCA(cmd *cobra.Command, phase string, force bool) error {
	switch phase {
	case "", mtls.PhaseStart, mtls.PhaseSwitch, mtls.PhaseFinish:
	default:
		return fmt.Errorf("--phase must be %s, %s or %s, got %q", mtls.PhaseStart, mtls.PhaseSwitch, mtls.PhaseFinish, phase)
	}
	c, err := o.connect()
	if err != nil {
		return err
	}
	if phase == "" {
		st, err := c.MeshCA(cmd.Context())
		if err != nil {
			return err
		}
		phase = st.NextPhase
	}
	st, err := c.RotateMeshCA(cmd.Context(), apiclient.RotateMeshCARequest{Phase: phase, Force: force})
	if err != nil {
		return err
	}
	if o.output != "table" {
		return printData(cmd.OutOrStdout(), o.output, st)
	}
	w := cmd.OutOrStdout()
	if !st.Changed {
		fmt.Fprintf(w, "Mesh CA: %s was done already (nothing changed).\n", phase)
	}
	return printCAState(w, o.d.now(), st)
}

// printCAState says where a CA rotation is and what to wait for.
func printCAState(w io.Writer, now time.Time, st *apiclient.MeshCAResponse) error {
	switch st.Phase {
	case mtls.PhaseStart:
		fmt.Fprintf(w, "Mesh CA: rotation to generation %d started %s; generation %d still issues, both are trusted.\n",
			st.Trusted[1], st.StartedAt.Format(time.RFC3339), st.Issuing)
		fmt.Fprintf(w, "Shard gateways and edges learn the new CA at their next check (every %s).\n", mtls.CheckInterval)
		fmt.Fprintf(w, "Next: 'aipress secrets rotate ca' (switch) after %s", st.SwitchAfter.Format(time.RFC3339))
		if now.Before(st.SwitchAfter) {
			fmt.Fprint(w, ", or now with --force if every gateway and edge is known to have renewed")
		}
		fmt.Fprintln(w, ".")
	case mtls.PhaseSwitch:
		fmt.Fprintf(w, "Mesh CA: generation %d issues since %s; generation %d is still trusted.\n",
			st.Issuing, st.SwitchedAt.Format(time.RFC3339), st.Trusted[1])
		fmt.Fprintf(w, "Shard gateways and edges renew at their next check (every %s).\n", mtls.CheckInterval)
		fmt.Fprintf(w, "Next: 'aipress secrets rotate ca' (finish) after %s, when the last leaf of generation %d expires,\n",
			st.OldLeavesUntil.Format(time.RFC3339), st.Trusted[1])
		fmt.Fprintln(w, "or earlier with --force once every gateway and edge has renewed (a holder that has not is refused by the others until it does).")
	case mtls.PhaseFinish:
		fmt.Fprintf(w, "Mesh CA: generation %d alone, since %s: certificates of older generations are refused.\n",
			st.Issuing, st.FinishedAt.Format(time.RFC3339))
	default:
		fmt.Fprintf(w, "Mesh CA: generation %d, never rotated. 'aipress secrets rotate ca' starts a rotation.\n", st.Issuing)
	}
	return nil
}

// meshCAStatus returns the CA state for `secrets status`, or nil when the
// caller may not read it (not a platform admin) or the control plane issues
// no certificates.
func meshCAStatus(cmd *cobra.Command, c *apiclient.Client) (*apiclient.MeshCAResponse, error) {
	st, err := c.MeshCA(cmd.Context())
	var ae *apiclient.Error
	if errors.As(err, &ae) && (ae.Status == http.StatusForbidden || ae.Status == http.StatusNotImplemented) {
		return nil, nil
	}
	return st, err
}
