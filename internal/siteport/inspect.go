package siteport

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"

	"github.com/aipress/aipress/internal/artefact"
)

// Inspection is what an archive holds for an import: where its parts
// are, what its dump says, and what an import would change.
type Inspection struct {
	// Archive is what was unpacked, Layout where things were in it,
	// Manifest an AIPress export's manifest (nil for other archives).
	Archive  *Extracted `json:"archive"`
	Layout   *Layout    `json:"layout"`
	Manifest *Manifest  `json:"manifest,omitempty"`
	// Dump is the dump's path in the archive ("(given separately)" for
	// one given apart); DumpPath its path on disk.
	Dump      string         `json:"dump"`
	DumpPath  string         `json:"-"`
	DumpBytes int64          `json:"dump_bytes"`
	Tables    []string       `json:"tables"`
	Charset   string         `json:"charset,omitempty"`
	Removed   map[string]int `json:"removed_from_dump,omitempty"`
	// TablePrefix is the dump's; PrefixRenamed says the tables are
	// renamed to SitePrefix, by Renames.
	TablePrefix   string   `json:"table_prefix"`
	PrefixRenamed bool     `json:"prefix_renamed"`
	Renames       []string `json:"-"`
	DBVersion     string   `json:"db_version,omitempty"`
	// WordPressVersion is the archive's (its docroot's, else the
	// manifest's).
	WordPressVersion string `json:"wordpress_version,omitempty"`
	// OldURL and OldHome are the dump's siteurl and home options.
	OldURL  string `json:"old_url"`
	OldHome string `json:"old_home,omitempty"`
	// Plugins and Themes are the archive's. Extensions says, when
	// InspectRequest.Pack was given, where an import puts each: the
	// shared artefact store (as an upload of the site's organisation,
	// linked into the docroot by a code job) or, with the reason, the
	// site's own tree.
	Plugins    []string    `json:"plugins,omitempty"`
	Extensions []Extension `json:"extensions,omitempty"`
	Themes     []string    `json:"themes,omitempty"`
	Warnings   []string    `json:"warnings,omitempty"`
}

// WarnTreeExtensions is the warning of an inspection without Pack of an
// archive with plugins or themes.
const WarnTreeExtensions = "plugins and themes are kept in the site's own tree, not the shared artefact store: update them with the code commands"

// InspectRequest names the archive to inspect.
type InspectRequest struct {
	// Archive is the archive's path, SQL a dump given apart ("": the
	// archive's), Prefix the site to take from a dump of several.
	Archive, SQL, Prefix string
	// Scratch is an empty directory to unpack into (the caller removes
	// it), Limits bound what is unpacked.
	Scratch string
	Limits  Limits
	// Progress, if set, is told the archive bytes read and its size.
	Progress func(done, total int64)
	// Pack, if set, is an empty directory PackExtensions packs the
	// plugins and themes into (checked against ArtefactLimits): the
	// caller removes it. "": Extensions is not filled.
	Pack           string
	ArtefactLimits artefact.Limits
}

// Inspect unpacks req.Archive into req.Scratch (Extract), finds its parts
// (Locate) and reads the dump (ScanDump), refusing what an import would
// refuse: hostile or broken archives, no wp-content, no dump, a dump
// without <prefix>options or in another character set.
func Inspect(ctx context.Context, req InspectRequest) (*Inspection, error) {
	name := filepath.Base(req.Archive)
	in := &Inspection{}
	var err error
	if in.Archive, err = Extract(ctx, req.Archive, req.Scratch, req.Limits, req.Progress); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if in.Layout, err = Locate(req.Scratch); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if in.Manifest, err = ReadManifest(filepath.Join(req.Scratch, filepath.Dir(in.Layout.WPContent))); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	in.Plugins, in.Themes = in.Layout.Plugins, in.Layout.Themes
	in.WordPressVersion = in.Layout.Version
	if in.WordPressVersion == "" && in.Manifest != nil {
		in.WordPressVersion = in.Manifest.WordPressVersion
	}
	in.DumpPath, in.Dump = req.SQL, "(given separately)"
	if req.SQL == "" {
		if in.Layout.Dump == "" {
			return nil, fmt.Errorf("%s: no SQL dump (*.sql or *.sql.gz) in the archive: give one separately", name)
		}
		in.DumpPath, in.Dump = filepath.Join(req.Scratch, in.Layout.Dump), in.Layout.Dump
	}
	rc, err := OpenDump(in.DumpPath)
	if err != nil {
		return nil, err
	}
	scan, err := ScanDump(rc)
	rc.Close()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	in.DumpBytes, in.Tables, in.Charset, in.Removed = scan.Bytes, scan.Tables, scan.Charset, scan.Removed
	if in.TablePrefix, err = scan.Prefix(req.Prefix); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	in.PrefixRenamed = in.TablePrefix != SitePrefix
	if in.Renames, err = RenamePrefix(scan.Tables, in.TablePrefix, SitePrefix); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	in.OldURL, in.OldHome = scan.Option(in.TablePrefix, "siteurl"), scan.Option(in.TablePrefix, "home")
	in.DBVersion = scan.Option(in.TablePrefix, "db_version")
	if in.OldURL == "" {
		in.Warnings = append(in.Warnings, "the dump sets no siteurl option: URLs are not rewritten")
	}
	for _, k := range []string{"CREATE DATABASE", "USE", "trigger or routine block"} {
		if c := scan.Removed[k]; c > 0 {
			in.Warnings = append(in.Warnings, fmt.Sprintf("removed from the dump: %d × %s", c, k))
		}
	}
	if len(in.Archive.Skipped) > 0 {
		in.Warnings = append(in.Warnings, fmt.Sprintf("%d links in the archive not recreated (e.g. %s)", len(in.Archive.Skipped), in.Archive.Skipped[0]))
	}
	if req.Pack != "" {
		if in.Extensions, err = PackExtensions(req.Scratch, in.Layout, in.Archive.Skipped, req.Pack, req.ArtefactLimits); err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		markActive(in.Extensions, scan.Option(in.TablePrefix, "active_plugins"), scan.Option(in.TablePrefix, "stylesheet"))
		var kept []string
		for _, e := range in.Extensions {
			if !e.Storable {
				kept = append(kept, e.Kind+" "+e.Name+" ("+e.Reason+")")
			}
		}
		if len(kept) > 0 {
			in.Warnings = append(in.Warnings, "kept in the site's own tree, not the shared artefact store: "+strings.Join(kept, "; "))
		}
	} else if len(in.Plugins)+len(in.Themes) > 0 {
		in.Warnings = append(in.Warnings, WarnTreeExtensions)
	}
	return in, nil
}
