#!/usr/bin/env bash
# `make bench`: the release server on loopback over `crm seed` data, driven by wrk, on
# SQLite and then on a throwaway PostgreSQL. Prints one markdown table and writes it to
# bench/RESULTS.md. Settings: SCALE (1 = 1M contacts; default 0.1), DURATION (per row,
# default 10s), CONNS (default 32), PROFILE (release, or debug for the CI smoke run),
# DATABASES ("sqlite postgres").
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
SCALE=${SCALE:-0.1}
DURATION=${DURATION:-10s}
CONNS=${CONNS:-32}
PROFILE=${PROFILE:-release}
DATABASES=${DATABASES:-sqlite postgres}
OUT=${OUT:-bench/RESULTS.md}

command -v wrk >/dev/null || { echo "wrk is missing: apt-get install wrk" >&2; exit 1; }
bin="$root/target/$PROFILE/crm"
if [ -z "${BENCH_INNER:-}" ]; then
  if [ "$PROFILE" = release ]; then
    cargo build -q --release --bin crm
  else
    cargo build -q --bin crm
  fi
  rows=$(mktemp)
  trap 'rm -f "$rows"' EXIT
else
  rows=$BENCH_ROWS
fi

# One database: seed it, serve it, measure every scenario, stop.
bench_one() {
  local label=$1 url=$2
  local tmp port base password pid token
  tmp=$(mktemp -d /tmp/crm-bench.XXXXXX)
  port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  base="http://127.0.0.1:$port"
  password="bench-admin-password-$RANDOM$RANDOM"
  echo "== $label: seeding at scale $SCALE" >&2
  DATABASE_URL="$url" CRM_SECRETS_KEY=bench-secrets-key-0123456789abcdefghij \
    CRM_JWT_SECRET=bench-jwt-secret-0123456789abcdefghijklmnop "$bin" seed --scale "$SCALE" >&2
  DATABASE_URL="$url" CRM_LISTEN="127.0.0.1:$port" RUST_LOG=warn \
    CRM_SECRETS_KEY=bench-secrets-key-0123456789abcdefghij \
    CRM_JWT_SECRET=bench-jwt-secret-0123456789abcdefghijklmnop \
    CRM_ADMIN_EMAIL=bench@example.com CRM_ADMIN_PASSWORD="$password" \
    CRM_ACCESS_TOKEN_TTL_SECS=7200 \
    CRM_RATE_LIMIT_PER_MINUTE=100000000 CRM_ANONYMOUS_RATE_LIMIT_PER_MINUTE=100000000 \
    CRM_CRITERIA_WAIT_MS=60000 \
    "$bin" serve >"$tmp/server.log" 2>&1 &
  pid=$!
  for _ in $(seq 1 200); do curl -sf "$base/health/ready" >/dev/null 2>&1 && break; sleep 0.1; done
  token=$(curl -sf "$base/api/v1/auth/login" -H 'Content-Type: application/json' \
    -d "{\"email\":\"bench@example.com\",\"password\":\"$password\"}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])')
  local H="Authorization: Bearer $token"
  local first contact account phone
  first=$(curl -sf "$base/api/v1/contacts?limit=1" -H "$H")
  contact=$(echo "$first" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"][0]["id"])')
  phone=$(echo "$first" | python3 -c 'import json,sys,urllib.parse; n=json.load(sys.stdin)["data"][0]["phones"][0]["e164"]; print(urllib.parse.quote("(%s) %s-%s" % (n[2:5], n[5:8], n[8:])))')
  account=$(curl -sf "$base/api/v1/accounts?limit=1" -H "$H" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"][0]["id"])')
  # The cursor of page 21 (or of the last page, on a small scale).
  local cursor="" next=""
  for _ in $(seq 1 20); do
    next=$(curl -sf "$base/api/v1/contacts?limit=50${cursor:+&cursor=$cursor}" -H "$H" | python3 -c 'import json,sys; print(json.load(sys.stdin)["next_cursor"] or "")')
    [ -n "$next" ] || break
    cursor=$next
  done
  local new='{"first_name":"Bench","last_name":"Writer","emails":[{"email":"bench@example.org"}]}'
  local batch
  batch=$(python3 -c 'import json; print(json.dumps({"items": [{"op": "create", "body": {"first_name": "Batch %d" % i}} for i in range(200)]}))')

  run() { # name method path [body]
    local name=$1 method=$2 path=$3 body=${4:-} out rps p50 p99 errors
    out=$(BENCH_TOKEN="$token" BENCH_METHOD="$method" BENCH_BODY="$body" \
      wrk -t2 -c"$CONNS" -d"$DURATION" --latency -s bench/wrk.lua "$base$path" 2>&1)
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    p50=$(echo "$out" | awk '$1 == "50%" {print $2}')
    p99=$(echo "$out" | awk '$1 == "99%" {print $2}')
    errors=$(echo "$out" | awk '/Non-2xx/ {print $5}')
    printf '| %s | %s | %s | %s | %s | %s |\n' "$label" "$name" "$rps" "$p50" "$p99" "${errors:-0}" >>"$rows"
    echo "  $name: $rps req/s, p99 $p99" >&2
  }
  run "GET contact by id" GET "/api/v1/contacts/$contact"
  run "first list page of 50" GET "/api/v1/contacts?limit=50"
  run "list by account, newest first" GET "/api/v1/contacts?account_id=$account&sort=-created_at&limit=50"
  run "page 21 by cursor" GET "/api/v1/contacts?limit=50${cursor:+&cursor=$cursor}"
  run "text search" GET "/api/v1/contacts?q=lovelace&limit=50"
  run "lookup by phone as written" GET "/api/v1/contacts?phone=$phone"
  run "timeline page" GET "/api/v1/contacts/$contact/timeline"
  local pipeline
  pipeline=$(curl -sf "$base/api/v1/pipelines?limit=1" -H "$H" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"][0]["id"])')
  run "lead list: new, newest first" GET "/api/v1/leads?status=new&limit=50"
  run "opportunity board column by amount" GET "/api/v1/opportunities?pipeline_id=$pipeline&stage=propose&sort=-amount&limit=50"
  run "forecast 2026-Q4 by owner" GET "/api/v1/forecasts?period=2026-Q4&group_by=owner"
  run "account recommendations" GET "/api/v1/accounts/$account/recommendations"
  # Service: the screen pop for a known number, an agent's open tickets, and the queue pull
  # (the bench's admin joins the seeded queue; each pull assigns a waiting ticket).
  local e164 queue me agent
  e164=$(echo "$first" | python3 -c 'import json,sys,urllib.parse; print(urllib.parse.quote(json.load(sys.stdin)["data"][0]["phones"][0]["e164"]))')
  run "caller lookup" GET "/api/v1/caller-lookup?phone=$e164"
  queue=$(curl -sf "$base/api/v1/queues?limit=1" -H "$H")
  agent=$(echo "$queue" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"][0]["members"][0]["user_id"])')
  run "an agent's open tickets" GET "/api/v1/tickets?assignee_id=$agent&unsolved=true&limit=50"
  me=$(curl -sf "$base/api/v1/users/me" -H "$H" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  curl -sf -X PATCH "$base/api/v1/queues/$(echo "$queue" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"][0]["id"])')" -H "$H" \
    -H 'Content-Type: application/json' -d "$(echo "$queue" | ME="$me" python3 -c 'import json,os,sys; q=json.load(sys.stdin)["data"][0]; print(json.dumps({"members": q["members"] + [{"user_id": os.environ["ME"], "skills": []}]}))')" >/dev/null
  run "queue pull (next ticket)" POST "/api/v1/queues/$(echo "$queue" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"][0]["id"])')/next" "{}"
  # Marketing: a three-condition segment evaluated over every contact, a campaign's live
  # metrics, and a page of its members.
  local criteria campaign
  criteria='{"criteria":{"and":[{"field":"lifecycle_stage","op":"eq","value":"customer"},{"field":"account.industry","op":"in","value":["software","retail"]},{"field":"consent.email","op":"eq","value":"granted"}]}}'
  run "segment preview, three conditions" POST "/api/v1/segments/preview" "$criteria"
  # Purchase history and industry, each an `in` of 100 values (the seeded products and
  # families, padded with ids nobody bought): one subquery per condition and contact.
  # Previews take turns (CRM_CRITERIA_CONCURRENCY, a quarter of the pool); the server above
  # lets them wait for a turn (CRM_CRITERIA_WAIT_MS), so p50/p99 include that wait.
  local heavy
  heavy=$(curl -sf "$base/api/v1/products?limit=100" -H "$H" | python3 -c '
import json, sys
products = [p["id"] for p in json.load(sys.stdin)["data"]]
pad = lambda xs, f: (xs + [f(i) for i in range(100)])[:100]
families = ["licences", "services", "hardware", "support", "training"]
print(json.dumps({"criteria": {"and": [
    {"field": "products_bought", "op": "in", "value": pad(products, lambda i: "0190b3b4-1d7c-7e54-9d7e-%012d" % i)},
    {"field": "families_bought", "op": "in", "value": pad(families, lambda i: "family-%d" % i)},
    {"field": "account.industry", "op": "in", "value": pad(["software", "retail"], lambda i: "industry-%d" % i)},
]}}))')
  run "segment preview, three in-lists of 100" POST "/api/v1/segments/preview" "$heavy"
  campaign=$(curl -sf "$base/api/v1/campaigns?limit=1" -H "$H" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"][0]["id"])')
  run "campaign metrics" GET "/api/v1/campaigns/$campaign/metrics"
  run "campaign members page" GET "/api/v1/campaigns/$campaign/members?limit=50"
  # Journeys: a campaign member's touchpoints, and an opportunity's attribution.
  local member deal
  member=$(curl -sf "$base/api/v1/campaigns/$campaign/members?limit=1" -H "$H" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"][0]["id"])')
  run "contact journey" GET "/api/v1/contacts/$member/journey?limit=50"
  deal=$(curl -sf "$base/api/v1/opportunities?limit=1" -H "$H" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"][0]["id"])')
  run "opportunity attribution" GET "/api/v1/opportunities/$deal/attribution"
  run "create contact" POST "/api/v1/contacts" "$new"
  run "batch of 200 creates" POST "/api/v1/contacts/batch" "$batch"

  # Once the load has drained: a full export, timed.
  sleep 2
  local started ended n status=0
  started=$(date +%s.%N)
  curl -sf "$base/api/v1/exports/contacts" -H "$H" -o "$tmp/export.ndjson" || status=$?
  ended=$(date +%s.%N)
  n=$(wc -l <"$tmp/export.ndjson" 2>/dev/null || echo 0)
  local note="$n rows"
  [ "$status" = 0 ] || note="broke off after $n rows (curl exit $status)"
  printf '| %s | export contacts (NDJSON) | %s rows/s | | | %s |\n' "$label" \
    "$(python3 -c "print(round($n / ($ended - $started)))")" "$note" >>"$rows"
  # A CSV import of accounts (a tenth of the contacts' count), timed until it has ended.
  local csv_rows import_id state
  csv_rows=$(python3 -c "print(max(1000, int(100000 * $SCALE)))")
  python3 -c "
import sys
print('name,domain,industry')
for i in range($csv_rows):
    print(f'Imported {i},imported{i}.example,retail')" >"$tmp/accounts.csv"
  started=$(date +%s.%N)
  import_id=$(curl -sf "$base/api/v1/imports?object=accounts" -H "$H" -H 'Content-Type: text/csv' \
    --data-binary @"$tmp/accounts.csv" | python3 -c 'import json,sys; print(json.load(sys.stdin)["id"])')
  state=queued
  until [ "$state" = succeeded ] || [ "$state" = failed ]; do
    sleep 0.2
    state=$(curl -sf "$base/api/v1/imports/$import_id" -H "$H" | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"])')
  done
  ended=$(date +%s.%N)
  printf '| %s | import accounts (CSV) | %s rows/s | | | %s rows, %s |\n' "$label" \
    "$(python3 -c "print(round($csv_rows / ($ended - $started)))")" "$csv_rows" "$state" >>"$rows"

  # What the framework itself allows: the same JSON from memory, once (SQLite half).
  if [ "$label" = SQLite ]; then
    curl -sf "$base/api/v1/contacts/$contact" -H "$H" >"$tmp/one.json"
    curl -sf "$base/api/v1/contacts?limit=50" -H "$H" >"$tmp/page.json"
    local bport bpid saved_base=$base saved_label=$label
    for shape in one page; do
      bport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
      CRM_LISTEN="127.0.0.1:$bport" RUST_LOG=warn "$bin" baseline --body "$tmp/$shape.json" >/dev/null 2>&1 &
      bpid=$!
      base="http://127.0.0.1:$bport"
      for _ in $(seq 1 100); do curl -sf "$base/" >/dev/null 2>&1 && break; sleep 0.1; done
      label="actix-web alone"
      if [ "$shape" = one ]; then
        run "the contact's JSON from memory" GET "/"
      else
        run "the first page's JSON from memory" GET "/"
      fi
      kill "$bpid" 2>/dev/null || true
      wait "$bpid" 2>/dev/null || true
    done
    base=$saved_base
    label=$saved_label
  fi

  local rss
  rss=$(awk '/VmHWM/ {print int($2 / 1024) " MB"}' "/proc/$pid/status")
  printf '| %s | peak RSS of the server | %s | | | |\n' "$label" "$rss" >>"$rows"
  kill "$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  rm -rf "$tmp"
}

# The PostgreSQL half runs inside tests/with-postgres.sh (the tests' throwaway cluster).
if [ "${BENCH_INNER:-}" = postgres ]; then
  bench_one PostgreSQL "$TEST_DATABASE_URL"
  exit 0
fi

for db in $DATABASES; do
  case $db in
    sqlite)
      dir=$(mktemp -d /tmp/crm-bench-db.XXXXXX)
      bench_one SQLite "sqlite://$dir/crm.db"
      rm -rf "$dir"
      ;;
    postgres)
      BENCH_INNER=postgres BENCH_ROWS="$rows" tests/with-postgres.sh "$0"
      ;;
  esac
done

{
  echo "# Benchmark results"
  echo
  echo "\`make bench\` on $(nproc) cores, scale $SCALE ($(python3 -c "print(int(1000000 * $SCALE))") contacts), $PROFILE build,"
  echo "wrk 2 threads × $CONNS connections × $DURATION per row, on loopback; $(date -u +%Y-%m-%d)."
  echo
  echo "| database | work | req/s | p50 | p99 | non-2xx |"
  echo "|---|---|---|---|---|---|"
  cat "$rows"
} >"$OUT"
cat "$OUT"
