#!/usr/bin/env bash
# Starts a throwaway PostgreSQL cluster in a temporary directory (no system service: initdb +
# pg_ctl as the `postgres` user when run as root), listening only on a Unix socket in that
# directory (no port to collide with) with trust authentication, and prints the directory and
# the URL. `scripts/pg-temp.sh stop DIR` stops it and removes
# the directory. Used by scripts/test.sh for the PostgreSQL store tests.
set -euo pipefail

bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ]; then
  echo "pg-temp.sh: PostgreSQL server binaries not found (Debian package postgresql)" >&2
  exit 1
fi
as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

if [ "${1:-}" = stop ]; then
  dir=$2
  as_owner "$bin/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
  rm -rf "$dir"
  exit 0
fi

dir=$(mktemp -d /tmp/cardrenew-pg.XXXXXX)
chmod 755 "$dir"
[ "$(id -u)" = 0 ] && chown postgres: "$dir"
as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 >"$dir/initdb.log" 2>&1
as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
  -o "-c listen_addresses= -k $dir -c max_connections=200" start >/dev/null
# The socket directory, percent-encoded as the URL's host.
echo "$dir postgresql://postgres@${dir//\//%2F}/postgres"
