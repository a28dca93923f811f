package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/aipress/aipress/internal/apiclient"
	"github.com/aipress/aipress/internal/site"
	"github.com/aipress/aipress/internal/sitefile"
	"github.com/aipress/aipress/internal/store"
)

// ExitError ends the command with exit status Code. An empty Msg prints
// nothing (aipress diff's 2: there are changes).
type ExitError struct {
	Code int
	Msg  string
}

func (e *ExitError) Error() string { return e.Msg }

// ExitCode returns the exit status for err: ExitError's code, else 1.
func ExitCode(err error) int {
	var ee *ExitError
	if errors.As(err, &ee) {
		return ee.Code
	}
	return 1
}

// DiffChanges is aipress diff's exit status when the file would change
// the site (or the site drifted), like terraform plan -detailed-exitcode.
const DiffChanges = 2

func newSchemaCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "schema",
		Short: "Print JSON Schemas of AIPress files",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "site",
		Short: "Print the JSON Schema (draft 2020-12) of the site file",
		Long: `Print the JSON Schema of the site file that 'aipress apply -f' reads
(apiVersion aipress.dev/v1, kind Site). Editors use it for completion and
checks, e.g. with the YAML language server:

  # yaml-language-server: $schema=site.schema.json`,
		Example: `  aipress schema site > site.schema.json`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := cmd.OutOrStdout().Write(sitefile.Schema())
			return err
		},
	})
	return cmd
}

// readSiteFile reads path ("-": standard input).
func readSiteFile(cmd *cobra.Command, path string) ([]byte, string, error) {
	if path == "" {
		return nil, "", errors.New("name the site file with -f FILE (- reads standard input)")
	}
	var r io.Reader
	name := filepath.Base(path)
	if path == "-" {
		r, name = cmd.InOrStdin(), "<stdin>"
	} else {
		f, err := os.Open(path)
		if err != nil {
			return nil, "", err
		}
		defer f.Close()
		r = f
	}
	data, err := io.ReadAll(io.LimitReader(r, sitefile.MaxBytes+1))
	if err != nil {
		return nil, "", fmt.Errorf("read %s: %w", path, err)
	}
	if len(data) > sitefile.MaxBytes {
		return nil, "", fmt.Errorf("%s: a site file is at most %d bytes", path, sitefile.MaxBytes)
	}
	return data, name, nil
}

// checkFile validates the file locally first: the same checks the server
// runs first, with positions, without a round trip.
func checkFile(name string, data []byte) (*sitefile.Doc, error) {
	d, err := sitefile.Parse(name, data)
	if err != nil {
		return nil, err
	}
	return d, nil
}

// applyOutput is what apply and diff print with -o json|yaml.
type applyOutput struct {
	*apiclient.ApplyResult
	// CodeJob is the code job as it ended (with --wait).
	CodeJob *store.Job `json:"code_job,omitempty"`
}

func newApplyCmd(d deps) *cobra.Command {
	o := &siteOpts{d: d}
	var (
		file    string
		dryRun  bool
		enforce bool
		wait    bool
		timeout time.Duration
	)
	cmd := clientCmd(&cobra.Command{
		Use:   "apply -f FILE",
		Short: "Create or update a site from a site file",
		Long: `Create or update the site a site file describes (docs/code.md, "The site
file"; 'aipress schema site' prints its JSON Schema). The file is checked
first (every problem with file:line:column and the field); then the API
creates the site (printing its admin password once) or changes what the file
changes, and prints the plan: what changed and why, like 'terraform apply'.

A field left out of the file is left as it is; a field given is the whole
truth (plugins: [] removes every plugin). php (the plan gives it), backup, and
after creation admin, metadata.labels and metadata.org cannot be changed by a
file: a difference is an error at the field.

A change of the code (plugins, themes, options, constants, core) starts a code
job on the site's shard; with --wait (the default) the command follows it and
prints its result: the changes, the health checks and, when the change failed,
the rollback and its reason (exit status 1). --enforce also brings back what
drifted (changed outside the spec). -f - reads standard input.`,
		Example: `  aipress apply -f blog.yaml
  aipress apply -f blog.yaml --dry-run        # the plan only, as aipress diff
  aipress site get blog.example.com -o yaml | aipress apply -f -
  aipress apply -f blog.yaml --enforce --wait=false -o json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			data, name, err := readSiteFile(cmd, file)
			if err != nil {
				return err
			}
			if _, err := checkFile(name, data); err != nil {
				return err
			}
			c, err := o.connect()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			res, err := c.Apply(ctx, data, apiclient.ApplyOptions{DryRun: dryRun, Enforce: enforce, Name: name})
			if err != nil {
				return err
			}
			out := applyOutput{ApplyResult: res}
			w := cmd.OutOrStdout()
			if o.output == "table" {
				if err := printPlan(w, res); err != nil {
					return err
				}
			}
			if res.Job != "" && wait && !dryRun {
				j, err := c.GetJob(ctx, res.Job)
				if err != nil {
					return err
				}
				j, err = o.waitJobQuiet(ctx, cmd.ErrOrStderr(), c, j, timeout)
				out.CodeJob = j
				if err != nil {
					return err
				}
				if o.output == "table" {
					if err := printCodeJob(w, j); err != nil {
						return err
					}
				}
				if o.output != "table" {
					if err := printData(w, o.output, out); err != nil {
						return err
					}
				}
				return codeJobError(j)
			}
			if o.output != "table" {
				return printData(w, o.output, out)
			}
			return nil
		},
	}, o)
	f := cmd.Flags()
	f.StringVarP(&file, "file", "f", "", "the site file (YAML or JSON; - reads standard input)")
	f.BoolVar(&dryRun, "dry-run", false, "only print the plan; change nothing")
	f.BoolVar(&enforce, "enforce", false, "also start a code job when only drift is to bring back")
	f.BoolVar(&wait, "wait", true, "follow the code job until it ends")
	f.DurationVar(&timeout, "timeout", 15*time.Minute, "how long to wait with --wait (a new site is installed first)")
	return cmd
}

func newDiffCmd(d deps) *cobra.Command {
	o := &siteOpts{d: d}
	var (
		file    string
		enforce bool
		wait    bool
		timeout time.Duration
	)
	cmd := clientCmd(&cobra.Command{
		Use:   "diff -f FILE",
		Short: "Show what applying a site file would change, and what drifted",
		Long: `Show the plan of a site file without changing anything, like 'terraform
plan': each change (+ add, ~ change, - remove) with its reason, then a summary.
Drift lines ("drift: …") are what the site runs that its spec does not say
(a plugin activated outside the platform, an option changed in wp-admin …).

Exit status: 0 when the site matches the file, 2 when something would change
(like terraform plan -detailed-exitcode), 1 on errors.

--enforce brings drift back: it starts a code job that applies the site's
current spec (it does not apply the file's changes: that is aipress apply) and,
with --wait, follows it; the status is then 2 only when the file still has
changes to apply.`,
		Example: `  aipress diff -f blog.yaml
  aipress diff -f blog.yaml --enforce
  aipress diff -f blog.yaml -o json; echo "exit $?"`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			data, name, err := readSiteFile(cmd, file)
			if err != nil {
				return err
			}
			if _, err := checkFile(name, data); err != nil {
				return err
			}
			c, err := o.connect()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			res, err := c.Apply(ctx, data, apiclient.ApplyOptions{DryRun: true, Name: name})
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			out := applyOutput{ApplyResult: res}
			var drift, spec int
			for _, ch := range res.Changes {
				if ch.Drift {
					drift++
				} else {
					spec++
				}
			}
			if o.output == "table" {
				if err := sitefile.Render(w, res.Site, res.Changes); err != nil {
					return err
				}
			}
			remaining := spec + drift
			if enforce && drift > 0 && !res.Create {
				j, err := c.EnforceCode(ctx, res.Site)
				if err != nil {
					return err
				}
				out.Job = j.ID
				if o.output == "table" {
					fmt.Fprintf(w, "\nEnforcing: code job %s brings the drift back.\n", j.ID)
				}
				if wait {
					j, err = o.waitJobQuiet(ctx, cmd.ErrOrStderr(), c, j, timeout)
					out.CodeJob = j
					if err != nil {
						return err
					}
					if o.output == "table" {
						if err := printCodeJob(w, j); err != nil {
							return err
						}
					}
					if err := codeJobError(j); err != nil {
						if o.output != "table" {
							_ = printData(w, o.output, out)
						}
						return err
					}
					remaining = spec
				}
			}
			if o.output != "table" {
				if err := printData(w, o.output, out); err != nil {
					return err
				}
			}
			if remaining > 0 {
				return &ExitError{Code: DiffChanges}
			}
			return nil
		},
	}, o)
	f := cmd.Flags()
	f.StringVarP(&file, "file", "f", "", "the site file (YAML or JSON; - reads standard input)")
	f.BoolVar(&enforce, "enforce", false, "bring drift back with a code job")
	waitFlags(cmd, &wait, &timeout, "the enforcing code job ends")
	return cmd
}

// printPlan prints an apply's plan and what was done.
func printPlan(w io.Writer, r *apiclient.ApplyResult) error {
	if err := sitefile.Render(w, r.Site, r.Changes); err != nil {
		return err
	}
	var b strings.Builder
	switch {
	case r.DryRun:
		b.WriteString("\nDry run: nothing was changed.\n")
	case r.Create:
		fmt.Fprintf(&b, "\nSite %s created.\nAdmin password: %s\nThe password is shown only once; store it somewhere safe.\n", r.Site, r.AdminPassword)
	case len(r.Changes) > 0:
		fmt.Fprintf(&b, "\nApplied (generation %d).\n", r.Generation)
	}
	if r.Job != "" && !r.DryRun {
		fmt.Fprintf(&b, "Code job: %s\n", r.Job)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// codeResult decodes a code job's result (nil when it has none).
func codeResult(j *store.Job) *store.CodeResult {
	if j == nil || len(j.Result) == 0 {
		return nil
	}
	var r store.CodeResult
	if json.Unmarshal(j.Result, &r) != nil {
		return nil
	}
	return &r
}

// printCodeJob prints a finished code job: its changes, its health checks
// and, when it failed, the rollback and why.
func printCodeJob(w io.Writer, j *store.Job) error {
	var b strings.Builder
	fmt.Fprintf(&b, "\nCode job %s: %s", j.ID, j.Phase)
	r := codeResult(j)
	if r != nil && r.Duration != "" {
		fmt.Fprintf(&b, " in %s", r.Duration)
	}
	b.WriteString("\n")
	if r != nil {
		for _, c := range r.Changes {
			b.WriteString("  " + sitefile.Line(c) + "\n")
		}
		if len(r.Checks) > 0 {
			b.WriteString("Checks:\n")
			for _, c := range r.Checks {
				mark := "ok  "
				if !c.OK {
					mark = "FAIL"
				}
				line := "  " + mark + " " + c.Name
				if c.Detail != "" {
					line += ": " + c.Detail
				}
				b.WriteString(line + "\n")
			}
		}
		if r.RolledBack {
			fmt.Fprintf(&b, "Rolled back: the site's code and database are as they were.\nReason: %s\n", firstNonEmpty(r.Error, j.Error))
		}
	}
	if j.Phase == store.JobFailed && (r == nil || !r.RolledBack) && j.Error != "" {
		fmt.Fprintf(&b, "Error: %s\n", j.Error)
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// codeJobError is a failed code job as an error (exit status 1).
func codeJobError(j *store.Job) error {
	if j == nil || j.Phase != store.JobFailed {
		return nil
	}
	if r := codeResult(j); r != nil && r.RolledBack {
		return fmt.Errorf("code job %s failed and was rolled back: %s", j.ID, firstNonEmpty(r.Error, j.Error))
	}
	return fmt.Errorf("code job %s failed: %s", j.ID, j.Error)
}

// Conveniences: aipress site plugin|theme … edit the site's lists and
// follow the code job.

type extFlags struct {
	source, url, sha256, ref, path string
	activate                       bool
}

func (f *extFlags) add(cmd *cobra.Command, activate bool) {
	fl := cmd.Flags()
	fl.StringVar(&f.source, "source", "", "where it comes from: wordpress.org (default), zip, upload, git, bundled")
	fl.StringVar(&f.url, "url", "", "zip: the archive's URL; git: the repository's")
	fl.StringVar(&f.sha256, "sha256", "", "zip: the archive's SHA-256; upload: the uploaded artefact's")
	fl.StringVar(&f.ref, "ref", "", "git: branch, tag or commit")
	fl.StringVar(&f.path, "path", "", "git: the extension's folder in the repository")
	if activate {
		fl.BoolVar(&f.activate, "activate", false, "activate it too (a theme: make it the site's theme)")
	}
}

func (f *extFlags) sourceOf() site.ExtensionSource {
	return site.ExtensionSource{Type: f.source, URL: f.url, SHA256: f.sha256, Ref: f.ref, Path: f.path}
}

func (f *extFlags) given() bool {
	return f.source != "" || f.url != "" || f.sha256 != "" || f.ref != "" || f.path != ""
}

// splitVersion splits NAME[@VERSION].
func splitVersion(arg string) (string, string) {
	name, version, _ := strings.Cut(arg, "@")
	return name, version
}

// editOutput is what the conveniences print with -o json|yaml.
type editOutput struct {
	Site    *site.Site `json:"site"`
	CodeJob *store.Job `json:"code_job,omitempty"`
}

// editCode changes the site's plugins or themes with edit (read, change,
// write back conditionally; retried when the site changed meanwhile),
// then follows the code job.
func (o *siteOpts) editCode(cmd *cobra.Command, domain, kind string, wait bool, timeout time.Duration,
	edit func(list []site.Extension) ([]site.Extension, error)) error {
	c, err := o.connect()
	if err != nil {
		return err
	}
	ctx := cmd.Context()
	var resp *apiclient.SiteResponse
	for attempt := 0; ; attempt++ {
		s, err := c.GetSite(ctx, domain)
		if err != nil {
			return err
		}
		list := s.Spec.Plugins
		if kind == "theme" {
			list = s.Spec.Themes
		}
		next, err := edit(slices.Clone(list))
		if err != nil {
			return err
		}
		if slices.Equal(next, list) {
			fmt.Fprintf(cmd.ErrOrStderr(), "nothing to change: the spec of %s already says so\n", s.Metadata.Name)
			return o.printEdit(cmd.OutOrStdout(), &editOutput{Site: s})
		}
		if next == nil {
			next = []site.Extension{}
		}
		gen := s.Metadata.Generation
		req := apiclient.UpdateSiteRequest{IfGeneration: &gen}
		if kind == "theme" {
			req.Themes = &next
		} else {
			req.Plugins = &next
		}
		resp, err = c.PatchSite(ctx, domain, req)
		if apiclient.IsConflict(err) && attempt < 3 {
			continue // changed meanwhile: read it again
		}
		if err != nil {
			return err
		}
		break
	}
	out := &editOutput{Site: resp.Site, CodeJob: resp.CodeJob}
	w := cmd.OutOrStdout()
	if resp.CodeJob == nil {
		return o.printEdit(w, out)
	}
	if !wait {
		if o.output == "table" {
			_, err := fmt.Fprintf(w, "Code job %s started; follow it with 'aipress job get %s'.\n", resp.CodeJob.ID, resp.CodeJob.ID)
			return err
		}
		return o.printEdit(w, out)
	}
	j, err := o.waitJobQuiet(ctx, cmd.ErrOrStderr(), c, resp.CodeJob, timeout)
	out.CodeJob = j
	if err != nil {
		return err
	}
	if o.output == "table" {
		if err := printCodeJob(w, j); err != nil {
			return err
		}
	} else if err := o.printEdit(w, out); err != nil {
		return err
	}
	return codeJobError(j)
}

func (o *siteOpts) printEdit(w io.Writer, out *editOutput) error {
	if o.output == "table" {
		return nil
	}
	return printData(w, o.output, out)
}

func findExt(list []site.Extension, name string) int {
	return slices.IndexFunc(list, func(e site.Extension) bool { return e.Name == name })
}

func newSiteCodeCmd(o *siteOpts, kind string) *cobra.Command {
	plural := kind + "s"
	cmd := &cobra.Command{
		Use:   kind,
		Short: "Install, update, activate, deactivate and remove the site's " + plural,
		Long: `Change the ` + plural + ` in a site's spec and follow the code job that applies the
change on its shard: it fetches and verifies the ` + kind + `, links it into the site,
activates it through WordPress, checks the site's health and rolls everything
back (code and database) when the check fails. The spec is read and written
back conditionally, so concurrent changes are not lost.

With --wait (the default) the command prints the job's changes, its health
checks and, when it failed, why and that it was rolled back (exit status 1).`,
	}
	var (
		wait    bool
		timeout time.Duration
		ef      extFlags
	)
	sub := func(use, short, example string, activateFlag bool, run func(name, version string) func([]site.Extension) ([]site.Extension, error)) *cobra.Command {
		c := &cobra.Command{
			Use:     use,
			Short:   short,
			Example: example,
			Args:    cobra.ExactArgs(2),
			RunE: func(cmd *cobra.Command, args []string) error {
				name, version := splitVersion(args[1])
				if !site.ValidSlug(name) {
					return fmt.Errorf("%q is not a %s slug (lower-case letters, digits, '.', '_', '-')", name, kind)
				}
				return o.editCode(cmd, args[0], kind, wait, timeout, run(name, version))
			},
		}
		waitFlags(c, &wait, &timeout, "the code job ends")
		if activateFlag || strings.HasPrefix(use, "update") {
			ef.add(c, activateFlag)
		}
		return c
	}
	install := sub("install DOMAIN NAME[@VERSION]", "Add a "+kind+" to the site (and install it)",
		fmt.Sprintf(`  aipress site %[1]s install blog.example.com aipress-hello@2.0 --activate
  aipress site %[1]s install blog.example.com shop --source zip --url https://example.com/shop.zip --sha256 0123…
  aipress site %[1]s install blog.example.com mine --source upload --sha256 0123…
  aipress site %[1]s install blog.example.com tool --source git --url https://git.example.com/tool.git --ref v1.2`, kind),
		true, func(name, version string) func([]site.Extension) ([]site.Extension, error) {
			return func(list []site.Extension) ([]site.Extension, error) {
				if findExt(list, name) >= 0 {
					return nil, fmt.Errorf("%s %s is already in the site's spec; change it with 'aipress site %s update'", kind, name, kind)
				}
				e := site.Extension{Name: name, Version: version, Source: ef.sourceOf(), Active: ef.activate}
				if kind == "theme" && e.Active {
					for i := range list {
						list[i].Active = false
					}
				}
				return append(list, e), nil
			}
		})
	updateCmd := sub("update DOMAIN NAME@VERSION", "Move a "+kind+" to another version (or source)",
		fmt.Sprintf("  aipress site %[1]s update blog.example.com aipress-hello@2.1\n  aipress site %[1]s update blog.example.com aipress-hello@latest", kind),
		false, func(name, version string) func([]site.Extension) ([]site.Extension, error) {
			return func(list []site.Extension) ([]site.Extension, error) {
				i := findExt(list, name)
				if i < 0 {
					return nil, fmt.Errorf("%s %s is not in the site's spec; add it with 'aipress site %s install'", kind, name, kind)
				}
				if version == "" && !ef.given() {
					return nil, fmt.Errorf("name the version (%s@VERSION, or @latest) or a new source", name)
				}
				list[i].Version = version
				if ef.given() {
					list[i].Source = ef.sourceOf()
				}
				return list, nil
			}
		})
	setActive := func(active bool) func(name, version string) func([]site.Extension) ([]site.Extension, error) {
		return func(name, _ string) func([]site.Extension) ([]site.Extension, error) {
			return func(list []site.Extension) ([]site.Extension, error) {
				i := findExt(list, name)
				if i < 0 {
					return nil, fmt.Errorf("%s %s is not in the site's spec; add it with 'aipress site %s install %s --activate'", kind, name, kind, name)
				}
				if kind == "theme" && active {
					for j := range list {
						list[j].Active = false
					}
				}
				list[i].Active = active
				return list, nil
			}
		}
	}
	activate := sub("activate DOMAIN NAME", "Activate a "+kind+" of the site's spec",
		fmt.Sprintf("  aipress site %s activate blog.example.com %s", kind, map[string]string{"plugin": "akismet", "theme": "twentytwentythree"}[kind]),
		false, setActive(true))
	remove := sub("remove DOMAIN NAME", "Remove a "+kind+" from the site (deactivated first)",
		fmt.Sprintf("  aipress site %s remove blog.example.com aipress-hello", kind),
		false, func(name, _ string) func([]site.Extension) ([]site.Extension, error) {
			return func(list []site.Extension) ([]site.Extension, error) {
				i := findExt(list, name)
				if i < 0 {
					return nil, fmt.Errorf("%s %s is not in the site's spec", kind, name)
				}
				return slices.Delete(list, i, i+1), nil
			}
		})
	cmd.AddCommand(install, updateCmd, activate, remove)
	if kind == "plugin" {
		cmd.AddCommand(sub("deactivate DOMAIN NAME", "Deactivate a plugin (it stays installed)",
			"  aipress site plugin deactivate blog.example.com akismet", false, setActive(false)))
	}
	return cmd
}
