#!/usr/bin/env bash
# The spec as its users meet it, run by `make test` (and the linter by `make lint`):
#   lint     Redocly CLI over the committed spec with openapi/redocly.yaml: zero problems;
#   ts       a TypeScript client generated from the committed spec (openapi-typescript +
#            openapi-fetch), a program type-checked with `tsc --strict` and run against a
#            live server; every operation of the spec must be generated;
#   python   the same with openapi-python-client;
#   browser  the docs page in headless Chromium (playwright-core): every tag renders,
#            "Try it out" works with a token, no request leaves the server; a screenshot
#            goes to target/clients/docs.png.
# `run.sh lint ts python browser` (the default runs all four). Versions are pinned in
# package.json / package-lock.json and below.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
spec="$root/openapi/openapi.json"
out="$root/target/clients"
PYTHON_CLIENT_VERSION=0.29.1
steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(lint ts python browser)
mkdir -p "$out"
node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit(a > 20 || (a === 20 && b >= 19) ? 0 : 1)' ||
  { echo "the spec checks need Node.js 20.19 or later (this is $(node --version))"; exit 1; }

# npm ci only when the lock changed since the last install.
if ! cmp -s "$here/package-lock.json" "$here/node_modules/.installed-lock" 2>/dev/null; then
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error)
  cp "$here/package-lock.json" "$here/node_modules/.installed-lock"
fi
bin="$here/node_modules/.bin"

# Operations in the spec, to hold each generated client to all of them.
spec_operations=$(python3 -c '
import json, sys
d = json.load(open(sys.argv[1]))
print(sum(1 for item in d["paths"].values() for m in item if m in ("get","put","post","delete","patch","head","options","trace")))
' "$spec")

need_server() {
  if [ -z "${base:-}" ]; then
    (cd "$root" && cargo build -q --bin crm)
    . "$root/tests/serve.sh"
  fi
}

lint() {
  echo "== spec lint (Redocly CLI, openapi/redocly.yaml) =="
  # Redocly's banner about Node.js 20 is not about the spec.
  "$bin/redocly" lint "$spec" --config "$root/openapi/redocly.yaml" --max-problems 1000 2>&1 |
    grep -v '^ *║\|^ *╔\|^ *╚' | sed '/^$/N;/^\n$/D'
  return "${PIPESTATUS[0]}"
}

ts() {
  echo "== TypeScript client (openapi-typescript + openapi-fetch, tsc --strict) =="
  "$bin/openapi-typescript" "$spec" -o "$here/ts/schema.d.ts" --silent
  local generated
  generated=$(node -e '
    const src = require("fs").readFileSync(process.argv[1], "utf8");
    const ops = src.slice(src.indexOf("export interface operations {"));
    console.log((ops.match(/^    [a-z0-9_]+: \{$/gm) || []).length);
  ' "$here/ts/schema.d.ts")
  [ "$generated" = "$spec_operations" ] || {
    echo "the TypeScript client has $generated of the spec's $spec_operations operations"
    return 1
  }
  rm -rf "$here/ts/out"
  "$bin/tsc" -p "$here/ts"
  need_server
  CRM_BASE="$base" CRM_EMAIL="$admin_email" CRM_PASSWORD="$password" node "$here/ts/out/check.js" ||
    { server_log; return 1; }
  echo "$generated operations generated"
}

python() {
  echo "== Python client (openapi-python-client $PYTHON_CLIENT_VERSION) =="
  local venv="$root/target/clients-venv"
  if ! "$venv/bin/openapi-python-client" --version 2>/dev/null | grep -q "$PYTHON_CLIENT_VERSION"; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "openapi-python-client==$PYTHON_CLIENT_VERSION"
  fi
  rm -rf "$out/python"
  mkdir -p "$out/python"
  "$venv/bin/openapi-python-client" generate --path "$spec" --meta none \
    --output-path "$out/python/crm_client" >"$out/python/generate.log" 2>&1 ||
    { cat "$out/python/generate.log"; return 1; }
  local generated
  generated=$(find "$out/python/crm_client/api" -name '*.py' ! -name '__init__.py' | wc -l)
  [ "$generated" = "$spec_operations" ] || {
    cat "$out/python/generate.log"
    echo "the Python client has $generated of the spec's $spec_operations operations"
    return 1
  }
  need_server
  PYTHONPATH="$out/python" CRM_BASE="$base" CRM_EMAIL="$admin_email" CRM_PASSWORD="$password" \
    "$venv/bin/python" "$here/python/check.py" || { server_log; return 1; }
  echo "$generated operations generated"
}

browser() {
  echo "== docs page in headless Chromium (playwright-core) =="
  need_server
  CRM_BASE="$base" CRM_TOKEN="$token" CRM_SCREENSHOT="$out/docs.png" \
    node "$here/browser/docs-page.mjs" || { server_log; return 1; }
}

for step in "${steps[@]}"; do
  "$step"
done
