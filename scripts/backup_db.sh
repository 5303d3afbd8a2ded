#!/usr/bin/env bash
# Nightly backup of the trading database (host 2): pg_dump | gzip, keeping KEEP_DAYS days.
#
#   scripts/backup_db.sh [BACKUP_DIR]
#
# Writes BACKUP_DIR/<db>_<YYYYmmdd_HHMMSS>.sql.gz atomically (a partial dump never has the final
# name), then deletes that database's dumps older than KEEP_DAYS days. Exit status non-zero when
# the dump fails (cron mails the output); old dumps are only removed after a successful one.
#
# Environment (defaults in brackets)
#   BACKUP_DIR [/var/backups/trader]   KEEP_DAYS [14]   DBS ["trading metabase"]
#   PG_DUMP ["docker exec trading_db pg_dump -U postgres"]  the dump command; the database name
#           is appended (e.g. PG_DUMP="pg_dump -h 127.0.0.1 -U postgres" with a local client)
#
# Restore (plain SQL made with --create: it recreates the database with its owner, grants and
# default privileges; the roles themselves come from infra/postgres/init/01-roles.sh):
#   docker compose stop oms kpr pcim metabase        # and on host 1: docker compose stop oms kmp nulrimok
#   docker exec trading_db psql -U postgres -c 'DROP DATABASE IF EXISTS trading WITH (FORCE)'
#   gunzip -c /var/backups/trader/trading_20260227_163000.sql.gz \
#     | docker exec -i trading_db psql -U postgres -v ON_ERROR_STOP=1 -d postgres
#   docker compose up -d                             # then host 1
# The OMS journals (named volumes on each host) still hold what was not yet copied to the database;
# after a restore the OMS drains them again, skipping rows the database already has.
set -euo pipefail

BACKUP_DIR="${1:-${BACKUP_DIR:-/var/backups/trader}}"
KEEP_DAYS="${KEEP_DAYS:-14}"
DBS="${DBS:-trading metabase}"
PG_DUMP="${PG_DUMP:-docker exec trading_db pg_dump -U postgres}"

case "$KEEP_DAYS" in ''|0|*[!0-9]*) echo "KEEP_DAYS must be a number of days (>= 1)" >&2; exit 64 ;; esac
mkdir -p "$BACKUP_DIR"
umask 077
stamp=$(date '+%Y%m%d_%H%M%S')
status=0
for db in $DBS; do
  final="$BACKUP_DIR/${db}_${stamp}.sql.gz"
  tmp="$final.partial"
  # shellcheck disable=SC2086  # PG_DUMP is a command line
  if $PG_DUMP --format=plain --create --no-password "$db" | gzip -c > "$tmp" && gzip -t "$tmp"; then
    mv "$tmp" "$final"
    echo "[OK]   $db -> $final ($(du -h "$final" | cut -f1))"
    # rotation: this database's dumps older than KEEP_DAYS days
    find "$BACKUP_DIR" -maxdepth 1 -type f -name "${db}_*.sql.gz" -mtime "+$((KEEP_DAYS - 1))" -print -delete \
      | sed 's/^/[DEL]  /'
  else
    rm -f "$tmp"
    echo "[FAIL] $db: dump failed" >&2
    status=1
  fi
done
exit "$status"
