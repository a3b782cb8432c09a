#!/usr/bin/env bash
# Installs the peers `switchboard-bench` measures Switchboard against, when
# missing: Pushpin with its zurl and condure helpers (Debian packages) and
# socket.io (npm, from tests/peers/socketio/package-lock.json). Safe to run
# again; fast when everything is in place. Prints the installed versions.
#
# The Debian package also installs a system Pushpin service; the generator
# never uses it (it starts its own instance on free loopback ports).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"

source ../../scripts/apt.sh

if ! command -v pushpin >/dev/null || ! command -v zurl >/dev/null || ! command -v condure >/dev/null; then
  apt_install pushpin zurl condure
fi
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  apt_install nodejs npm
fi

# `npm ci` unless node_modules matches the lock file (npm records the
# installed tree in node_modules/.package-lock.json).
if [ ! -f socketio/node_modules/.package-lock.json ] ||
  [ socketio/package-lock.json -nt socketio/node_modules/.package-lock.json ]; then
  (cd socketio && npm ci --no-audit --no-fund)
else
  echo "tests/peers/socketio/node_modules is up to date"
fi

socketio_version=$(node -p 'require("./socketio/node_modules/socket.io/package.json").version')
echo "peers: $(pushpin --version), $(zurl --version 2>&1 | head -n1), socket.io ${socketio_version} on node $(node --version)"
