// Package benchplatform starts and stops a real AIPress platform for the
// benchmarks in bench/: `aipress up` in a new temporary directory (data
// directory and log file inside it) on free 127.0.0.1 ports, with helpers to
// wait for its readiness (the API answering, then its /readyz endpoint) and
// other conditions, to run the CLI against it, to stop it with SIGINT and to
// remove what it left behind (the site Unix users and the temporary
// directory). The waits poll endpoints and statuses, never the log's
// wording.
//
// Progress goes to stderr through Logf. The platform creates one Unix user
// per site, so the benchmarks run as root.
package benchplatform

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/aipress/aipress/internal/apiclient"
	"github.com/aipress/aipress/internal/shard"
)

// Logf writes a progress line, prefixed with the time of day, to stderr.
func Logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s  "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// Sleep waits d or until ctx ends, whichever comes first; it returns ctx's
// error in the second case.
func Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// FreePort returns a loopback port that was free a moment ago.
func FreePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// Binary checks that a benchmark can start the platform from path (the
// aipress binary, relative or absolute): it runs as root, since the
// platform creates a Unix user per site, and the binary exists. It returns
// the binary's absolute path.
func Binary(path string) (string, error) {
	if os.Geteuid() != 0 {
		return "", errors.New("run as root: the platform creates a Unix user per site")
	}
	bin, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(bin); err != nil {
		return "", fmt.Errorf("binary: %w (run make build)", err)
	}
	return bin, nil
}

// Options configure Start.
type Options struct {
	// TempPrefix is the prefix of the temporary directory's name (see
	// os.MkdirTemp); empty means "aipress-bench-".
	TempPrefix string
	// Dir, if set, is an existing directory to run in instead of a new
	// temporary one: a restart on the data directory of an earlier Start
	// (stopped first), e.g. with other flags. Cleanup still removes it.
	Dir string
	// LogName is the log file's name inside the directory; empty means
	// "aipress.log".
	LogName string
	// Edge and API, if set, are the 127.0.0.1:port addresses to listen on
	// instead of free ports: a restart keeps its predecessor's, which
	// client.json in the data directory names.
	Edge, API string
	// Extra flags appended to `aipress up ...`.
	Extra []string
	// AfterExit, if set, runs in Stop once aipress has exited after the
	// SIGINT; an error from it is returned by Stop in place of the exit
	// status's.
	AfterExit func(p *Platform) error
}

// Platform is a running `aipress up` process. Its fields are read-only.
type Platform struct {
	Bin     string    // the aipress binary
	Cmd     *exec.Cmd // the aipress process
	Dir     string    // temp dir: data/, aipress.log and whatever the benchmark adds
	DataDir string    // Dir/data, the --data-dir
	LogPath string    // Dir/aipress.log: aipress's stdout and stderr
	Edge    string    // 127.0.0.1:port of the edge (--http)
	API     string    // 127.0.0.1:port of the API (--api)
	Health  string    // 127.0.0.1:port of /livez and /readyz (--health-addr)

	afterExit func(*Platform) error
	exited    chan struct{}
	waitErr   error
}

// Start runs `bin up` in a new temp dir on free loopback ports (edge, API
// and health endpoint), with opts.Extra appended. The process runs in its own process group, so a Ctrl-C
// on the benchmark reaches it only through Stop. The caller must call Stop,
// then (unless it keeps the directory for inspection) Cleanup.
func Start(bin string, opts Options) (*Platform, error) {
	httpPort, err := FreePort()
	if err != nil {
		return nil, err
	}
	apiPort, err := FreePort()
	for err == nil && apiPort == httpPort {
		apiPort, err = FreePort()
	}
	if err != nil {
		return nil, err
	}
	healthPort, err := FreePort()
	for err == nil && (healthPort == httpPort || healthPort == apiPort) {
		healthPort, err = FreePort()
	}
	if err != nil {
		return nil, err
	}
	edgeAddr, apiAddr := fmt.Sprintf("127.0.0.1:%d", httpPort), fmt.Sprintf("127.0.0.1:%d", apiPort)
	if opts.Edge != "" {
		edgeAddr = opts.Edge
	}
	if opts.API != "" {
		apiAddr = opts.API
	}
	prefix := opts.TempPrefix
	if prefix == "" {
		prefix = "aipress-bench-"
	}
	dir := opts.Dir
	if dir == "" {
		if dir, err = os.MkdirTemp("", prefix); err != nil {
			return nil, err
		}
	}
	logName := opts.LogName
	if logName == "" {
		logName = "aipress.log"
	}
	p := &Platform{Bin: bin, Dir: dir, DataDir: filepath.Join(dir, "data"), LogPath: filepath.Join(dir, logName),
		Edge: edgeAddr, API: apiAddr, Health: fmt.Sprintf("127.0.0.1:%d", healthPort),
		afterExit: opts.AfterExit, exited: make(chan struct{})}
	removeDir := func() {
		if opts.Dir == "" {
			os.RemoveAll(dir)
		}
	}
	logFile, err := os.Create(p.LogPath)
	if err != nil {
		removeDir()
		return nil, err
	}
	defer logFile.Close() // the child has its own descriptor
	args := append([]string{"up", "--data-dir", p.DataDir, "--http", p.Edge, "--api", p.API, "--health-addr", p.Health}, opts.Extra...)
	p.Cmd = exec.Command(bin, args...)
	p.Cmd.Stdout, p.Cmd.Stderr = logFile, logFile
	// Own process group: a Ctrl-C on the benchmark reaches aipress only
	// through Stop, which waits for it to stop MariaDB and php-fpm.
	p.Cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := p.Cmd.Start(); err != nil {
		removeDir()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() { p.waitErr = p.Cmd.Wait(); close(p.exited) }()
	Logf("started %s %s (pid %d, log %s)", bin, strings.Join(args, " "), p.Cmd.Process.Pid, p.LogPath)
	return p, nil
}

// PID is the aipress process's id.
func (p *Platform) PID() int { return p.Cmd.Process.Pid }

// Died returns an error with the log's tail if the platform exited, else nil.
func (p *Platform) Died() error {
	select {
	case <-p.exited:
		return fmt.Errorf("aipress exited (%v); log tail:\n%s", p.waitErr, p.LogTail(20))
	default:
		return nil
	}
}

// WaitExit waits up to limit for the process to exit (after a kill).
func (p *Platform) WaitExit(ctx context.Context, limit time.Duration) error {
	select {
	case <-p.exited:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(limit):
		return fmt.Errorf("aipress (pid %d) did not exit within %v", p.PID(), limit)
	}
}

// LogTail returns the last n lines of the platform's log ("" when it cannot
// be read).
func (p *Platform) LogTail(n int) string {
	b, _ := os.ReadFile(p.LogPath)
	return tail(string(b), n)
}

// tail returns the last n lines of s, without the final newline.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// Poll calls fn every interval until it reports done, the platform dies,
// limit passes or ctx ends; what names the wait in the error, which carries
// fn's last error.
func (p *Platform) Poll(ctx context.Context, limit, interval time.Duration, what string, fn func() (bool, error)) error {
	deadline := time.Now().Add(limit)
	var last error
	for {
		done, err := fn()
		if done {
			return nil
		}
		last = err
		if err := p.Died(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: gave up after %v (last error: %v)", what, limit, last)
		}
		if err := Sleep(ctx, interval); err != nil {
			return fmt.Errorf("%s: %w (last error: %v)", what, err, last)
		}
	}
}

// WaitAPI waits for client.json and for the API to answer whoami, and
// returns a client of the API (with a one-minute timeout per request).
func (p *Platform) WaitAPI(ctx context.Context) (*apiclient.Client, error) {
	var cfg *apiclient.Config
	err := p.Poll(ctx, time.Minute, 50*time.Millisecond, "waiting for client.json", func() (bool, error) {
		c, err := apiclient.ReadConfig(p.DataDir)
		cfg = c
		return err == nil, err
	})
	if err != nil {
		return nil, err
	}
	if !strings.HasPrefix(cfg.URL, "http://127.0.0.1:") {
		return nil, fmt.Errorf("client.json names %s, want a 127.0.0.1 URL", cfg.URL)
	}
	cl := apiclient.New(cfg.URL, cfg.Token)
	cl.HTTPClient = &http.Client{Timeout: time.Minute}
	err = p.Poll(ctx, time.Minute, 50*time.Millisecond, "waiting for the API", func() (bool, error) {
		_, err := cl.WhoAmI(ctx)
		return err == nil, err
	})
	return cl, err
}

// WaitReadyz waits up to limit for the platform's /readyz (--health-addr)
// to answer 200: its local shards have converged for the first time, so
// MariaDB and php-fpm run.
func (p *Platform) WaitReadyz(ctx context.Context, limit time.Duration) error {
	hc := &http.Client{Timeout: 10 * time.Second}
	url := "http://" + p.Health + "/readyz"
	return p.Poll(ctx, limit, 50*time.Millisecond, "waiting for GET "+url+" to answer 200", func() (bool, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return false, err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return false, err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		if resp.StatusCode != http.StatusOK {
			return false, fmt.Errorf("HTTP %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))
		}
		return true, nil
	})
}

// CLI runs `aipress args...` against this platform's API and returns its
// combined output; on failure the error carries the output too.
func (p *Platform) CLI(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, p.Bin, args...)
	cmd.Env = append(os.Environ(), "AIPRESS_DATA_DIR="+p.DataDir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("aipress %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// Stop sends SIGINT and waits for aipress to stop MariaDB and php-fpm and
// exit; after 90 s it kills the process group. It returns nil when aipress
// exited 0 (or had exited before), else an error with the log's tail. It
// runs Options.AfterExit, if any, once aipress has exited.
func (p *Platform) Stop() error {
	select {
	case <-p.exited:
		return nil
	default:
	}
	Logf("stopping the platform (SIGINT)")
	_ = p.Cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.exited:
	case <-time.After(90 * time.Second):
		_ = syscall.Kill(-p.Cmd.Process.Pid, syscall.SIGKILL)
		<-p.exited
		return errors.New("aipress did not exit within 90s after SIGINT; killed")
	}
	if p.afterExit != nil {
		if err := p.afterExit(p); err != nil {
			return err
		}
	}
	var ee *exec.ExitError
	if p.waitErr != nil && !errors.As(p.waitErr, &ee) {
		return p.waitErr
	}
	if ee != nil {
		return fmt.Errorf("aipress: %v; log tail:\n%s", ee, p.LogTail(10))
	}
	return nil
}

// Cleanup removes the site Unix users (those whose home is below the data
// directory) and the temp directory. Call it after Stop.
func (p *Platform) Cleanup() error {
	n, err := shard.RemoveUsersUnder(context.Background(), p.DataDir)
	errs := []error{err}
	if err := os.RemoveAll(p.Dir); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	Logf("removed %s and %d site user(s)", p.Dir, n)
	return nil
}

// Ready waits until the platform's API answers and its /readyz says its
// local shards have converged once, and returns an API client.
func (p *Platform) Ready(ctx context.Context) (*apiclient.Client, error) {
	cl, err := p.WaitAPI(ctx)
	if err != nil {
		return nil, err
	}
	if err := p.WaitReadyz(ctx, 5*time.Minute); err != nil {
		return nil, fmt.Errorf("waiting for the shards: %w", err)
	}
	Logf("platform up (pid %d, edge %s, data %s)", p.PID(), p.Edge, p.DataDir)
	return cl, nil
}

// Finish stops the platform and removes its directory and site users,
// unless keep is set or the run failed (then it says how to clean up).
func (p *Platform) Finish(keep, failed bool) {
	if err := p.Stop(); err != nil {
		Logf("stop: %v", err)
	}
	if keep || failed {
		Logf("kept %s (platform log: %s)", p.Dir, p.LogPath)
		if failed && !keep {
			Logf("to clean up: remove the site users with home under %s, then the directory", p.DataDir)
		}
		return
	}
	if err := p.Cleanup(); err != nil {
		Logf("cleanup: %v", err)
	}
}

// Table prints rows with the first column left-aligned and the others
// right-aligned, two spaces apart (the benchmarks' reports).
type Table [][]string

// Print writes the table to w.
func (t Table) Print(w io.Writer) {
	var width []int
	for _, r := range t {
		for i, c := range r {
			if i >= len(width) {
				width = append(width, 0)
			}
			width[i] = max(width[i], utf8.RuneCountInString(c))
		}
	}
	for _, r := range t {
		var b strings.Builder
		for i, c := range r {
			pad := strings.Repeat(" ", width[i]-utf8.RuneCountInString(c))
			if i == 0 {
				b.WriteString(c + pad)
			} else {
				b.WriteString("  " + pad + c)
			}
		}
		fmt.Fprintln(w, strings.TrimRight(b.String(), " "))
	}
}
