package main

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/aipress/aipress/internal/api"
	"github.com/aipress/aipress/internal/control"
	"github.com/aipress/aipress/internal/store"
	storeopen "github.com/aipress/aipress/internal/store/open"
)

// inProcess is a TEMPORARY stand-in for `aipress server` while the binary
// lacks that command: the API and the leader's control loop over the store,
// in this process. Its memory and CPU cannot be told apart from the
// benchmark's, so PID is 0 and those figures are not measured.
type inProcess struct {
	url, token string
	srv        *http.Server
	st         store.Store
	cancel     context.CancelFunc
	done       chan struct{}
}

func startInProcess(ctx context.Context, dir, spec string, log *slog.Logger) (*inProcess, error) {
	dataDir := filepath.Join(dir, "server")
	if err := os.MkdirAll(dataDir, 0o700); err != nil {
		return nil, err
	}
	st, err := storeopen.Open(ctx, spec, dataDir)
	if err != nil {
		return nil, err
	}
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	token := "aip_" + hex.EncodeToString(b)
	sum := sha256.Sum256([]byte(token))
	if err := st.CreateToken(ctx, store.Token{ID: "bench-admin", Name: "bench admin", Role: store.RoleAdmin,
		Hash: hex.EncodeToString(sum[:]), CreatedAt: time.Now().UTC()}); err != nil {
		st.Close()
		return nil, fmt.Errorf("admin token: %w", err)
	}
	hub := api.NewHub(st, log)
	ctrl := control.New(control.Config{Store: st, Logger: log, HeartbeatTimeout: 30 * time.Second, Notify: hub.Notify})
	h := api.New(api.Config{Store: st, Hub: hub, Notify: ctrl.Wake, Logger: log})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		st.Close()
		return nil, err
	}
	runCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	p := &inProcess{url: "http://" + ln.Addr().String(), token: token, st: st, cancel: cancel, done: make(chan struct{}),
		srv: &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}}
	go func() { _ = p.srv.Serve(ln) }()
	go func() { defer close(p.done); _ = ctrl.Run(runCtx) }()
	logf("control plane in process (temporary: %s has no server command) at %s", "the binary", p.url)
	return p, nil
}

func (p *inProcess) URL() string   { return p.url }
func (p *inProcess) Token() string { return p.token }
func (p *inProcess) PID() int      { return 0 }
func (p *inProcess) Died() error   { return nil }

func (p *inProcess) Stop() error {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := p.srv.Shutdown(ctx)
	if errors.Is(err, context.DeadlineExceeded) {
		err = p.srv.Close()
	}
	p.cancel()
	<-p.done
	return errors.Join(err, p.st.Close())
}
