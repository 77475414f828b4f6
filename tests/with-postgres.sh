#!/usr/bin/env bash
# Run a command against a throwaway PostgreSQL cluster: initdb into a temporary directory,
# start it on a free loopback port, export TEST_DATABASE_URL, and remove everything
# afterwards, even when the command fails. As root, the server runs as the postgres user
# (initdb and postgres refuse to run as root).
set -euo pipefail

find_bin() {
  if command -v "$1" >/dev/null 2>&1; then command -v "$1"; return; fi
  local dir
  dir=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  [ -n "$dir" ] && [ -x "$dir/$1" ] && { echo "$dir/$1"; return; }
  echo "error: $1 not found; install PostgreSQL (apt-get install postgresql)" >&2
  exit 1
}
INITDB=$(find_bin initdb)
PG_CTL=$(find_bin pg_ctl)

tmp=$(mktemp -d /tmp/crm-pg.XXXXXX)
chmod 755 "$tmp"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

as_pg=()
if [ "$(id -u)" = "0" ]; then
  id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
  chown postgres "$tmp"
  as_pg=(runuser -u postgres --)
fi

cleanup() {
  "${as_pg[@]}" "$PG_CTL" -D "$tmp/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

"${as_pg[@]}" "$INITDB" -D "$tmp/data" -U crm --auth=trust -E UTF8 --no-locale >"$tmp/initdb.log" 2>&1 \
  || { cat "$tmp/initdb.log"; exit 1; }
"${as_pg[@]}" "$PG_CTL" -D "$tmp/data" -l "$tmp/server.log" -w -t 60 start \
  -o "-p $port -k $tmp -c listen_addresses=127.0.0.1 -c max_connections=400 -c fsync=off -c synchronous_commit=off -c full_page_writes=off" \
  >/dev/null || { cat "$tmp/server.log"; exit 1; }

echo "PostgreSQL on 127.0.0.1:$port (data in $tmp)"
export TEST_DATABASE_URL="postgres://crm@127.0.0.1:$port/postgres"
"$@"
