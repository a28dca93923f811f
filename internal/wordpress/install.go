package wordpress

import (
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"time"

	"github.com/aipress/aipress/internal/phpini"
	"github.com/aipress/aipress/internal/procns"
)

//go:embed install.php
var installScript []byte

//go:embed cron.php
var cronScript []byte

// PHPCLI is the PHP command-line binary from Debian's php8.2-cli.
const PHPCLI = "/usr/bin/php8.2"

// WriteScripts writes the installer and cron runner into dir (root-owned,
// world-readable) and returns their paths.
func WriteScripts(dir string) (install, cron string, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", fmt.Errorf("wordpress scripts: %w", err)
	}
	install = filepath.Join(dir, "install.php")
	cron = filepath.Join(dir, "cron.php")
	if err := os.WriteFile(install, installScript, 0o644); err != nil {
		return "", "", fmt.Errorf("wordpress scripts: %w", err)
	}
	if err := os.WriteFile(cron, cronScript, 0o644); err != nil {
		return "", "", fmt.Errorf("wordpress scripts: %w", err)
	}
	return install, cron, nil
}

// Runner runs PHP CLI scripts for a site as its Unix user, with the same
// hardening as the site's php-fpm pool (internal/phpini) and a /proc that
// shows only that user's processes (internal/procns).
type Runner struct {
	Docroot string
	Host    string // HTTP_HOST the scripts see, with port when not 80
	UID     int    // -1: run as ourselves
	GID     int
}

// InstallOptions are the installer's inputs.
type InstallOptions struct {
	Title, AdminUser, AdminEmail, AdminPasswordHash string
}

// MaxScriptOutput is how much of a script's stdout, and of its stderr,
// run keeps: the site's code (its plugins) writes there, and the shard
// runs as root. A script that writes more is killed.
const MaxScriptOutput = 1 << 20

// ErrOutputTooLarge is a script killed for writing more than
// MaxScriptOutput bytes to stdout or stderr.
var ErrOutputTooLarge = fmt.Errorf("script output exceeds %d bytes", MaxScriptOutput)

// cappedBuffer keeps the first max bytes written to it; the first write
// beyond them calls overflow (which kills the script) and the rest is
// discarded until the script is gone.
type cappedBuffer struct {
	buf      bytes.Buffer
	max      int
	over     bool
	overflow func()
}

func (c *cappedBuffer) Write(p []byte) (int, error) {
	if c.over {
		return len(p), nil
	}
	if room := c.max - c.buf.Len(); len(p) > room {
		c.buf.Write(p[:room])
		c.over = true
		c.overflow()
		return len(p), nil
	}
	return c.buf.Write(p)
}

func (r Runner) run(ctx context.Context, script string, env []string, timeout time.Duration) ([]byte, error) {
	return r.runIO(ctx, script, env, timeout, scriptIO{})
}

// scriptIO is what a script reads and where its output goes beyond run's
// defaults (no stdin, stdout kept up to MaxScriptOutput).
type scriptIO struct {
	stdin io.Reader
	// stdout, if set, gets the script's stdout (at most max bytes: a
	// script that writes more is killed); run then returns no stdout.
	stdout io.Writer
	max    int64
}

// limitedWriter passes at most max bytes to w; the first write beyond
// them calls overflow.
type limitedWriter struct {
	w        io.Writer
	n, max   int64
	over     bool
	overflow func()
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if l.over {
		return len(p), nil
	}
	if l.n+int64(len(p)) > l.max {
		l.over = true
		l.overflow()
		return len(p), nil
	}
	l.n += int64(len(p))
	return l.w.Write(p)
}

func (r Runner) runIO(ctx context.Context, script string, env []string, timeout time.Duration, sio scriptIO) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	// Cancelled when the script writes too much: CommandContext kills it.
	ctx, kill := context.WithCancel(ctx)
	defer kill()
	// The same hardening as every php-fpm pool (internal/phpini): the
	// script loads the site's own plugins and themes.
	args := append([]string{"-d", "display_errors=stderr", "-d", "memory_limit=256M"}, phpini.Args()...)
	cmd := exec.CommandContext(ctx, PHPCLI, append(args, script)...)
	cmd.Dir = r.Docroot
	cmd.Env = append([]string{"PATH=/usr/bin:/bin", "AIP_DOCROOT=" + r.Docroot, "AIP_HOST=" + r.Host}, env...)
	// The script dies with the shard: an installer left running by a
	// crashed platform would race the one the restarted shard starts.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if r.UID < 0 && os.Geteuid() == 0 {
		return nil, errors.New("refusing to run site code as root: no site user")
	}
	if r.UID >= 0 && os.Geteuid() == 0 {
		cmd.SysProcAttr.Credential = &syscall.Credential{Uid: uint32(r.UID), Gid: uint32(r.GID)}
	}
	// In a mount namespace whose /proc hides other users' processes and
	// whose shared temporary directories are small tmpfs mounts (the site
	// user is taken on after the mounts).
	if err := procns.WrapWith(cmd, procns.Options{Keep: []string{r.Docroot, script}}); err != nil {
		return nil, err
	}
	stdout := &cappedBuffer{max: MaxScriptOutput, overflow: kill}
	stderr := &cappedBuffer{max: MaxScriptOutput, overflow: kill}
	cmd.Stdout, cmd.Stderr = stdout, stderr
	var streamed *limitedWriter
	if sio.stdout != nil {
		streamed = &limitedWriter{w: sio.stdout, max: sio.max, overflow: kill}
		cmd.Stdout = streamed
	}
	if sio.stdin != nil {
		cmd.Stdin = sio.stdin
	}
	// A child the script left holding the pipes does not keep us waiting.
	cmd.WaitDelay = 10 * time.Second
	err := cmd.Run()
	if stdout.over || stderr.over {
		return nil, fmt.Errorf("%s: %w", filepath.Base(script), ErrOutputTooLarge)
	}
	if streamed != nil && streamed.over {
		return nil, fmt.Errorf("%s: output exceeds %d bytes", filepath.Base(script), sio.max)
	}
	if err != nil {
		msg := strings.TrimSpace(stderr.buf.String())
		if len(msg) > 600 {
			msg = msg[len(msg)-600:]
		}
		// stdout too: a script may report its failure there.
		return stdout.buf.Bytes(), fmt.Errorf("%s: %w: %s", filepath.Base(script), err, msg)
	}
	return stdout.buf.Bytes(), nil
}

// Install runs WordPress's installer (wp_install) with o. It is idempotent:
// an installed site is left alone.
func (r Runner) Install(ctx context.Context, script string, o InstallOptions) error {
	out, err := r.run(ctx, script, []string{
		"AIP_TITLE=" + o.Title, "AIP_ADMIN_USER=" + o.AdminUser,
		"AIP_ADMIN_EMAIL=" + o.AdminEmail, "AIP_ADMIN_HASH=" + o.AdminPasswordHash,
	}, 2*time.Minute)
	if err != nil {
		return fmt.Errorf("wordpress install: %w", err)
	}
	var res struct {
		Installed bool `json:"installed"`
	}
	lines := bytes.Split(bytes.TrimSpace(out), []byte("\n"))
	if err := json.Unmarshal(lines[len(lines)-1], &res); err != nil || !res.Installed {
		return fmt.Errorf("wordpress install: %s", summarize(out))
	}
	return nil
}

// Cron runs the site's due cron events.
func (r Runner) Cron(ctx context.Context, script string) error {
	if _, err := r.run(ctx, script, nil, 5*time.Minute); err != nil {
		return fmt.Errorf("wordpress cron: %w", err)
	}
	return nil
}

var tags = regexp.MustCompile(`(?s)<style.*?</style>|<[^>]*>`)

// summarize turns PHP's output (often a wp_die HTML page) into one short line.
func summarize(out []byte) string {
	s := tags.ReplaceAllString(string(out), " ")
	s = strings.Join(strings.Fields(html.UnescapeString(s)), " ")
	if len(s) > 300 {
		s = s[:300] + "..."
	}
	if s == "" {
		s = "no output"
	}
	return s
}
