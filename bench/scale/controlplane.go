package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/aipress/aipress/bench/internal/benchplatform"
	"github.com/aipress/aipress/internal/apiclient"
)

// serverProc is `aipress server` as a child process.
type serverProc struct {
	cmd     *exec.Cmd
	logPath string
	url     string
	token   string
	debug   string // the pprof address, "" without
	exited  chan struct{}
	waitErr error
}

// hasServerCommand reports whether bin has the `server` command.
func hasServerCommand(ctx context.Context, bin string) bool {
	return exec.CommandContext(ctx, bin, "server", "--help").Run() == nil
}

// startServer runs `bin server` on dataDir and a free port, with storeSpec
// (empty: SQLite in the data dir), its output to logPath, and waits for its
// API. With debug it also serves pprof on another free port.
func startServer(ctx context.Context, bin, dataDir, logPath, storeSpec string, debug bool) (*serverProc, error) {
	port, err := benchplatform.FreePort()
	if err != nil {
		return nil, err
	}
	var debugAddr string
	if debug {
		dp, err := benchplatform.FreePort()
		if err != nil {
			return nil, err
		}
		debugAddr = fmt.Sprintf("127.0.0.1:%d", dp)
	}
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child has its own descriptor
	args := []string{"server", "--data-dir", dataDir, "--api", fmt.Sprintf("127.0.0.1:%d", port),
		"--heartbeat-timeout", "30s", "--spawn-shards=false"}
	if storeSpec != "" {
		args = append(args, "--store", storeSpec)
	}
	if debugAddr != "" {
		args = append(args, "--debug-addr", debugAddr)
	}
	p := &serverProc{logPath: logPath, debug: debugAddr, exited: make(chan struct{})}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Stdout, p.cmd.Stderr = logFile, logFile
	// Own process group: a Ctrl-C reaches it only through Stop.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
	if err := p.cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	go func() { p.waitErr = p.cmd.Wait(); close(p.exited) }()
	logf("started %s %s (pid %d, log %s)", bin, redactArgs(args), p.cmd.Process.Pid, logPath)

	deadline := time.Now().Add(2 * time.Minute)
	for {
		cfg, err := apiclient.ReadConfig(dataDir)
		if err == nil {
			cl := newClient(cfg.URL, cfg.Token, 1)
			if _, err = cl.WhoAmI(ctx); err == nil {
				p.url, p.token = cfg.URL, cfg.Token
				return p, nil
			}
		}
		if derr := p.Died(); derr != nil {
			return nil, derr
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			_ = p.Stop()
			return nil, fmt.Errorf("aipress server did not come up (last error: %v); log tail:\n%s", err, p.logTail())
		}
		_ = benchplatform.Sleep(ctx, 100*time.Millisecond)
	}
}

// redactArgs joins args for a log line, hiding a store URL's password.
func redactArgs(args []string) string {
	out := make([]string, len(args))
	for i, a := range args {
		if strings.HasPrefix(a, "postgres://") {
			a = "postgres://…"
		}
		out[i] = a
	}
	return strings.Join(out, " ")
}

func (p *serverProc) URL() string   { return p.url }
func (p *serverProc) Token() string { return p.token }
func (p *serverProc) PID() int      { return p.cmd.Process.Pid }

func (p *serverProc) logTail() string {
	b, _ := os.ReadFile(p.logPath)
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-20):], "\n")
}

func (p *serverProc) Died() error {
	select {
	case <-p.exited:
		return fmt.Errorf("aipress server exited (%v); log tail:\n%s", p.waitErr, p.logTail())
	default:
		return nil
	}
}

// Stop sends SIGINT and waits up to a minute, then kills the group.
func (p *serverProc) Stop() error {
	select {
	case <-p.exited:
		return nil
	default:
	}
	_ = p.cmd.Process.Signal(os.Interrupt)
	select {
	case <-p.exited:
	case <-time.After(time.Minute):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.exited
		return errors.New("aipress server did not exit within 1m after SIGINT; killed")
	}
	var ee *exec.ExitError
	if p.waitErr != nil && !errors.As(p.waitErr, &ee) {
		return p.waitErr
	}
	return nil
}

// newHTTPClient returns an HTTP client whose transport keeps up to conns
// connections to the server open (the default keeps 2 idle per host, which
// would make a thousand long polls reconnect all the time). Its timeout
// exceeds the longest long poll.
func newHTTPClient(conns int) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.MaxIdleConns = conns + 16
	tr.MaxIdleConnsPerHost = conns + 16
	return &http.Client{Transport: tr, Timeout: 2 * time.Minute}
}

// newClient returns an API client over its own HTTP client of conns
// connections.
func newClient(url, token string, conns int) *apiclient.Client {
	cl := apiclient.New(url, token)
	cl.HTTPClient = newHTTPClient(conns)
	return cl
}

// cpuProfile fetches a CPU profile of d from the server's pprof endpoint
// into path.
func (p *serverProc) cpuProfile(ctx context.Context, d time.Duration, path string) error {
	if p.debug == "" {
		return errors.New("the server serves no pprof (started without debug)")
	}
	url := fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", p.debug, int(d/time.Second))
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+p.token)
	resp, err := (&http.Client{Timeout: d + time.Minute}).Do(req)
	if err != nil {
		return fmt.Errorf("cpu profile: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("cpu profile: %s", resp.Status)
	}
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("cpu profile: %w", err)
	}
	return f.Close()
}
