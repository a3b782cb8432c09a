#!/usr/bin/env bash
# The project's run command: a Switchboard proxy and the chat example on this
# machine. Open http://localhost:5000 in two browser tabs and chat; Ctrl-C
# stops both.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")/.."

# Demo-only key shared by the proxy and the chat app server; never use it elsewhere.
ACCESS_KEY=switchboard-demo-access-key-not-for-production
PUBLIC_URL=http://localhost:8080

echo "==== installing the chat page's npm package ===="
if [ ! -f sdk/examples/chat/node_modules/.package-lock.json ] ||
  [ sdk/examples/chat/package-lock.json -nt sdk/examples/chat/node_modules/.package-lock.json ]; then
  (cd sdk/examples/chat && npm ci --no-audit --no-fund)
fi

echo "==== building (release) ===="
cargo build --release -p switchboard-proxy --bin switchboard -p switchboard-sdk --example chat
target_dir=${CARGO_TARGET_DIR:-target}

pids=()
stop() {
  trap - INT TERM EXIT
  if [ "${#pids[@]}" -gt 0 ]; then
    kill "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
  fi
}
trap stop INT TERM EXIT

echo "==== starting the proxy on :8080 (clients), :7070 (app servers), :9090 (admin) ===="
RUST_LOG=${RUST_LOG:-info} "$target_dir/release/switchboard" \
  --listen 0.0.0.0:8080 \
  --upstream-listen 127.0.0.1:7070 \
  --admin-listen 127.0.0.1:9090 \
  --access-key "$ACCESS_KEY" \
  --public-url "$PUBLIC_URL" \
  --allowed-origins http://localhost:5000,http://127.0.0.1:5000 &
pids+=($!)

# The chat app links to the proxy's upstream port; give the proxy a moment to listen.
for _ in $(seq 1 100); do
  if (exec 3<>/dev/tcp/127.0.0.1/7070) 2>/dev/null; then
    break
  fi
  sleep 0.1
done

echo "==== starting the chat app on 127.0.0.1:5000 ===="
SWITCHBOARD_CONNECTION_STRING="Endpoint=$PUBLIC_URL;AccessKey=$ACCESS_KEY;Version=1.0;ServerEndpoint=http://127.0.0.1:7070" \
  RUST_LOG=${RUST_LOG:-info} "$target_dir/release/examples/chat" --listen 127.0.0.1:5000 &
pids+=($!)

echo
echo "Open http://localhost:5000 in two browser tabs"
echo "(Ctrl-C stops the proxy and the chat app)"
echo

# Stop everything as soon as either process exits (or on Ctrl-C).
wait -n "${pids[@]}"
