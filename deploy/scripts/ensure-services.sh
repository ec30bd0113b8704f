#!/usr/bin/env bash
# Make sure Redis and PostgreSQL answer on $REDIS_URL and $DATABASE_URL.
#
# A service that is down and local (localhost, 127.0.0.1, ::1) is started with the
# local binaries when they exist. A service that cannot be started here (remote, or
# no binary) only gets a warning: `conveyor wait` then says what is missing, and
# the test fixtures may start it with testcontainers where Docker is available.
# Exits non-zero when a start was attempted and failed or the service still does not answer.
set -euo pipefail

REDIS_URL="${REDIS_URL:-redis://127.0.0.1:6379/0}"
DATABASE_URL="${DATABASE_URL:-postgresql://postgres@127.0.0.1:5432/postgres}"
WAIT_S="${SERVICES_WAIT_S:-20}"

say() { printf 'services: %s\n' "$*" >&2; }

# host_port URL DEFAULT_PORT -> "host port" (handles user:pass@, [ipv6], /path, ?query)
host_port() {
    local rest="${1#*://}"
    rest="${rest%%/*}"
    rest="${rest%%\?*}"
    rest="${rest##*@}"
    local host port=""
    if [[ "$rest" == \[* ]]; then
        host="${rest%%]*}"
        host="${host#[}"
        [[ "$rest" == *]:* ]] && port="${rest##*]:}"
    else
        host="${rest%%:*}"
        [[ "$rest" == *:* ]] && port="${rest##*:}"
    fi
    echo "${host:-localhost} ${port:-$2}"
}

is_local() { [[ "$1" == localhost || "$1" == 127.0.0.1 || "$1" == ::1 ]]; }

answers() { timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }

wait_for() { # name host port
    local deadline=$((SECONDS + WAIT_S))
    until answers "$2" "$3"; do
        if ((SECONDS >= deadline)); then
            say "$1 was started but does not answer on $2:$3 after ${WAIT_S}s" \
                "(is it configured for that port?)"
            return 1
        fi
        sleep 0.5
    done
    say "$1 is up on $2:$3"
}

# start_* (called by name from ensure) return 127 when the binary is not here,
# another non-zero status when the start fails.
# shellcheck disable=SC2329
start_redis() { # port
    command -v redis-server >/dev/null || return 127
    mkdir -p /var/lib/redis /var/log/redis 2>/dev/null || true
    redis-server --daemonize yes --bind 127.0.0.1 -::1 --port "$1" --save "" \
        --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log >&2
}

# shellcheck disable=SC2329
start_postgres() {
    local version
    version="$(find /etc/postgresql -mindepth 1 -maxdepth 1 -printf '%f\n' 2>/dev/null \
        | sort -V | tail -n 1)"
    command -v pg_ctlcluster >/dev/null && [[ -n "$version" ]] || return 127
    local rc=0  # pg_ctlcluster exits 2 when the cluster is already running
    pg_ctlcluster --skip-systemctl-redirect "$version" main start >&2 || rc=$?
    ((rc == 0 || rc == 2))
}

ensure() { # name url default_port start_function
    local name="$1" url="$2" host port
    read -r host port < <(host_port "$url" "$3")
    if answers "$host" "$port"; then
        say "$name is up on $host:$port"
        return 0
    fi
    if ! is_local "$host"; then
        say "WARNING: $name does not answer on $host:$port (not local, not starting it)"
        return 0
    fi
    say "$name does not answer on $host:$port; starting it"
    local rc=0
    "$4" "$port" || rc=$?
    case "$rc" in
        0) wait_for "$name" "$host" "$port" ;;
        127) say "WARNING: no local $name installation to start; start it yourself or set the URL" ;;
        *) say "starting $name failed (exit $rc)" && return 1 ;;
    esac
}

status=0
ensure Redis "$REDIS_URL" 6379 start_redis || status=1
ensure PostgreSQL "$DATABASE_URL" 5432 start_postgres || status=1
exit "$status"
