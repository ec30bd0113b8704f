#!/usr/bin/env bash
# Conveyor's PostgreSQL roles (README "PostgreSQL roles"), made by the superuser.
#
# The postgres image runs this once, from /docker-entrypoint-initdb.d, on a fresh data
# directory. Run it again after changing a password file (it is idempotent and sets each
# password from its file anew):
#   docker compose exec postgres /docker-entrypoint-initdb.d/10-conveyor-roles.sh
#
#   conveyor_migrate     runs `conveyor migrate` (and the demo seed): owns the schema, so
#                        every table it creates; may create a schema in the database
#   conveyor_gateway     each service's own role: LOGIN and nothing else here; migration
#   conveyor_ingest      0010 (runtime_grants) grants each what its SQL does
#   conveyor_mover
#   conveyor_aggregator
#
# Passwords, one file each in $CONVEYOR_SECRETS_DIR (default /run/secrets), a trailing
# newline dropped: postgres_migrate_password, postgres_gateway_password,
# postgres_ingest_password, postgres_mover_password, postgres_aggregator_password.
# CONVEYOR_DB_SCHEMA (default public): the schema the stack uses. CONVEYOR_ROLE_SUFFIX
# (default empty; lower-case letters, digits, `_`): appended to every role name, for two
# stacks in one cluster (and the tests' own roles); set on conveyor_migrate as the setting
# conveyor.role_suffix, which the grant migration reads.
# Connects as $POSTGRES_USER to $POSTGRES_DB (the image's variables; default postgres).
set -euo pipefail

secrets=${CONVEYOR_SECRETS_DIR:-/run/secrets}
schema=${CONVEYOR_DB_SCHEMA:-public}
suffix=${CONVEYOR_ROLE_SUFFIX:-}
services=(migrate gateway ingest mover aggregator)

if [[ ! $suffix =~ ^[a-z0-9_]*$ ]]; then
    echo "$0: CONVEYOR_ROLE_SUFFIX=$suffix: only lower-case letters, digits and _" >&2
    exit 1
fi
for service in "${services[@]}"; do
    file="$secrets/postgres_${service}_password"
    if [[ ! -s $file ]]; then
        echo "$0: $file is missing or empty: the role conveyor_$service$suffix needs it" >&2
        exit 1
    fi
done

# The passwords go from their files into psql variables (backquotes, run by psql), so
# they are on no command line; `:'var'` quotes them as SQL literals.
{
    for service in "${services[@]}"; do
        cat <<SQL
\\set role conveyor_$service$suffix
\\set password \`printf %s "\$(cat :'secrets'/postgres_${service}_password)"\`
SELECT format('CREATE ROLE %I', :'role')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') \\gexec
ALTER ROLE :"role" WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS
    PASSWORD :'password';
SQL
    done
    cat <<'SQL'
\set migrate conveyor_migrate:suffix
ALTER ROLE :"migrate" SET conveyor.role_suffix = :'suffix';
-- `conveyor migrate` runs CREATE SCHEMA IF NOT EXISTS, which asks for CREATE here.
GRANT CREATE ON DATABASE :"DBNAME" TO :"migrate";
CREATE SCHEMA IF NOT EXISTS :"schema" AUTHORIZATION :"migrate";
ALTER SCHEMA :"schema" OWNER TO :"migrate";
-- Nobody else may use or create in it: the grant migration gives each runtime role USAGE.
REVOKE ALL ON SCHEMA :"schema" FROM PUBLIC;
-- A schema migrated before (by the superuser, or on a volume older than these roles):
-- its tables and functions become the migration role's, and the grants of migration
-- 0010 are made again, now that the roles exist.
SELECT format('ALTER TABLE %I.%I OWNER TO %I', schemaname, tablename, :'migrate')
  FROM pg_tables WHERE schemaname = :'schema' AND tableowner <> :'migrate' \gexec
SELECT format('ALTER ROUTINE %s OWNER TO %I', p.oid::regprocedure, :'migrate')
  FROM pg_proc p
 WHERE p.pronamespace = :'schema'::regnamespace AND p.proowner <> :'migrate'::regrole \gexec
SET search_path TO :"schema";
SET conveyor.role_suffix TO :'suffix';
SELECT to_regprocedure('conveyor_grant()') IS NOT NULL AS migrated \gset
\if :migrated
SELECT count(*) AS granted FROM conveyor_grant() \gset
\endif
SQL
} | psql -v ON_ERROR_STOP=1 --no-psqlrc --quiet \
    --username "${POSTGRES_USER:-postgres}" --dbname "${POSTGRES_DB:-postgres}" \
    -v secrets="$secrets" -v schema="$schema" -v suffix="$suffix"

echo "$0: roles ${services[*]/#/conveyor_} (suffix '$suffix') ready; schema $schema owned by conveyor_migrate$suffix"
