# AIPress. `make run` and `make test` are the two commands the README opens with.
SHELL := /bin/bash
export PATH := $(PATH):/usr/local/go/bin
GO ?= go
N ?= 100

.PHONY: all deps envtest-assets web build run test test-short bench bench-smoke bench-provision bench-openbasedir bench-edge bench-scale bench-backup bench-rotate bench-code bench-portal bench-db bench-chaos bench-import bench-move vet fmt clean

all: build

deps:
	@scripts/deps.sh

# A real kube-apiserver and etcd for the Kubernetes provider's tests
# (envtest), built once from the Go module proxy and cached under
# ~/.cache/aipress/envtest/ (~15 min cold on 2 cores, instant when cached).
envtest-assets:
	@scripts/envtest-assets.sh >/dev/null

# The web portal: web/ (React + Vite) built into internal/portal/dist,
# which is committed and embedded in the binary (docs/portal.md).
web:
	@scripts/web.sh build

build:
	@mkdir -p bin
	$(GO) build -o bin/aipress ./cmd/aipress

run: deps build
	bin/aipress up

# The whole suite: unit, contract, API and end-to-end tests against real
# MariaDB, php-fpm and WordPress, then every benchmark harness at a tiny
# size (bench-smoke). It builds bin/aipress first: the benchmarks run it.
# The harnesses' own tiny Go tests that start a whole platform
# (BENCH_TINY_TESTS) are left to bench-smoke, which runs the same harness
# code through its entry point and make target; `go test ./bench/...` still
# runs them.
BENCH_TINY_TESTS = ^(TestRotateTiny|TestCodeTiny|TestDBTiny|TestPortalTiny|TestChaosTiny)$$
test: deps envtest-assets build
	$(GO) vet ./...
	scripts/web.sh check
	KUBEBUILDER_ASSETS="$$(scripts/envtest-assets.sh)" $(GO) test -count=1 -timeout 45m -skip '$(BENCH_TINY_TESTS)' ./...
	# Every Go benchmark once (tiny): benchmarks rot when nothing runs them.
	$(GO) test -count=1 -run '^$$' -bench . -benchtime 1x ./internal/...
	@$(MAKE) --no-print-directory bench-smoke

test-short:
	$(GO) test -short -count=1 ./...

bench: bench-provision

# Extra flags for a harness, appended to its command line below, e.g.
# `make bench-provision N=10 BENCH_FLAGS=-keep` (each harness's -help lists
# its flags); bench-smoke sets the knobs without a variable of their own.
BENCH_FLAGS ?=

# Every benchmark harness once at a tiny size, each through its own make
# target above and below (variables, flags, entry point), so that neither a
# harness nor its wiring can rot unnoticed: a few minutes on 2 cores (the
# sizes and each harness's time: scripts/bench-smoke.sh). It fails when a
# harness fails — cannot run or measure, or a check of what it measured
# fails — and never on a missed goal (harnesses print goals as met/missed).
# make test runs it.
# SMOKE="edge db" runs only those harnesses.
SMOKE ?=
bench-smoke: deps build
	@DEPS_EXTRA="nginx wrk restic" scripts/deps.sh
	@MAKE="$(MAKE)" scripts/bench-smoke.sh $(SMOKE)

# SHARDS: shards to spread the sites over (default one per 50 sites: N=1000
# runs on 20); PARALLEL: sites created at once (default 1; N=1000 takes
# about an hour with PARALLEL=4 on 2 busy cores).
SHARDS ?= 0
PARALLEL ?= 1
bench-provision: deps build
	$(GO) run ./bench/provision -n $(N) -shards $(SHARDS) -parallel $(PARALLEL) $(BENCH_FLAGS)

# What open_basedir would cost the per-site pools (they do not set it).
bench-openbasedir: deps build
	$(GO) run ./bench/openbasedir $(BENCH_FLAGS)

# The edge against nginx (fastcgi_cache) on the same site and php-fpm pool,
# with wrk. Debian's nginx package has the FastCGI cache; nginx-light in
# Debian 12 is only nginx plus the echo module.
DURATION ?= 10s
CONNECTIONS ?= 32
ROUNDS ?= 2
bench-edge:
	@DEPS_EXTRA="nginx wrk" scripts/deps.sh
	@$(MAKE) --no-print-directory build
	$(GO) run ./bench/edge -duration $(DURATION) -connections $(CONNECTIONS) -threads 2 -rounds $(ROUNDS) $(BENCH_FLAGS)

# One control plane at federation scale: SITES sites over SHARDS shards (all
# but 2 simulated agents), on SQLite and on PostgreSQL (STORE=sqlite|postgres|both).
# SEED sites go straight into the store (see docs/operations.md).
SITES ?= 50000
SHARDS ?= 1000
STORE ?= both
SEED ?= 0
bench-scale: deps build
	$(GO) run ./bench/scale -sites $(SITES) -shards $(SHARDS) -store $(STORE) -seed $(SEED) $(BENCH_FLAGS)

# AIPress's backups against restic (Debian's) on the same generated site:
# first and second (unchanged) backup, restore, repository sizes.
POSTS ?= 3000
UPLOADS_MB ?= 200
bench-backup:
	@DEPS_EXTRA="restic" scripts/deps.sh
	$(GO) run ./bench/backup -posts $(POSTS) -uploads-mb $(UPLOADS_MB) $(BENCH_FLAGS)

# Every site's DB password rotated under wrk load on a real platform:
# requests, failed requests (non-2xx/3xx, socket errors; goal 0), p50/p99
# latency, rotation time per site. ROTATE_SITES sites, wrk -t2 with
# ROTATE_CONNECTIONS connections (bench/rotate; a tiny run is in
# bench-smoke). scripts/deps.sh installs wrk.
ROTATE_SITES ?= 50
ROTATE_CONNECTIONS ?= 16
bench-rotate: deps build
	$(GO) run ./bench/rotate -sites $(ROTATE_SITES) -threads 2 -connections $(ROTATE_CONNECTIONS) $(BENCH_FLAGS)

# WordPress as code on a real platform: one plugin (generated, ~2 MB, 320
# PHP files) installed on CODE_SITES sites of a shard — time, and disk of
# the shared artefact store against per-site copies — then a fleet update
# of them in waves (canary 1, waves of 10, 4 at once) and one to a broken
# version that must stop at its canary (bench/code; a tiny run is in
# bench-smoke).
CODE_SITES ?= 50
bench-code: deps build
	$(GO) run ./bench/code -sites $(CODE_SITES) $(BENCH_FLAGS)

# The shard's database tier (docs/database.md, "Benchmark"): BENCH_DB_SITES sites
# on one shard under the same wrk load (uncached pages: home, post, search,
# archive reads and 1 in 20 comment writes) in the configurations of one
# run, BENCH_DB_CONFIGS in order — direct connections (the anchor), the
# pooler, the pooler with a local read replica; direct and the pooler three
# times each, interleaved, because a 2-core VM's speed moves from one minute
# to the next: req/s, p99, backend connections (peak/mean), primary SELECTs
# per request, and the goals against direct, judged on the means of the
# runs (bench/db; a tiny run is in bench-smoke). scripts/deps.sh installs wrk.
BENCH_DB_CONFIGS ?= direct,pooler,direct,pooler,direct,pooler,pooler+replica
BENCH_DB_SITES ?= 50
BENCH_DB_DURATION ?= 60s
BENCH_DB_WARMUP ?= 20s
BENCH_DB_CONNECTIONS ?= 16
bench-db: deps build
	$(GO) run ./bench/db -sites $(BENCH_DB_SITES) -duration $(BENCH_DB_DURATION) -warmup $(BENCH_DB_WARMUP) -threads 2 -connections $(BENCH_DB_CONNECTIONS) -configs $(BENCH_DB_CONFIGS) $(BENCH_FLAGS)

# Restarts under load (bench/chaos): on a real platform with CHAOS_SITES
# sites and CHAOS_WORKERS concurrent requests on cached and uncached pages,
# kill -9 the shard's MariaDB, its php-fpm master and the whole platform
# (restarted at once; the shard agent runs inside it), and print per fault
# the errors by kind and the recovery time against the goal (0 errors
# beyond refused connections, recovery ≤ 2 s). A tiny run is its
# TestChaosTiny in make test.
CHAOS_SITES ?= 3
CHAOS_WORKERS ?= 8
bench-chaos: deps build
	$(GO) run ./bench/chaos -sites $(CHAOS_SITES) -workers $(CHAOS_WORKERS) $(BENCH_FLAGS)

fmt:
	gofmt -w $$(git ls-files '*.go')

clean:
	rm -rf bin

# Import of a generated site of IMPORT_SIZE_MB MiB (a mariadb-dump style
# dump full of the old URL and uploads of various sizes, as a tar.gz)
# through a real platform, as an archive (POST /v1/imports, as `site import
# --archive`) and live (`site import --ssh` run against an SSH server in
# the harness serving the same site; BENCH_FLAGS=-modes=archive picks one):
# total time and phases, peak memory of aipress and of the pulling CLI next
# to the archive's size, and the URL rewrite's throughput next to a PHP
# `wp search-replace --precise` on the same data (bench/import; a tiny run
# is in bench-smoke).
IMPORT_SIZE_MB ?= 1024
bench-import: deps build
	$(GO) run ./bench/import -size-mb $(IMPORT_SIZE_MB) $(BENCH_FLAGS)

# The portal's sites list with PORTAL_SITES sites in Chromium: load time,
# rows in the page (virtualised), frame times while scrolling, bundle size.
PORTAL_SITES ?= 5000
# A small site's move between two shards of `aipress up --shards 2`, with
# one writer and one reader on it: the move's phases, the freeze window as
# the writer sees it and the reads' status codes, MOVES times back and forth
# (bench/move; a tiny run is in bench-smoke).
MOVES ?= 3
bench-move: deps build
	$(GO) run ./bench/move -moves $(MOVES) $(BENCH_FLAGS)

bench-portal: deps build
	$(GO) run ./bench/portal -bin bin/aipress -sites $(PORTAL_SITES) $(BENCH_FLAGS)
