# Sourced by the spec checks (tests/fuzz.sh, tests/clients/run.sh): starts `target/debug/crm`
# on a free loopback port over a fresh SQLite database and signs in as its admin.
# Sets `base`, `token`, `admin_email`, `password` and `server_dir`; stops the server and
# removes the database on exit. The caller builds the binary first.

admin_email=admin@example.com
password="spec-admin-password-$RANDOM$RANDOM"
server_dir=$(mktemp -d /tmp/crm-spec.XXXXXX)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base="http://127.0.0.1:$port"

DATABASE_URL="sqlite://$server_dir/crm.db" CRM_LISTEN="127.0.0.1:$port" \
  CRM_ADMIN_EMAIL="$admin_email" CRM_ADMIN_PASSWORD="$password" \
  CRM_ACCESS_TOKEN_TTL_SECS=7200 RUST_LOG=warn \
  CRM_RATE_LIMIT_PER_MINUTE=1000000 CRM_ANONYMOUS_RATE_LIMIT_PER_MINUTE=1000000 \
  "$root/target/debug/crm" serve >"$server_dir/server.log" 2>&1 &
server_pid=$!

stop_server() {
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  rm -rf "$server_dir"
}
trap stop_server EXIT INT TERM

for _ in $(seq 1 100); do
  curl -sf "$base/health/ready" >/dev/null 2>&1 && break
  sleep 0.1
done
token=$(curl -sf "$base/api/v1/auth/login" -H 'Content-Type: application/json' \
  -d "{\"email\":\"$admin_email\",\"password\":\"$password\"}" |
  sed -E 's/.*"access_token":"([^"]+)".*/\1/')

server_log() {
  echo "--- server log (last 40 lines) ---"
  tail -n 40 "$server_dir/server.log"
}
