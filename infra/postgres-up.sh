#!/usr/bin/env bash
# Makes sure the PostgreSQL server the integration tests use is up and reachable.
set -euo pipefail
url="${SLRT_TEST_POSTGRES_URL:-postgresql://postgres@127.0.0.1:5432/postgres}"

reachable() { pg_isready -q -d "$url" 2>/dev/null; }

if reachable; then exit 0; fi
echo "PostgreSQL is not reachable at $url; trying to start it" >&2
if command -v pg_ctlcluster >/dev/null 2>&1 && [ -d /etc/postgresql ]; then
    for version in $(ls /etc/postgresql); do
        pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
    done
fi
for _ in $(seq 1 30); do
    if reachable; then exit 0; fi
    sleep 1
done
echo "PostgreSQL is still not reachable at $url" >&2
exit 1
