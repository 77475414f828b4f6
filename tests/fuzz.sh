#!/usr/bin/env bash
# Spec-driven fuzzing: schemathesis (pinned, in a virtual environment under target/) runs
# every operation of the live OpenAPI document against a real server on loopback, on a
# fresh SQLite database, authenticated as an admin. The bar is zero failures.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

ST_VERSION=4.32.5
SEED=${FUZZ_SEED:-20261123}
EXAMPLES=${FUZZ_EXAMPLES:-30}
venv="$root/target/fuzz-venv"

if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$ST_VERSION"; then
  echo "installing schemathesis $ST_VERSION into $venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q --disable-pip-version-check "schemathesis==$ST_VERSION"
fi

cargo build -q --bin crm
tmp=$(mktemp -d /tmp/crm-fuzz.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"
password="fuzz-admin-password-$RANDOM$RANDOM"

DATABASE_URL="sqlite://$tmp/crm.db" CRM_LISTEN="127.0.0.1:$port" \
  CRM_ADMIN_EMAIL=admin@example.com CRM_ADMIN_PASSWORD="$password" \
  CRM_ACCESS_TOKEN_TTL_SECS=7200 RUST_LOG=warn \
  CRM_RATE_LIMIT_PER_MINUTE=1000000 CRM_ANONYMOUS_RATE_LIMIT_PER_MINUTE=1000000 \
  target/debug/crm serve >"$tmp/server.log" 2>&1 &
pid=$!
cleanup() {
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

for _ in $(seq 1 100); do
  curl -sf "$base/health/ready" >/dev/null 2>&1 && break
  sleep 0.1
done
token=$(curl -sf "$base/api/v1/auth/login" -H 'Content-Type: application/json' \
  -d "{\"email\":\"admin@example.com\",\"password\":\"$password\"}" |
  sed -E 's/.*"access_token":"([^"]+)".*/\1/')

status=0
# The event stream never ends, so it cannot be fuzzed request by request; the Rust
# suite covers it (tests/tests/api/feed.rs).
SCHEMATHESIS_HOOKS=fuzz_hooks PYTHONPATH="$root/tests" \
  "$venv/bin/schemathesis" --config-file "$root/tests/schemathesis.toml" run "$base/openapi.json" \
  -H "Authorization: Bearer $token" \
  --seed "$SEED" --max-examples "$EXAMPLES" --mode all --checks all \
  --no-shrink --warnings off \
  --exclude-path /api/v1/events/stream || status=$?
if [ "$status" != 0 ]; then
  echo "--- server log (last 40 lines) ---"
  tail -n 40 "$tmp/server.log"
fi
exit "$status"
