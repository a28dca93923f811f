package shard

// The template database: WordPress installed once per core, cloned into
// each new site's database instead of running WordPress's installer (a
// PHP process loading all of WordPress, most of a new site's creation
// time).
//
// The template is built by the real installer (install.php) for
// placeholder values (domain, title, admin user and email all contain
// templateToken), as its own Unix user and database account, on a docroot
// built like a site's on the same core, with the same mu-plugins. Then:
//   - what must not be shared is removed: transients, any salt or key
//     option (the template's wp-config.php defines them, so none should be
//     there), recovery keys, the aipress_installed option (the clone
//     writes its own last, so a clone a crash cut short reads as not
//     installed and is redone from scratch);
//   - the template is checked: the placeholder may occur only where the
//     clone rewrites it (siteurl, home, blogname, admin_email; post GUIDs
//     and contents; the admin's user row and nickname). Anything else (a
//     serialized value holding the URL, say) refuses the template, and
//     sites are installed by the installer.
//
// The Unix user, database account and docroot used to build it are
// removed: the template database is root's only; no site's account can
// read it.
//
// A clone copies every table (CREATE TABLE … LIKE, INSERT … SELECT, on the
// server, no round trip of the data), then rewrites the placeholders with
// the site's own values, gives the admin the site's password hash (or an
// unusable one), dates the content now, and writes aipress_installed.
// Salts are the site's own in its wp-config.php, as with the installer.
//
// A template is keyed by its inputs (templateKey): the core's version and
// tree, the installer and the mu-plugins' contents, the URL scheme and
// port sites get (PublicURL), and templateFormat.
// A site whose core has no ready template gets the installer, and the
// template for its core is built beside; building one removes the
// shard's other templates.

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/aipress/aipress/internal/pooler"
	"github.com/aipress/aipress/internal/wordpress"
)

// templateFormat changes when what a template holds or how a clone
// rewrites it changes: templates of another format are rebuilt.
const templateFormat = "template 1"

// templateToken is in every placeholder value of a template.
const templateToken = "aipresstpl"

// Placeholder values the template is installed with.
const (
	templateDomain = templateToken + ".invalid"
	templateTitle  = templateToken + " title"
	templateAdmin  = templateToken
	templateEmail  = templateToken + "@" + templateDomain
)

// templateTable is a table name a template may hold.
var templateTable = regexp.MustCompile(`^wp_[a-z0-9_]{1,40}$`)

// templateDir holds the shard's templates' build directories and ready
// markers (root's).
func (s *Shard) templateDir() string { return filepath.Join(s.cfg.Dir, "template") }

// templateDB is the database name of the template with key.
func (s *Shard) templateDB(key string) string { return s.prefix + "tpl_" + key }

// templateNames are the names the template build uses (its Unix user and
// database account, not a site's: not collected as orphans).
func (s *Shard) templateNames(key string) Names {
	// One directory for every build: the Unix user's home.
	dir := filepath.Join(s.templateDir(), "build")
	return Names{ID: "tpl", Unix: s.prefix + "tpl", DB: s.templateDB(key), DBUser: s.prefix + "tpl", Pool: s.prefix + "tpl",
		Dir: dir, Docroot: filepath.Join(dir, "htdocs")}
}

// templateKey is the key of the template for core.
func (s *Shard) templateKey(core *wordpress.Core) (string, error) {
	h := sha256.New()
	// The URL the placeholder domain gets: a clone replaces exactly it.
	fmt.Fprintf(h, "%s\x00%s\x00%s\x00%s\x00", templateFormat, core.Version, core.Tree, s.cfg.PublicURL(templateDomain))
	for _, p := range []string{s.installScript, s.cachePlugin, s.storagePlugin, s.loginPlugin, s.dbErrorDropIn} {
		f, err := os.Open(p)
		if err != nil {
			return "", fmt.Errorf("template key: %w", err)
		}
		_, err = io.Copy(h, f)
		f.Close()
		if err != nil {
			return "", fmt.Errorf("template key: %w", err)
		}
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))[:12], nil
}

// templateReady returns the template database for core when its template
// is built and checked; otherwise "" and, unless templates are off, the
// template is built in the background.
func (s *Shard) templateReady(core *wordpress.Core) string {
	if s.cfg.NoTemplate {
		return ""
	}
	key, err := s.templateKey(core)
	if err != nil {
		s.log.Warn("no template database", "err", err)
		return ""
	}
	if fileExists(filepath.Join(s.templateDir(), key+".ready")) {
		return s.templateDB(key)
	}
	s.tpl.Lock()
	defer s.tpl.Unlock()
	if s.tplCtx == nil || s.tplBuilding[key] || s.tplFailed[key] {
		return ""
	}
	bg := s.tplCtx
	if s.tplBuilding == nil {
		s.tplBuilding, s.tplFailed = map[string]bool{}, map[string]bool{}
	}
	s.tplBuilding[key] = true
	s.tplWG.Add(1)
	go func() {
		defer s.tplWG.Done()
		ctx, cancel := context.WithTimeout(bg, 5*time.Minute)
		defer cancel()
		t0 := time.Now()
		err := s.buildTemplate(ctx, core, key)
		s.tpl.Lock()
		delete(s.tplBuilding, key)
		if err != nil && bg.Err() == nil {
			// Not retried in this process: sites keep the installer.
			s.tplFailed[key] = true
		}
		s.tpl.Unlock()
		if err != nil {
			s.log.Warn("template database not built: new sites run the installer", "core", core.Version, "err", err)
			return
		}
		s.log.Info("template database built", "core", core.Version, "database", s.templateDB(key), "took", time.Since(t0).Round(time.Millisecond))
	}()
	return ""
}

// buildTemplate builds, cleans and checks the template with key for core,
// then marks it ready and removes the shard's other templates.
func (s *Shard) buildTemplate(ctx context.Context, core *wordpress.Core, key string) error {
	n := s.templateNames(key)
	if err := os.MkdirAll(s.templateDir(), 0o711); err != nil {
		return err
	}
	_ = os.RemoveAll(n.Dir) // a build a crash cut short
	uid, gid, err := s.ensureSiteUser(ctx, n)
	if err != nil {
		return err
	}
	// The user is needed for the build only.
	defer func() {
		if err := s.removeSiteUser(context.WithoutCancel(ctx), n); err != nil {
			s.log.Warn("template build user not removed", "user", n.Unix, "err", err)
		}
	}()
	if err := ensureDir(n.Dir, 0o750, 0, gid); err != nil {
		return err
	}
	defer os.RemoveAll(n.Dir)
	if err := s.db.DropSchema(ctx, n.DB); err != nil {
		return err
	}
	pw := randomPassword()
	if err := s.db.EnsureDatabase(ctx, n.DB, n.DBUser, pw, 5); err != nil {
		return err
	}
	// The installer reaches the database as sites do (through the
	// pooler when it runs).
	s.tpl.Lock()
	s.tplAccount = &pooler.Account{User: n.DBUser, Password: pw, Database: n.DB, MaxClients: 5, MaxBackends: 5}
	s.tpl.Unlock()
	s.syncPooler()
	defer func() {
		// The template is root's alone once built.
		s.tpl.Lock()
		s.tplAccount = nil
		s.tpl.Unlock()
		s.syncPooler()
		s.resetPooled(n.DBUser)
		if err := s.db.DropUser(context.WithoutCancel(ctx), n.DBUser); err != nil {
			s.log.Warn("template database account not dropped", "user", n.DBUser, "err", err)
		}
	}()
	if err := wordpress.BuildDocroot(core, n.Docroot); err != nil {
		return err
	}
	for _, p := range []string{s.cachePlugin, s.storagePlugin, s.loginPlugin} {
		if err := wordpress.LinkMUPlugin(n.Docroot, p); err != nil {
			return err
		}
	}
	if err := wordpress.LinkDropIn(n.Docroot, s.dbErrorDropIn); err != nil {
		return err
	}
	url := s.cfg.PublicURL(templateDomain)
	cfg := wordpress.Config{Domain: templateDomain, URL: url, Docroot: n.Docroot, CoreDir: core.Tree,
		DBName: n.DB, DBUser: n.DBUser, DBPassword: pw, DBHost: s.clientHost(), Salts: wordpress.NewSalts()}
	if err := writeIfChanged(filepath.Join(n.Docroot, "wp-config.php"), cfg.Render(), 0o640, 0, gid); err != nil {
		return err
	}
	if err := sitePermissions(n, uid, gid); err != nil {
		return err
	}
	run := wordpress.Runner{Docroot: n.Docroot, Host: hostOf(url), UID: uid, GID: gid}
	if err := run.Install(ctx, s.installScript, wordpress.InstallOptions{Title: templateTitle, AdminUser: templateAdmin, AdminEmail: templateEmail}); err != nil {
		return err
	}
	for _, q := range []string{
		"DELETE FROM `%s`.wp_options WHERE option_name LIKE '\\_transient\\_%%' OR option_name LIKE '\\_site\\_transient\\_%%'",
		"DELETE FROM `%s`.wp_options WHERE option_name REGEXP '(^|_)(key|salt|secret|token)s?$' OR option_name IN ('recovery_keys', 'aipress_installed')",
		"DELETE FROM `%s`.wp_usermeta WHERE meta_key IN ('session_tokens', 'default_password_nag')",
		"UPDATE `%s`.wp_users SET user_pass = '', user_activation_key = ''",
	} {
		if err := s.db.Exec(ctx, fmt.Sprintf(q, n.DB)); err != nil {
			return fmt.Errorf("cleaning the template: %w", err)
		}
	}
	if err := s.checkTemplate(ctx, n.DB); err != nil {
		return err
	}
	if err := writeJSONAtomic(filepath.Join(s.templateDir(), key+".ready"), core.Version); err != nil {
		return err
	}
	s.dropOtherTemplates(ctx, key)
	return nil
}

// templatePlaces are where a template may hold its placeholder: the
// places a clone rewrites. A column maps to the rows allowed ("" : any
// row), by the key column named before "=".
var templatePlaces = map[string]string{
	"wp_options.option_value": "option_name=siteurl,home,blogname,admin_email",
	"wp_posts.guid":           "",
	"wp_posts.post_content":   "",
	"wp_users.user_login":     "",
	"wp_users.user_nicename":  "",
	"wp_users.user_email":     "",
	"wp_users.display_name":   "",
	"wp_users.user_url":       "",
	"wp_usermeta.meta_value":  "meta_key=nickname",
}

// checkTemplate fails when database db holds the placeholder anywhere a
// clone does not rewrite it, or holds more than one user.
func (s *Shard) checkTemplate(ctx context.Context, db string) error {
	cols, err := s.db.TextColumns(ctx, db)
	if err != nil {
		return err
	}
	for _, c := range cols {
		table, col, _ := strings.Cut(c, ".")
		if !templateTable.MatchString(table) {
			return fmt.Errorf("template: unexpected table %q", table)
		}
		where := fmt.Sprintf("`%s` LIKE '%%%s%%'", col, templateToken)
		allowed, ok := templatePlaces[c]
		if !ok {
			where += " COLLATE utf8mb4_bin OR LOWER(`" + col + "`) LIKE '%" + templateToken + "%'"
		} else if k, vals, found := strings.Cut(allowed, "="); found {
			where = fmt.Sprintf("(%s) AND `%s` NOT IN ('%s')", where, k, strings.ReplaceAll(vals, ",", "','"))
		} else {
			continue
		}
		v, err := s.db.QueryString(ctx, fmt.Sprintf("SELECT COUNT(*) FROM `%s`.`%s` WHERE %s", db, table, where))
		if err != nil {
			return fmt.Errorf("template check: %w", err)
		}
		if v != "0" {
			return fmt.Errorf("template: the placeholder is in %s (%s rows), which a clone does not rewrite", c, v)
		}
	}
	if v, err := s.db.QueryString(ctx, fmt.Sprintf("SELECT COUNT(*) FROM `%s`.wp_users", db)); err != nil || v != "1" {
		return fmt.Errorf("template: want exactly one user, got %q (%v)", v, err)
	}
	return nil
}

// dropOtherTemplates removes the shard's templates other than key's (all
// of them for key "").
func (s *Shard) dropOtherTemplates(ctx context.Context, key string) {
	dbs, err := s.db.ListDatabases(ctx, s.prefix+"tpl_")
	if err != nil {
		return
	}
	for _, db := range dbs {
		if db == s.templateDB(key) {
			continue
		}
		old := strings.TrimPrefix(db, s.prefix+"tpl_")
		_ = os.Remove(filepath.Join(s.templateDir(), old+".ready"))
		if err := s.db.DropSchema(ctx, db); err != nil {
			s.log.Warn("old template database not dropped", "database", db, "err", err)
		}
	}
}

// cloneTemplate fills site n's empty database from template database tpl
// and makes it the site's: its URL, title, admin user, email and password
// hash, content dated now. aipress_installed is written last.
func (s *Shard) cloneTemplate(ctx context.Context, tpl string, n Names, siteURL, title, adminUser, adminEmail, adminHash string) error {
	tables, err := s.db.Tables(ctx, tpl)
	if err != nil {
		return err
	}
	if len(tables) == 0 {
		return errors.New("template database has no tables")
	}
	for _, t := range tables {
		if !templateTable.MatchString(t) {
			return fmt.Errorf("template: unexpected table %q", t)
		}
		if err := s.db.Exec(ctx, fmt.Sprintf("CREATE TABLE `%s`.`%s` LIKE `%s`.`%s`", n.DB, t, tpl, t)); err != nil {
			return fmt.Errorf("cloning the template: %w", err)
		}
		if err := s.db.Exec(ctx, fmt.Sprintf("INSERT INTO `%s`.`%s` SELECT * FROM `%s`.`%s`", n.DB, t, tpl, t)); err != nil {
			return fmt.Errorf("cloning the template: %w", err)
		}
	}
	tplURL := s.cfg.PublicURL(templateDomain)
	pass := adminHash
	if pass == "" {
		// As the installer's random password: nobody can sign in with it
		// (not a hash any password matches).
		pass = "*" + randomPassword()
	}
	d := n.DB
	stmts := []struct {
		q    string
		args []any
	}{
		{"UPDATE `" + d + "`.wp_options SET option_value = ? WHERE option_name IN ('siteurl', 'home')", []any{siteURL}},
		{"UPDATE `" + d + "`.wp_options SET option_value = ? WHERE option_name = 'blogname'", []any{title}},
		{"UPDATE `" + d + "`.wp_options SET option_value = ? WHERE option_name = 'admin_email'", []any{adminEmail}},
		{"UPDATE `" + d + "`.wp_options SET option_value = UNIX_TIMESTAMP() + 15552000 WHERE option_name = 'admin_email_lifespan'", nil},
		{"UPDATE `" + d + "`.wp_posts SET guid = REPLACE(guid, ?, ?), post_content = REPLACE(post_content, ?, ?), " +
			"post_date = UTC_TIMESTAMP(), post_date_gmt = UTC_TIMESTAMP(), post_modified = UTC_TIMESTAMP(), post_modified_gmt = UTC_TIMESTAMP()",
			[]any{tplURL, siteURL, tplURL, siteURL}},
		{"UPDATE `" + d + "`.wp_comments SET comment_date = UTC_TIMESTAMP(), comment_date_gmt = UTC_TIMESTAMP()", nil},
		{"UPDATE `" + d + "`.wp_users SET user_login = ?, user_nicename = ?, display_name = ?, user_email = ?, user_pass = ?, user_url = REPLACE(user_url, ?, ?), user_registered = UTC_TIMESTAMP()",
			[]any{adminUser, nicename(adminUser), adminUser, adminEmail, pass, tplURL, siteURL}},
		{"UPDATE `" + d + "`.wp_usermeta SET meta_value = ? WHERE meta_key = 'nickname'", []any{adminUser}},
		{"INSERT INTO `" + d + "`.wp_options (option_name, option_value, autoload) VALUES ('aipress_installed', UNIX_TIMESTAMP(), 'yes')", nil},
	}
	for _, st := range stmts {
		if err := s.db.Exec(ctx, st.q, st.args...); err != nil {
			return fmt.Errorf("making the template the site's: %w", err)
		}
	}
	return nil
}

var dashes = regexp.MustCompile(`-+`)

// nicename is WordPress's user_nicename for login (sanitize_title):
// lower case, "." and spaces to "-", other characters but [a-z0-9_-]
// dropped, at most 50 characters.
func nicename(login string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(login) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '_', r == '-':
			b.WriteRune(r)
		case r == '.' || r == ' ':
			b.WriteByte('-')
		}
	}
	out := strings.Trim(dashes.ReplaceAllString(b.String(), "-"), "-")
	if len(out) > 50 {
		out = out[:50]
	}
	return out
}

// randomPassword is 32 random hex digits.
func randomPassword() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// startTemplates lets templates be built until ctx ends; the returned
// function waits for a build under way.
func (s *Shard) startTemplates(ctx context.Context) (wait func()) {
	s.tpl.Lock()
	s.tplCtx = ctx
	s.tpl.Unlock()
	return s.tplWG.Wait
}

// dropIdleTemplates removes every template database of the shard unless
// one is being built (the shard has no site: Converge).
func (s *Shard) dropIdleTemplates(ctx context.Context) {
	s.tpl.Lock()
	building := len(s.tplBuilding) > 0
	s.tpl.Unlock()
	if !building {
		s.dropOtherTemplates(ctx, "")
	}
}

// templateBroken forgets template database tpl (a clone of it failed): the
// next site's creation builds it again.
func (s *Shard) templateBroken(tpl string) {
	key := strings.TrimPrefix(tpl, s.prefix+"tpl_")
	if err := os.Remove(filepath.Join(s.templateDir(), key+".ready")); err != nil && !errors.Is(err, os.ErrNotExist) {
		s.log.Warn("broken template database kept", "database", tpl, "err", err)
	}
}
