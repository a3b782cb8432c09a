#!/usr/bin/env bash
# Runs the ASP.NET Core SignalR TypeScript functional tests
# (src/SignalR/clients/ts/FunctionalTests/ts in an aspnetcore checkout)
# against Switchboard: builds the proxy and the testhub example, starts both
# on free loopback ports, compiles the suite's ts/ files with tsc and runs
# them with jasmine under Node. Nothing of the checkout is copied here; the
# compiled specs and the logs go to tests/reference/.build/.
#
#   tests/reference/run.sh [--release] ASPNETCORE_CHECKOUT
#
# --release uses release binaries (built if missing or stale) instead of
# debug ones. Exits 0 when no spec failed. See README.md.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)

profile=debug
if [ "${1:-}" = "--release" ]; then
  profile=release
  shift
fi
if [ $# -ne 1 ]; then
  echo "usage: $0 [--release] ASPNETCORE_CHECKOUT" >&2
  exit 2
fi
checkout=$(cd "$1" && pwd)
suite="$checkout/src/SignalR/clients/ts/FunctionalTests/ts"
if [ ! -f "$suite/HubConnectionTests.ts" ]; then
  echo "$suite/HubConnectionTests.ts not found: give the root of an aspnetcore checkout" >&2
  exit 2
fi

build="$here/.build"
rm -rf "$build"
mkdir -p "$build"

section() {
  printf '\n==== %s ====\n' "$*"
}

section "npm packages (tests/reference)"
if [ ! -f "$here/node_modules/.package-lock.json" ] ||
  [ "$here/package-lock.json" -nt "$here/node_modules/.package-lock.json" ]; then
  (cd "$here" && npm ci --no-audit --no-fund)
else
  echo "up to date"
fi

section "build the proxy and the testhub ($profile)"
cargo_flags=()
[ "$profile" = release ] && cargo_flags=(--release)
(cd "$root" &&
  cargo build "${cargo_flags[@]}" -p switchboard-proxy --bin switchboard &&
  cargo build "${cargo_flags[@]}" -p switchboard-sdk --example testhub)
target_dir=${CARGO_TARGET_DIR:-$root/target}
case "$target_dir" in /*) ;; *) target_dir="$root/$target_dir" ;; esac
proxy_bin="$target_dir/$profile/switchboard"
testhub_bin="$target_dir/$profile/examples/testhub"

section "compile the suite with tsc"
# index.ts only gathers the specs for the browser bundle (with a Promise
# polyfill); jasmine loads the *Tests.js files itself.
cat >"$build/tsconfig.json" <<EOF
{
  "extends": "../tsconfig.json",
  "compilerOptions": { "rootDir": "$suite", "outDir": "$build/out" },
  "include": ["$suite/*.ts"],
  "exclude": ["$suite/index.ts"]
}
EOF
(cd "$here" && node_modules/.bin/tsc -p "$build/tsconfig.json")
echo "compiled $(find "$build/out" -name '*Tests.js' | wc -l) spec files from $suite"

free_port() {
  node -e 'const s = require("node:net").createServer().listen(0, "127.0.0.1", () => { console.log(s.address().port); s.close(); });'
}

pids=()
cleanup() {
  for pid in "${pids[@]}"; do
    kill "$pid" 2>/dev/null || true
  done
  wait 2>/dev/null || true
}
trap cleanup EXIT

# Waits until GET $1 answers 200; gives up after 30 s or when process $2 ends.
wait_ok() {
  local url=$1 pid=$2 log=$3
  for _ in $(seq 300); do
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "the process behind $url exited; its log ($log):" >&2
      tail -n 40 "$log" >&2
      exit 1
    fi
    if [ "$(node -e 'fetch(process.argv[1]).then((r) => console.log(r.status), () => console.log(0))' "$url")" = 200 ]; then
      return 0
    fi
    sleep 0.1
  done
  echo "$url did not answer 200 within 30 s; log: $log" >&2
  exit 1
}

section "start the proxy and the testhub"
client_port=$(free_port)
upstream_port=$(free_port)
admin_port=$(free_port)
app_port=$(free_port)
access_key=$(node -e 'console.log(require("node:crypto").randomBytes(24).toString("hex"))')
proxy_url="http://127.0.0.1:$client_port"
app_url="http://127.0.0.1:$app_port"

# testhub-nowebsockets is offered without WebSockets, as the reference server
# maps it. The specs read two request headers back through GetHeader: the
# client's User-Agent and a custom X-HEADER, so the proxy passes both on.
"$proxy_bin" \
  --listen "127.0.0.1:$client_port" \
  --upstream-listen "127.0.0.1:$upstream_port" \
  --admin-listen "127.0.0.1:$admin_port" \
  --access-key "$access_key" \
  --public-url "$proxy_url" \
  --hub-transports "testhub-nowebsockets=sse,longpolling" \
  --forward-headers "user-agent,x-header" \
  >"$build/proxy.log" 2>&1 &
pids+=($!)
wait_ok "http://127.0.0.1:$admin_port/readyz" "${pids[-1]}" "$build/proxy.log"

SWITCHBOARD_CONNECTION_STRING="Endpoint=$proxy_url;AccessKey=$access_key;Version=1.0;ServerEndpoint=http://127.0.0.1:$upstream_port" \
  "$testhub_bin" --listen "127.0.0.1:$app_port" \
  >"$build/testhub.log" 2>&1 &
pids+=($!)
wait_ok "$app_url/health" "${pids[-1]}" "$build/testhub.log"

# The suite's one base URL: the testhub, plus the proxy for clients that
# skip negotiation (see support/front.cjs).
node "$here/support/front.cjs" "$app_url" "$proxy_url" >"$build/front.log" 2>&1 &
pids+=($!)
front_url=
for _ in $(seq 100); do
  front_url=$(sed -n 's/^listening on //p' "$build/front.log")
  [ -n "$front_url" ] && break
  kill -0 "${pids[-1]}" 2>/dev/null || break
  sleep 0.1
done
if [ -z "$front_url" ]; then
  echo "the front did not start; its log:" >&2
  cat "$build/front.log" >&2
  exit 1
fi
echo "proxy $proxy_url (log $build/proxy.log), testhub $app_url (log $build/testhub.log), suite base URL $front_url"

section "jasmine: reference functional tests against the testhub"
# The suite reads `HTTPS_URL;HTTP_URL`; no HTTPS URL means its HTTPS specs
# are not defined (Switchboard's TLS is terminated in front of it).
status=0
(cd "$here" && SERVER_URL=";$front_url" node support/run.cjs "$build/out" "$build/client.log") || status=$?
exit "$status"
