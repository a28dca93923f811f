package controlplane

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/aipress/aipress/internal/control"
	"github.com/aipress/aipress/internal/store"
	"github.com/aipress/aipress/internal/supervise"
)

// AgentTokenFile is the file in a local shard's directory that holds its
// agent token (mode 0600), so the shard restarts with it.
const AgentTokenFile = "agent-token"

// childShards runs the local provider's shards as supervised child
// processes (`aipress shard`) of `aipress server`: restarted when they exit,
// stopped with the server.
type childShards struct {
	dataDir, binary, apiURL, transferURL string
	purgeURL, purgeSecretFile            string
	catalogueURL                         string
	allowPrivateFetch                    bool
	publicPort                           int
	heartbeat                            time.Duration // the children's heartbeat interval
	log                                  *slog.Logger

	mu      sync.Mutex
	running map[string]bool
	wg      sync.WaitGroup
	ctx     context.Context // the leader's term that started them
}

// start is control.LocalProvider.Start: it writes the token and starts the
// child under the current leadership term's context.
func (c *childShards) start(_ context.Context, sh store.Shard, token string) error {
	dir := filepath.Join(c.dataDir, "shards", sh.Name)
	if err := os.MkdirAll(dir, 0o711); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, AgentTokenFile), []byte(token+"\n"), 0o600); err != nil {
		return fmt.Errorf("agent token: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ctx == nil {
		return fmt.Errorf("not leading: cannot start shard %s", sh.Name)
	}
	c.spawnLocked(c.ctx, sh, dir)
	return nil
}

// restartAll starts every local shard of the store that is not running,
// for this leadership term (ctx), and waits until the term ends.
func (c *childShards) restartAll(ctx context.Context, st store.Store) {
	c.mu.Lock()
	c.ctx = ctx
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.ctx = nil
		c.mu.Unlock()
	}()
	shards, err := st.ListShards(ctx)
	if err != nil {
		c.log.Error("listing local shards to restart", "err", err)
	}
	for _, sh := range shards {
		if sh.Provider != control.ProviderLocal {
			continue
		}
		dir := filepath.Join(c.dataDir, "shards", sh.Name)
		if _, err := os.Stat(filepath.Join(dir, AgentTokenFile)); err != nil {
			token, err := control.IssueShardToken(ctx, st, sh.Name, time.Now())
			if err != nil {
				c.log.Error("issuing a token to restart a local shard", "shard", sh.Name, "err", err)
				continue
			}
			if err := c.start(ctx, sh, token); err != nil {
				c.log.Error("restarting a local shard", "shard", sh.Name, "err", err)
			}
			continue
		}
		c.mu.Lock()
		c.spawnLocked(ctx, sh, dir)
		c.mu.Unlock()
	}
	<-ctx.Done()
}

func (c *childShards) spawnLocked(ctx context.Context, sh store.Shard, dir string) {
	if c.running == nil {
		c.running = map[string]bool{}
	}
	if c.running[sh.Name] {
		return
	}
	c.running[sh.Name] = true
	bin := c.binary
	if bin == "" {
		bin, _ = os.Executable()
	}
	args := []string{"shard", "--name", sh.Name, "--server", c.apiURL,
		"--token-file", filepath.Join(dir, AgentTokenFile), "--data-dir", dir,
		"--capacity", strconv.Itoa(sh.Capacity), "--public-port", strconv.Itoa(c.publicPort),
		"--provider", control.ProviderLocal, "--transfer-url", c.transferURL,
		"--heartbeat-interval", c.heartbeat.String()}
	if c.catalogueURL != "" {
		args = append(args, "--catalogue-url", c.catalogueURL)
	}
	if c.allowPrivateFetch {
		args = append(args, "--allow-private-fetch")
	}
	if c.purgeURL != "" && c.purgeSecretFile != "" {
		args = append(args, "--purge-url", c.purgeURL, "--purge-secret-file", c.purgeSecretFile)
	}
	for k, v := range sh.Labels {
		args = append(args, "--label", k+"="+v)
	}
	log := c.log.With("shard", sh.Name)
	p := &supervise.Process{
		Name: "shard " + sh.Name, PIDFile: filepath.Join(dir, "agent.pid"), Match: "aipress",
		StopSignal: syscall.SIGTERM, StopTimeout: 30 * time.Second, Logger: log,
		Command: func() *exec.Cmd {
			cmd := exec.Command(bin, args...)
			w := &prefixWriter{log: log}
			cmd.Stdout, cmd.Stderr = w, w
			return cmd
		},
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer func() { c.mu.Lock(); delete(c.running, sh.Name); c.mu.Unlock() }()
		if err := p.Run(ctx, nil); err != nil && ctx.Err() == nil {
			log.Error("local shard stopped", "err", err)
		}
	}()
	log.Info("started local shard agent", "dir", dir)
}

// wait waits for every child to stop (after the leadership context ended).
func (c *childShards) wait() { c.wg.Wait() }

// prefixWriter passes a child's log lines on to the server's output, each
// line prefixed with the shard's name.
type prefixWriter struct {
	log *slog.Logger
	mu  sync.Mutex
	buf []byte
}

func (w *prefixWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf = append(w.buf, p...)
	for {
		i := strings.IndexByte(string(w.buf), '\n')
		if i < 0 {
			break
		}
		line := string(w.buf[:i])
		w.buf = w.buf[i+1:]
		w.log.Info("shard agent: " + line)
	}
	return len(p), nil
}
