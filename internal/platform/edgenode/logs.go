package edgenode

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"path/filepath"
	"time"

	"github.com/aipress/aipress/internal/apiclient"
	"github.com/aipress/aipress/internal/logmesh"
	"github.com/aipress/aipress/internal/mtls"
	"github.com/aipress/aipress/internal/platform/serve"
	"github.com/aipress/aipress/internal/sitelog"
)

// LogsRegisterInterval is how often an edge tells the control plane the
// address of its logs listener (the control plane forgets an edge that
// has not for api.EdgeLogsTTL).
const LogsRegisterInterval = time.Minute

// accessLog is the edge's logmesh.Resolver: the access log of a site of
// its routing table (by name and UID).
func (n *Node) accessLog(_ context.Context, name, uid, kind string) (sitelog.Source, error) {
	if kind != sitelog.KindAccess {
		return sitelog.Source{}, fmt.Errorf("an edge keeps no %s log: %w", kind, logmesh.ErrNotFound)
	}
	uids := n.logUIDs.Load()
	if uids == nil || (*uids)[name] != uid {
		return sitelog.Source{}, fmt.Errorf("site %s (%s) is not in this edge's routing table: %w", name, uid, logmesh.ErrNotFound)
	}
	return sitelog.Source{Dir: filepath.Join(n.dataDir, AccessLogDir, name), Base: sitelog.AccessFile, Kind: sitelog.KindAccess, Site: name}, nil
}

// serveLogs serves the control plane's readings of the sites' access logs
// on ln (Config.LogsAddr) once the edge holds its certificate, and
// registers the address advertise with the control plane every
// LogsRegisterInterval, until ctx ends.
func (n *Node) serveLogs(ctx context.Context, mesh *edgeMesh, c *apiclient.Client, advertise string, log *slog.Logger) {
	var creds *mtls.Credentials
	select {
	case <-ctx.Done():
		return
	case <-mesh.ready:
		creds = mesh.creds.Load()
	}
	srv := &logmesh.Server{Resolve: n.accessLog, Logger: log, Flush: func() { _ = n.accessLogs.Flush() }}
	cfg := creds.ServerTLSByProto(map[string]mtls.Role{logmesh.Proto: mtls.RoleControl}, logmesh.Proto)
	go func() {
		failing := false
		for {
			err := c.EdgeLogsAddress(ctx, advertise)
			switch {
			case ctx.Err() != nil:
				return
			case err != nil && !failing:
				log.Warn("registering the edge's logs address; retrying", "addr", advertise, "err", err)
			case err == nil && failing:
				log.Info("edge's logs address registered", "addr", advertise)
			}
			failing = err != nil
			wait := LogsRegisterInterval
			if failing {
				wait = 5 * time.Second
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(wait):
			}
		}
	}()
	log.Info("edge serving sites' access logs to the control plane", "addr", n.logsLn.Addr().String(), "advertise", advertise)
	for {
		conn, err := n.logsLn.Accept()
		if err != nil {
			if ctx.Err() == nil && !errors.Is(err, net.ErrClosed) {
				log.Error("logs listener stopped", "err", err)
			}
			return
		}
		go func() {
			tc := tls.Server(conn, cfg)
			hctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			err := tc.HandshakeContext(hctx)
			cancel()
			if err != nil {
				log.Info("logs: handshake refused", "remote", conn.RemoteAddr().String(), "err", err)
				tc.Close()
				return
			}
			srv.ServeConn(ctx, tc)
		}()
	}
}

// logsAdvertise is the address the control plane reaches the logs
// listener ln at: advertise (a host, or host:port), else the listen
// address when it names a host.
func logsAdvertise(ln net.Addr, advertise, listen string) (string, error) {
	return serve.Advertise(ln, advertise, listen, "--logs-advertise", "the control plane reaches")
}
