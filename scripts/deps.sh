#!/usr/bin/env bash
# Installs the Debian packages AIPress needs. Idempotent and quiet when
# everything is present. Run as root (make deps).
set -euo pipefail

pkgs=(
  mariadb-server mariadb-client
  php8.2-fpm php8.2-cli php8.2-mysql php8.2-gd php8.2-xml php8.2-curl php8.2-mbstring php8.2-zip
  wordpress wordpress-theme-twentytwentythree
  postgresql # the postgres store's tests start their own throwaway server from it
  ca-certificates curl passwd
  git # git sync's tests serve a bare repository over smart HTTP (git http-backend; internal/gitsync)
  util-linux mount # unshare, setpriv, mount: site code runs with a /proc of its own (internal/procns)
  e2fsprogs # mkfs.ext4, e2fsck, resize2fs: the sites' disk volumes (internal/volume)
  wrk # HTTP load of bench/rotate, bench/db and bench/edge (make bench-rotate, bench-db, bench-edge, bench-smoke in make test)
  chromium fonts-dejavu-core # the portal's browser end-to-end test (e2e/portal_test.go, chromedp)
  prometheus # promtool checks and unit-tests deploy/monitoring's rules; the real scrape test runs prometheus (deploy/monitoring)
)
# The web portal's component tests and build check (scripts/web.sh) need
# Node.js and npm; Debian 12's own (18.x) is enough. A machine with a newer
# Node.js from elsewhere keeps it (Debian's npm would conflict with it).
if ! command -v npm >/dev/null 2>&1; then
  pkgs+=(nodejs npm)
fi
# Extra packages for a target, e.g. DEPS_EXTRA="nginx wrk" for benchmarks.
read -r -a extra <<<"${DEPS_EXTRA:-}"
pkgs+=("${extra[@]}")

missing=()
for p in "${pkgs[@]}"; do
  [ -z "$p" ] && continue
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "deps: missing packages: ${missing[*]}; run 'make deps' as root" >&2
    exit 1
  fi
  echo "deps: installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  # policy-rc.d keeps Debian from starting the system-wide mariadb/php-fpm
  # services: AIPress runs its own supervised instances. postgresql-common
  # still creates the default "main" cluster (port 5432), which stays down;
  # the tests initdb their own in a temporary directory.
  prc=/usr/sbin/policy-rc.d
  created=0
  if [ ! -e "$prc" ]; then printf '#!/bin/sh\nexit 101\n' >"$prc"; chmod +x "$prc"; created=1; fi
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  [ "$created" = 1 ] && rm -f "$prc"
fi

# DEPS_NO_GO=1: a runtime image (Dockerfile) needs no Go toolchain.
[ -n "${DEPS_NO_GO:-}" ] && exit 0
gobin=$(command -v go || echo /usr/local/go/bin/go)
if ! "$gobin" version >/dev/null 2>&1; then
  echo "deps: Go 1.26 or newer is required (https://go.dev/doc/install); put it on PATH or in /usr/local/go" >&2
  exit 1
fi
