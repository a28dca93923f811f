#!/usr/bin/env bash
# The web portal's build and checks (web/ → internal/portal/dist).
#   scripts/web.sh build   install the pinned tools, regenerate the API types, build into internal/portal/dist
#   scripts/web.sh check   component tests (Vitest), and fail if the committed build or API types are stale
# The tools are pinned to versions that run on Debian 12's own Node.js 18
# (vite 5, vitest 3); the build is committed so that building and running
# AIPress needs no Node.js at all.
set -euo pipefail
cd "$(dirname "$0")/../web"

if ! command -v npm >/dev/null; then
  echo "web: npm is missing; run 'make deps' as root (installs Debian's nodejs and npm)" >&2
  exit 1
fi

# npm ci only when package-lock.json changed since the last install.
sum=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ "$(cat node_modules/.aipress-lock 2>/dev/null)" != "$sum" ]; then
  npm ci --no-audit --no-fund --loglevel=error
  echo "$sum" >node_modules/.aipress-lock
fi

case "${1:-}" in
build)
  npm run --silent gen
  npm run --silent build
  ;;
check)
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  npx --no-install openapi-typescript ../internal/api/openapi.yaml -o "$tmp/schema.d.ts" --silent >/dev/null
  if ! cmp -s "$tmp/schema.d.ts" src/api/schema.d.ts; then
    echo "web: src/api/schema.d.ts is stale: internal/api/openapi.yaml changed; run 'make web' and commit" >&2
    exit 1
  fi
  npx --no-install tsc --noEmit
  npx --no-install vitest run --reporter=dot
  npx --no-install vite build --logLevel error --outDir "$tmp/dist" --emptyOutDir
  if ! diff -r "$tmp/dist" ../internal/portal/dist >"$tmp/diff"; then
    head -20 "$tmp/diff" >&2
    echo "web: internal/portal/dist is stale: web/ changed since the last build; run 'make web' and commit" >&2
    exit 1
  fi
  echo "web: component tests pass; the committed build matches web/"
  ;;
*)
  echo "usage: scripts/web.sh build|check" >&2
  exit 2
  ;;
esac
