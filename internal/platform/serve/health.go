package serve

import (
	"net/http"
	"sync/atomic"
)

// Health is a role's health endpoint (`aipress shard --health-addr`, `aipress
// up --health-addr`), also its pod's probes on Kubernetes: /livez answers
// 200 while the process serves; /readyz answers 200 once SetReady was called
// (the role's shards have converged their sites for the first time: they can
// take sites), 503 before. The zero value is ready to use.
type Health struct {
	ready atomic.Bool
}

// SetReady makes /readyz answer 200 from now on.
func (h *Health) SetReady() { h.ready.Store(true) }

// Handler serves /livez and /readyz.
func (h *Health) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /livez", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !h.ready.Load() {
			http.Error(w, "not converged yet", http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ok\n"))
	})
	return mux
}
