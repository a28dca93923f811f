package siteport

import (
	"fmt"
	"regexp"
	"strings"
)

// SitePrefix is the table prefix of every AIPress site (its wp-config.php
// says so): an import with another one is renamed to it.
const SitePrefix = "wp_"

var prefixRE = regexp.MustCompile(`^[A-Za-z0-9_]{1,32}$`)

// RenamePrefix returns the statements that move a WordPress site's tables
// (those of tables, the database's, that start with from) to the prefix
// to, with the rows WordPress keys by the prefix: the <prefix>user_roles
// option and the user meta keys that start with it (capabilities,
// user_level, user-settings …). A table whose new name is taken already
// is an error.
func RenamePrefix(tables []string, from, to string) ([]string, error) {
	if !prefixRE.MatchString(from) || !prefixRE.MatchString(to) {
		return nil, fmt.Errorf("table prefix %q → %q: only letters, digits and _", from, to)
	}
	if from == to {
		return nil, nil
	}
	have := map[string]bool{}
	for _, t := range tables {
		have[t] = true
	}
	var renames []string
	for _, t := range tables {
		rest, ok := strings.CutPrefix(t, from)
		if !ok {
			continue
		}
		if have[to+rest] {
			return nil, fmt.Errorf("the dump has both %s and %s: cannot rename prefix %s to %s", t, to+rest, from, to)
		}
		renames = append(renames, fmt.Sprintf("`%s` TO `%s`", strings.ReplaceAll(t, "`", "``"), to+rest))
	}
	if len(renames) == 0 {
		return nil, nil
	}
	n := len(from) + 1
	return []string{
		"RENAME TABLE " + strings.Join(renames, ", "),
		fmt.Sprintf("UPDATE `%soptions` SET option_name = '%suser_roles' WHERE option_name = '%suser_roles'", to, to, from),
		fmt.Sprintf("UPDATE `%susermeta` SET meta_key = CONCAT('%s', SUBSTRING(meta_key, %d)) WHERE LEFT(meta_key, %d) = '%s'", to, to, n, n-1, from),
	}, nil
}
