#!/usr/bin/env bash
# Roles, databases and grants of the trading platform (run once by the postgres image).
#
# The postgres image runs every script in /docker-entrypoint-initdb.d when it initialises an empty
# data volume (docker-compose.vps2.yml mounts infra/postgres/init there). It can also be run by
# hand against any server: it is idempotent, and psql's usual PGHOST / PGPORT / PGPASSWORD work.
#
#   database trading   owned by trading_writer. The OMS runs its Alembic migrations as the writer,
#                      so the writer creates and owns every table; it reads and writes them.
#   trading_reader     CONNECT + USAGE + SELECT only, on the tables that exist now and (default
#                      privileges) on every table the writer creates later. Metabase uses it.
#   database metabase  owned by the metabase role: Metabase's own application database.
#
# Passwords come only from the environment (POSTGRES_WRITER_PASSWORD, POSTGRES_READER_PASSWORD,
# METABASE_DB_PASSWORD); no SQL file holds one. They reach psql with \getenv (not on the command
# line, where `ps` would show them) and are quoted by psql (:'var'), so any character is safe.
#
# Environment (defaults in brackets; the name overrides exist for tests):
#   POSTGRES_USER [postgres]  superuser to connect as      POSTGRES_DB [$POSTGRES_USER] db to connect to
#   TRADING_DB [trading]  WRITER_ROLE [trading_writer]  READER_ROLE [trading_reader]
#   METABASE_DB [metabase]  METABASE_DB_USER [metabase]  (skipped when METABASE_DB_PASSWORD is empty)
set -euo pipefail
set +x   # never trace: the environment holds passwords

: "${POSTGRES_WRITER_PASSWORD:?POSTGRES_WRITER_PASSWORD must be set (password of the writer role)}"
: "${POSTGRES_READER_PASSWORD:?POSTGRES_READER_PASSWORD must be set (password of the reader role)}"
export POSTGRES_WRITER_PASSWORD POSTGRES_READER_PASSWORD

admin_user="${POSTGRES_USER:-postgres}"
admin_db="${POSTGRES_DB:-$admin_user}"
trading_db="${TRADING_DB:-trading}"
writer_role="${WRITER_ROLE:-trading_writer}"
reader_role="${READER_ROLE:-trading_reader}"
metabase_db="${METABASE_DB:-metabase}"
metabase_role="${METABASE_DB_USER:-metabase}"

run_psql() {  # run_psql DBNAME  (SQL on stdin)
  psql -X --no-password -v ON_ERROR_STOP=1 --quiet \
    --username "$admin_user" --dbname "$1" \
    -v admin_user="$admin_user" -v trading_db="$trading_db" \
    -v writer_role="$writer_role" -v reader_role="$reader_role" \
    -v metabase_db="$metabase_db" -v metabase_role="$metabase_role"
}

echo "01-roles: roles $writer_role, $reader_role; database $trading_db"
run_psql "$admin_db" <<'SQL'
\getenv writer_pw POSTGRES_WRITER_PASSWORD
\getenv reader_pw POSTGRES_READER_PASSWORD

SELECT format('CREATE ROLE %I', :'writer_role')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'writer_role') \gexec
ALTER ROLE :"writer_role" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD :'writer_pw';

SELECT format('CREATE ROLE %I', :'reader_role')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'reader_role') \gexec
ALTER ROLE :"reader_role" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD :'reader_pw';

SELECT format('CREATE DATABASE %I OWNER %I', :'trading_db', :'writer_role')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'trading_db') \gexec
ALTER DATABASE :"trading_db" OWNER TO :"writer_role";
REVOKE ALL ON DATABASE :"trading_db" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"trading_db" TO :"writer_role";
GRANT CONNECT ON DATABASE :"trading_db" TO :"reader_role";
SQL

run_psql "$trading_db" <<'SQL'
-- The writer owns the schema the migrations create their tables in.
ALTER SCHEMA public OWNER TO :"writer_role";
REVOKE ALL ON SCHEMA public FROM PUBLIC;
GRANT USAGE, CREATE ON SCHEMA public TO :"writer_role";
GRANT USAGE ON SCHEMA public TO :"reader_role";

-- Reader: SELECT on what exists now ...
GRANT SELECT ON ALL TABLES IN SCHEMA public TO :"reader_role";
GRANT SELECT ON ALL SEQUENCES IN SCHEMA public TO :"reader_role";
-- ... and on everything the writer's migrations create later.
ALTER DEFAULT PRIVILEGES FOR ROLE :"writer_role" IN SCHEMA public GRANT SELECT ON TABLES TO :"reader_role";
ALTER DEFAULT PRIVILEGES FOR ROLE :"writer_role" IN SCHEMA public GRANT SELECT ON SEQUENCES TO :"reader_role";

-- Tables or views an administrator creates by hand (e.g. dashboard views): the writer may read
-- and write them, the reader may read them.
GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA public TO :"writer_role";
GRANT USAGE, SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO :"writer_role";
ALTER DEFAULT PRIVILEGES FOR ROLE :"admin_user" IN SCHEMA public
  GRANT SELECT, INSERT, UPDATE, DELETE ON TABLES TO :"writer_role";
ALTER DEFAULT PRIVILEGES FOR ROLE :"admin_user" IN SCHEMA public
  GRANT USAGE, SELECT, UPDATE ON SEQUENCES TO :"writer_role";
ALTER DEFAULT PRIVILEGES FOR ROLE :"admin_user" IN SCHEMA public GRANT SELECT ON TABLES TO :"reader_role";
ALTER DEFAULT PRIVILEGES FOR ROLE :"admin_user" IN SCHEMA public GRANT SELECT ON SEQUENCES TO :"reader_role";
SQL

if [ -n "${METABASE_DB_PASSWORD:-}" ]; then
  export METABASE_DB_PASSWORD
  echo "01-roles: Metabase application database $metabase_db (role $metabase_role)"
  run_psql "$admin_db" <<'SQL'
\getenv metabase_pw METABASE_DB_PASSWORD
SELECT format('CREATE ROLE %I', :'metabase_role')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'metabase_role') \gexec
ALTER ROLE :"metabase_role" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD :'metabase_pw';
SELECT format('CREATE DATABASE %I OWNER %I', :'metabase_db', :'metabase_role')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'metabase_db') \gexec
ALTER DATABASE :"metabase_db" OWNER TO :"metabase_role";
REVOKE ALL ON DATABASE :"metabase_db" FROM PUBLIC;
GRANT CONNECT, TEMPORARY ON DATABASE :"metabase_db" TO :"metabase_role";
SQL
else
  echo "01-roles: METABASE_DB_PASSWORD is empty; no Metabase database created"
fi
echo "01-roles: done"
