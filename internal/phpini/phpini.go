// Package phpini is the one hardening definition for PHP that runs a site's
// code: the shard's php-fpm master and every pool (internal/phpfpm) and the
// PHP command line that installs WordPress and runs WP-Cron
// (internal/wordpress) get exactly these settings, so no way of running a
// site's code is weaker than another.
//
// Every site's PHP is treated as hostile. The settings close the ways PHP
// code escapes disable_functions or reaches other sites:
//
//   - DisabledFunctions: every way PHP starts a program (exec and friends);
//     putenv, because mail() starts /bin/sh for sendmail and a site that
//     set LD_PRELOAD first would load a library of its own into it; dl;
//     the process and credential calls of posix and pcntl; imap_open, whose
//     -oProxyCommand runs a command (CVE-2018-19518); and the two OPcache
//     functions that opcache.restrict_api does not cover
//     (opcache_compile_file, opcache_is_script_cached). mail() stays.
//   - ffi.enable=0: Debian's default "preload" leaves FFI on in the CLI,
//     which calls any C function.
//   - allow_url_include off.
//   - A fixed sendmail_path and mail.force_extra_parameters, which replaces
//     mail()'s fifth argument: sendmail options such as -X (write a log
//     file anywhere the site can) or -C (another configuration) cannot be
//     smuggled in.
//   - OPcache: one master shares one cache among all its pools. With
//     opcache.validate_permission and validate_root a cached script is
//     served only to a process that may read the file; opcache.restrict_api
//     (a path prefix that no script a site can run starts with) refuses
//     opcache_get_status (every site's script paths), opcache_reset and
//     opcache_invalidate (everyone's cache) to sites.
//
// php-fpm reads every setting from its master's command line (php-fpm -d),
// and every pool inherits them. Settings a site's code could change — with
// ini_set (PHP_INI_USER) or a .user.ini file in its docroot (PHP_INI_PERDIR)
// — are repeated in each pool as php_admin_value or php_admin_flag, which
// locks them; those marked System are PHP_INI_SYSTEM, which nothing but the
// command line, php.ini and a pool's configuration can set, so pools do not
// repeat them. That keeps pool files short, and php-fpm reads its pools'
// files one byte per read(2) on every start and reload, which takes longer
// the more pools a master has (TestSystemSettings checks the marks
// against PHP's own). (A FastCGI client can override anything with
// PHP_ADMIN_VALUE and run any file: that is why only root may connect to a
// pool.)
package phpini

import (
	"strconv"
	"strings"
	"time"
)

// DisabledFunctions are never available to a site's code.
var DisabledFunctions = []string{
	// Starting programs.
	"exec", "passthru", "shell_exec", "system", "proc_open", "popen", "pcntl_exec",
	// Processes and credentials.
	"pcntl_fork", "pcntl_unshare", "proc_nice", "proc_terminate", "proc_get_status",
	"posix_kill", "posix_setuid", "posix_setgid", "posix_seteuid", "posix_setegid",
	"posix_setpgid", "posix_setsid",
	// The environment of the programs PHP itself starts (mail's sendmail).
	"putenv",
	// Native code.
	"dl",
	// Commands through rsh.
	"imap_open", "imap_mail",
	// OPcache functions restrict_api does not guard.
	"opcache_compile_file", "opcache_is_script_cached",
}

// SendmailPath is the one sendmail command mail() runs.
const SendmailPath = "/usr/sbin/sendmail -t -i"

// ForceExtraParameters replaces whatever a site passes as mail()'s fifth
// argument (PHP ignores that argument when this is set); "-i" repeats a
// harmless option of SendmailPath.
const ForceExtraParameters = "-i"

// RestrictAPI is opcache.restrict_api: only scripts whose path starts with
// it may call the OPcache API. It is a directory only root can create (its
// parents are root's and not writable by others) and AIPress creates none,
// so no script it runs — a site's, the installer's, cron's — may.
const RestrictAPI = "/usr/lib/aipress/opcache-api/"

// RevalidateFreq is opcache.revalidate_freq: how long OPcache serves a
// cached script before it checks the file's modification time again. A
// changed wp-config.php reaches every request at most this long after it
// was written (with a modification time in a later second: OPcache compares
// whole seconds).
const RevalidateFreq = 2 * time.Second

// Setting is one php.ini directive.
type Setting struct {
	Name  string
	Value string
	// Flag marks an on/off setting (php_admin_flag in a pool).
	Flag bool
	// System marks a PHP_INI_SYSTEM setting: no script, .user.ini or
	// ini_set can change it, so the command line fixes it for good.
	System bool
}

// Settings returns the hardening settings, in a fixed order.
func Settings() []Setting {
	return []Setting{
		{Name: "disable_functions", Value: strings.Join(DisabledFunctions, ","), System: true},
		{Name: "ffi.enable", Value: "0", System: true},
		{Name: "allow_url_include", Value: "off", Flag: true, System: true},
		{Name: "sendmail_path", Value: SendmailPath, System: true},
		// PHP_INI_PERDIR: a .user.ini could change it; pools lock it.
		{Name: "mail.force_extra_parameters", Value: ForceExtraParameters},
		{Name: "opcache.validate_permission", Value: "on", Flag: true, System: true},
		{Name: "opcache.validate_root", Value: "on", Flag: true, System: true},
		{Name: "opcache.restrict_api", Value: RestrictAPI, System: true},
		// A rewritten wp-config.php (a secret rotation) is seen by every
		// request at most RevalidateFreq after it was written.
		{Name: "opcache.validate_timestamps", Value: "on", Flag: true},
		{Name: "opcache.revalidate_freq", Value: strconv.Itoa(int(RevalidateFreq / time.Second))},
		// A plugin or theme is updated by pointing its folder's link at
		// another copy (internal/shard, code.go): OPcache must look
		// scripts up by the path they resolve to, not by the path a site
		// included them with, and a process's cached resolution of the
		// link must expire as quickly, so every request runs the new copy
		// at most RevalidateFreq after the link changed.
		{Name: "opcache.revalidate_path", Value: "on", Flag: true},
		{Name: "realpath_cache_ttl", Value: strconv.Itoa(int(RevalidateFreq / time.Second)), System: true},
	}
}

// Args returns the settings as command-line definitions for php and
// php-fpm: "-d", "name=value", ….
func Args() []string {
	var out []string
	for _, s := range Settings() {
		out = append(out, "-d", s.Name+"="+s.Value)
	}
	return out
}
