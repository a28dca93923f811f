package main

// Starting and stopping the real platform. Adapted from bench/provision
// (copied rather than shared so that the two benchmarks can change
// independently).

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aipress/aipress/internal/apiclient"
)

// platform is the running aipress process.
type platform struct {
	bin     string
	cmd     *exec.Cmd
	dir     string // temp dir: data/, aipress.log, nginx/
	dataDir string
	logPath string
	edge    string // 127.0.0.1:port
	exited  chan struct{}
	waitErr error
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// freePort returns a loopback port that was free a moment ago.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// startPlatform runs `bin up` in a new temp dir on free loopback ports,
// with extra flags appended.
func startPlatform(bin string, extra []string) (*platform, error) {
	httpPort, err := freePort()
	if err != nil {
		return nil, err
	}
	apiPort, err := freePort()
	for err == nil && apiPort == httpPort {
		apiPort, err = freePort()
	}
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "aipress-bench-edge-")
	if err != nil {
		return nil, err
	}
	p := &platform{bin: bin, dir: dir, dataDir: filepath.Join(dir, "data"), logPath: filepath.Join(dir, "aipress.log"),
		edge: fmt.Sprintf("127.0.0.1:%d", httpPort), exited: make(chan struct{})}
	logFile, err := os.Create(p.logPath)
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	defer logFile.Close() // the child has its own descriptor
	args := append([]string{"up", "--data-dir", p.dataDir, "--http", p.edge,
		"--api", fmt.Sprintf("127.0.0.1:%d", apiPort)}, extra...)
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	// Own process group: a Ctrl-C on the benchmark reaches aipress only
	// through stop(), which waits for it to stop MariaDB and php-fpm.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := p.cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() { p.waitErr = p.cmd.Wait(); close(p.exited) }()
	logf("started %s %s (pid %d, log %s)", bin, strings.Join(args, " "), p.cmd.Process.Pid, p.logPath)
	return p, nil
}

// died returns an error with the log's tail if the platform exited.
func (p *platform) died() error {
	select {
	case <-p.exited:
		return fmt.Errorf("aipress exited (%v); log tail:\n%s", p.waitErr, p.logTail(20))
	default:
		return nil
	}
}

func (p *platform) logTail(n int) string {
	b, _ := os.ReadFile(p.logPath)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// poll calls fn every interval until it reports done, the platform dies,
// limit passes or ctx ends.
func (p *platform) poll(ctx context.Context, limit, interval time.Duration, what string, fn func() (bool, error)) error {
	deadline := time.Now().Add(limit)
	var last error
	for {
		done, err := fn()
		if done {
			return nil
		}
		last = err
		if err := p.died(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: gave up after %v (last error: %v)", what, limit, last)
		}
		if err := sleep(ctx, interval); err != nil {
			return fmt.Errorf("%s: %w (last error: %v)", what, err, last)
		}
	}
}

// waitAPI waits for client.json and for the API to answer whoami.
func (p *platform) waitAPI(ctx context.Context) (*apiclient.Client, error) {
	var cfg *apiclient.Config
	err := p.poll(ctx, time.Minute, 50*time.Millisecond, "waiting for client.json", func() (bool, error) {
		c, err := apiclient.ReadConfig(p.dataDir)
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
	err = p.poll(ctx, time.Minute, 50*time.Millisecond, "waiting for the API", func() (bool, error) {
		_, err := cl.WhoAmI(ctx)
		return err == nil, err
	})
	return cl, err
}

// waitLog waits for a line containing s in the platform's log.
func (p *platform) waitLog(ctx context.Context, s string, limit time.Duration) error {
	return p.poll(ctx, limit, 100*time.Millisecond, "waiting for log line "+strconv.Quote(s), func() (bool, error) {
		b, err := os.ReadFile(p.logPath)
		return err == nil && strings.Contains(string(b), s), err
	})
}

// cli runs `aipress args...` against this platform's API and returns its
// combined output.
func (p *platform) cli(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, p.bin, args...)
	cmd.Env = append(os.Environ(), "AIPRESS_DATA_DIR="+p.dataDir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("aipress %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// stop sends SIGINT and waits for aipress to stop MariaDB and php-fpm and
// exit; after 90 s it kills the process group.
func (p *platform) stop() error {
	select {
	case <-p.exited:
		return nil
	default:
	}
	logf("stopping the platform (SIGINT)")
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.exited:
	case <-time.After(90 * time.Second):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.exited
		return errors.New("aipress did not exit within 90s after SIGINT; killed")
	}
	var ee *exec.ExitError
	if p.waitErr != nil && !errors.As(p.waitErr, &ee) {
		return p.waitErr
	}
	if ee != nil {
		return fmt.Errorf("aipress: %v; log tail:\n%s", ee, p.logTail(10))
	}
	return nil
}

// cleanup removes the site Unix users (home below the data directory) and
// the temp directory.
func (p *platform) cleanup() error {
	f, err := os.Open("/etc/passwd")
	if err != nil {
		return err
	}
	var users []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Split(sc.Text(), ":")
		if len(fields) >= 6 && strings.HasPrefix(fields[5], p.dataDir+string(filepath.Separator)) {
			users = append(users, fields[0])
		}
	}
	f.Close()
	var errs []error
	for _, u := range users {
		if out, err := exec.Command("userdel", u).CombinedOutput(); err != nil {
			errs = append(errs, fmt.Errorf("userdel %s: %v: %s", u, err, strings.TrimSpace(string(out))))
		}
		_ = exec.Command("groupdel", u).Run() // usually gone with the user
	}
	if err := os.RemoveAll(p.dir); err != nil {
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		logf("removed %s and %d site user(s)", p.dir, len(users))
	}
	return errors.Join(errs...)
}
