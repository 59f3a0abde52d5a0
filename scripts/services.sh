#!/usr/bin/env bash
# Start the PostgreSQL and MariaDB servers the tests talk to (when they are installed and not
# already running), and load MariaDB's time zone tables. Safe to run again.
set -uo pipefail

wait_for() {  # wait_for NAME COMMAND...
    local name=$1; shift
    for _ in $(seq 1 30); do
        if "$@" >/dev/null 2>&1; then return 0; fi
        sleep 1
    done
    echo "services: $name did not become ready" >&2
    return 1
}

if command -v pg_ctlcluster >/dev/null 2>&1 && ! pg_isready -q -h 127.0.0.1 -p 5432; then
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
fi
if command -v pg_isready >/dev/null 2>&1; then
    wait_for PostgreSQL pg_isready -q -h 127.0.0.1 -p 5432
fi

if command -v mariadbd >/dev/null 2>&1 && ! mariadb-admin -u root ping >/dev/null 2>&1; then
    start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd || true
fi
if command -v mariadb >/dev/null 2>&1; then
    wait_for MariaDB mariadb-admin -u root ping
    zone=$(mariadb -u root -N -e "SELECT CONVERT_TZ('2024-01-01 00:00:00', 'UTC', 'Europe/Berlin')")
    if [ "$zone" = "NULL" ] && command -v mariadb-tzinfo-to-sql >/dev/null 2>&1; then
        mariadb-tzinfo-to-sql /usr/share/zoneinfo 2>/dev/null | mariadb -u root mysql
    fi
fi
exit 0
