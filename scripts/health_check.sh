#!/usr/bin/env bash
# Health check of one host, for cron (scripts/crontab.example) or by hand.
#
#   scripts/health_check.sh VPS1|VPS2 [WEBHOOK_URL]
#
# Checks
#   - the OMS:   GET $OMS_URL/health answers; status "ok"; kis_circuit_breaker CLOSED;
#                recon_status not FAIL; journal_backlog below $JOURNAL_BACKLOG_MAX
#   - containers: each expected container of the host is running and not unhealthy ($DOCKER ps)
#   - Postgres:  (VPS2) accepts connections ($PG_ISREADY)
#   - with COMPOSE_PROFILES containing "alpaca" (VPS2): the Alpaca OMS at $OMS_ALPACA_URL and its
#     containers too
# Prints one "[OK] ..." or "[FAIL] ..." line per check and exits with the number of failures (0 =
# healthy). The webhook (Slack and Discord style: JSON {"text": ..., "content": ...}) gets one message
# when a failure starts and one "[RECOVERED]" message when it ends — not one per run: the failures of
# the last run are kept in $HEALTH_STATE_FILE (one "check<TAB>since<TAB>message" line each).
#
# Environment (defaults in brackets)
#   OMS_URL [http://127.0.0.1:8000]     OMS_ALPACA_URL [http://127.0.0.1:8001]
#   JOURNAL_BACKLOG_MAX [10000]         HEALTH_WEBHOOK_URL (used when no WEBHOOK_URL argument)
#   COMPOSE_PROFILES                    e.g. "alpaca", as in the host's .env
#   DOCKER [docker]                     command used as "$DOCKER ps --format ..."
#   PG_ISREADY [pg_isready -h 127.0.0.1 -p 5432 -d trading -t 5 if installed, else
#              "$DOCKER exec trading_db pg_isready -h 127.0.0.1 -U postgres -d trading -t 5"]
#   PYTHON [python3]                    parses the JSON
#   CURL_TIMEOUT [10]
#   HEALTH_STATE_FILE [${XDG_STATE_HOME:-$HOME/.local/state}/trader/health_<HOST>.state]
#   HEALTH_TRADING_DAYS_ONLY [0]        1 = exit 0 without checking when the OMS's market clock
#                                       (GET /api/v1/clock, needs OMS_READ_KEY) says today is not
#                                       a trading day; if the OMS does not answer, the checks run.
set -uo pipefail

# Container names, per host (tests parse these three lines; keep them in sync with the compose files).
VPS1_CONTAINERS="oms_vps1 strategy_kmp strategy_nulrimok"
VPS2_CONTAINERS="trading_db oms_vps2 strategy_kpr strategy_pcim metabase"
ALPACA_CONTAINERS="oms_alpaca strategy_swing_ml"

usage() { echo "usage: $0 VPS1|VPS2 [WEBHOOK_URL]" >&2; exit 64; }
[ $# -ge 1 ] || usage
HOST=$(printf '%s' "$1" | tr '[:lower:]' '[:upper:]')
case "$HOST" in VPS1|VPS2) ;; *) usage ;; esac
WEBHOOK_URL="${2:-${HEALTH_WEBHOOK_URL:-}}"

OMS_URL="${OMS_URL:-http://127.0.0.1:8000}"
OMS_ALPACA_URL="${OMS_ALPACA_URL:-http://127.0.0.1:8001}"
JOURNAL_BACKLOG_MAX="${JOURNAL_BACKLOG_MAX:-10000}"
DOCKER="${DOCKER:-docker}"
PYTHON="${PYTHON:-python3}"
CURL_TIMEOUT="${CURL_TIMEOUT:-10}"
if [ -z "${PG_ISREADY:-}" ]; then
  if command -v pg_isready >/dev/null 2>&1; then
    PG_ISREADY="pg_isready -h 127.0.0.1 -p 5432 -d trading -t 5"
  else
    PG_ISREADY="$DOCKER exec trading_db pg_isready -h 127.0.0.1 -U postgres -d trading -t 5"
  fi
fi
ALPACA=0
case ",${COMPOSE_PROFILES:-}," in *,alpaca,*) [ "$HOST" = VPS2 ] && ALPACA=1 ;; esac

HOSTNAME_TAG="$HOST $(hostname 2>/dev/null || echo '?')"
FAILURES=0
STATE_FILE="${HEALTH_STATE_FILE:-${XDG_STATE_HOME:-${HOME:-/tmp}/.local/state}/trader/health_${HOST}.state}"
NOW=$(date +%s)
CURRENT=""   # this run's failures: "check<TAB>message" lines

alert() {  # alert MESSAGE — one webhook POST
  [ -n "$WEBHOOK_URL" ] || return 0
  local body
  body=$("$PYTHON" -c 'import json,sys; t=sys.argv[1]; print(json.dumps({"text": t, "content": t}))' \
         "[trader health] $HOSTNAME_TAG: $1") || return 0
  curl -sS -o /dev/null --max-time "$CURL_TIMEOUT" -X POST -H 'Content-Type: application/json' \
       --data "$body" "$WEBHOOK_URL" || echo "  (webhook post failed)" >&2
}
ok()   { echo "[OK]   $2"; }
fail() {  # fail CHECK MESSAGE — CHECK names the check across runs (the message may change, e.g. a count)
  echo "[FAIL] $2"
  FAILURES=$((FAILURES + 1))
  CURRENT="${CURRENT}$1"$'\t'"$2"$'\n'
}

# Alert the failures that are new since the last run and the ones that ended; remember this run's.
notify() {
  local previous="" check message since line
  [ -f "$STATE_FILE" ] && previous=$(cat "$STATE_FILE" 2>/dev/null)
  local next=""
  while IFS=$'\t' read -r check message; do
    [ -n "$check" ] || continue
    line=$(printf '%s\n' "$previous" | awk -F'\t' -v c="$check" '$1 == c { print; exit }')
    if [ -z "$line" ]; then
      alert "$message"
      since=$NOW
    else
      since=$(printf '%s' "$line" | cut -f2)
    fi
    next="${next}${check}"$'\t'"${since}"$'\t'"${message}"$'\n'
  done <<< "$CURRENT"
  while IFS=$'\t' read -r check since message; do
    [ -n "$check" ] || continue
    if ! printf '%s' "$CURRENT" | awk -F'\t' -v c="$check" '$1 == c { found = 1 } END { exit !found }'; then
      alert "[RECOVERED] $check: OK again after $(( (NOW - since) / 60 )) min (was: $message)"
    fi
  done <<< "$previous"
  mkdir -p "$(dirname "$STATE_FILE")" 2>/dev/null
  printf '%s' "$next" > "$STATE_FILE.tmp" && mv "$STATE_FILE.tmp" "$STATE_FILE" \
    || echo "  (cannot write $STATE_FILE: every run will alert again)" >&2
}

# check_oms LABEL URL — one line per /health criterion (only one line when it does not answer)
check_oms() {
  local label="$1" url="$2" body verdicts line
  if ! body=$(curl -fsS --max-time "$CURL_TIMEOUT" "$url/health" 2>&1); then
    fail "$label" "$label: $url/health unreachable (${body//$'\n'/ })"
    return
  fi
  # prints "OK|FAIL<TAB>check<TAB>message" lines
  verdicts=$(printf '%s' "$body" | "$PYTHON" -c '
import json, sys
limit = int(sys.argv[2]); label = sys.argv[1]
try:
    h = json.load(sys.stdin)
    assert isinstance(h, dict)
except Exception as exc:
    print(f"FAIL\t{label}\t{label}: /health is not a JSON object ({exc})"); sys.exit()
def line(ok, check, msg): print(("OK" if ok else "FAIL") + "\t" + f"{label} {check}" + "\t" + label + ": " + msg)
st = h.get("status"); why = ", ".join(h.get("degraded_reasons") or [])
line(st == "ok", "status", f"status {st}" + (f" ({why})" if why else ""))
db = h.get("db")
line(db in (None, "ok"), "database", f"database {db}")
cb = h.get("kis_circuit_breaker")
line(cb == "CLOSED", "breaker", f"broker circuit breaker {cb}")
rs = h.get("recon_status")
line(rs is not None and rs != "FAIL", "reconciliation", f"reconciliation {rs}")
jb = h.get("journal_backlog", 0)
line(isinstance(jb, int) and jb < limit, "journal", f"journal backlog {jb} (limit {limit})")
' "$label" "$JOURNAL_BACKLOG_MAX" 2>&1) || verdicts="FAIL	$label	$label: cannot parse /health ($PYTHON failed)"
  while IFS=$'\t' read -r verdict check line; do
    [ -n "$verdict" ] || continue
    if [ "$verdict" = OK ]; then ok "$check" "$line"; else fail "$check" "$line"; fi
  done <<< "$verdicts"
}

check_containers() {  # check_containers NAME...
  local listing name status
  if ! listing=$($DOCKER ps --all --format '{{.Names}}	{{.Status}}' 2>&1); then
    fail "containers" "containers: '$DOCKER ps' failed (${listing//$'\n'/ })"
    return
  fi
  for name in "$@"; do
    status=$(printf '%s\n' "$listing" | awk -F'\t' -v n="$name" '$1 == n { print $2; exit }')
    if [ -z "$status" ]; then
      fail "container $name" "container $name: not found"
    elif [[ "$status" != Up* ]]; then
      fail "container $name" "container $name: $status"
    elif [[ "$status" == *"(unhealthy)"* ]]; then
      fail "container $name" "container $name: $status"
    else
      ok "container $name" "container $name: $status"
    fi
  done
}

check_postgres() {
  local out
  if out=$($PG_ISREADY 2>&1); then
    ok postgres "postgres: ${out//$'\n'/ }"
  else
    fail postgres "postgres: not accepting connections (${out//$'\n'/ })"
  fi
}

if [ "${HEALTH_TRADING_DAYS_ONLY:-0}" = 1 ]; then
  clock=$(curl -fsS --max-time "$CURL_TIMEOUT" -H "Authorization: Bearer ${OMS_READ_KEY:-}" \
          "$OMS_URL/api/v1/clock" 2>/dev/null || true)
  if [ -n "$clock" ] && printf '%s' "$clock" | "$PYTHON" -c \
       'import json,sys; sys.exit(0 if json.load(sys.stdin).get("trading_day") is False else 1)' 2>/dev/null; then
    echo "[SKIP] $HOST: not a trading day"
    exit 0
  fi
fi

echo "== $HOST health $(date '+%Y-%m-%d %H:%M:%S %Z')"
check_oms "OMS" "$OMS_URL"
if [ "$HOST" = VPS1 ]; then
  # shellcheck disable=SC2086  # word splitting of the name lists is intended
  check_containers $VPS1_CONTAINERS
else
  check_postgres
  # shellcheck disable=SC2086
  check_containers $VPS2_CONTAINERS
  if [ "$ALPACA" = 1 ]; then
    check_oms "OMS alpaca" "$OMS_ALPACA_URL"
    # shellcheck disable=SC2086
    check_containers $ALPACA_CONTAINERS
  fi
fi
notify
echo "== $FAILURES failure(s)"
exit "$FAILURES"
