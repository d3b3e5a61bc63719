#!/usr/bin/env bash
# What one connection costs a server that decides nothing — the TLS 1.3 handshake with a client
# certificate, then GET /.well-known/est/cacerts — measured on `sim-ca serve` and on a peer we did
# not write, nginx (OpenSSL), in the same run with the same client and the same certificates
# (benches/README.md §2k). The client is `openssl s_time -new`: one fresh handshake after another.
#
#   scripts/connection-peer.sh [SECONDS] [ROUNDS]     (default 8 s, 3 rounds, alternating)
#
# Prints each server's CPU per connection (utime + stime of its processes, /proc). Installs
# nginx-light when nginx is missing (Debian). Nothing else runs while it measures, or the
# figures say so.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-8}
rounds=${2:-3}

if ! command -v nginx >/dev/null; then
    echo "connection-peer.sh: installing nginx-light (the peer)" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q nginx-light >/dev/null
fi
command -v openssl >/dev/null || { echo "connection-peer.sh: openssl is missing" >&2; exit 1; }
cargo build --locked --release -q -p sim-ca
sim_ca=$PWD/target/release/sim-ca

dir=$(mktemp -d)
sim_pid=
cleanup() {
    [ -n "$sim_pid" ] && kill "$sim_pid" 2>/dev/null || true
    [ -f "$dir/nginx.pid" ] && nginx -c "$dir/nginx.conf" -p "$dir" -s stop 2>/dev/null || true
    rm -rf "$dir"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
sim_port=$(free_port)
admin_port=$(free_port)
nginx_port=$(free_port)

# The CA, and a client certificate it issued (P-256, as a card's).
"$sim_ca" serve --state "$dir/st" --listen "127.0.0.1:$sim_port" --admin "127.0.0.1:$admin_port" \
    >"$dir/sim-ca.log" 2>&1 &
sim_pid=$!
for _ in $(seq 50); do [ -f "$dir/st/server.pem" ] && break; sleep 0.1; done
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/client.key" 2>/dev/null
openssl req -new -key "$dir/client.key" -subj "/CN=Peer Client/O=Example" -out "$dir/client.csr"
"$sim_ca" issue --state "$dir/st" --csr "$dir/client.csr" --template SmartcardUser \
    --out "$dir/client.pem" >/dev/null
get() { # port -> the body of GET /cacerts
    curl -sf --cacert "$dir/st/ca-chain.pem" --cert "$dir/client.pem" --key "$dir/client.key" \
        "https://127.0.0.1:$1/.well-known/est/cacerts"
}
for _ in $(seq 50); do get "$sim_port" >/dev/null 2>&1 && break; sleep 0.1; done

# nginx serves the same bytes as a file, with the same server certificate, requiring a client
# certificate from the same CA; two workers, as sim-ca has two runtime workers.
mkdir -p "$dir/www/.well-known/est"
get "$sim_port" >"$dir/www/.well-known/est/cacerts"
# Its workers (www-data) read the file; the keys stay the owner's.
chmod 711 "$dir"
chmod -R a+rX "$dir/www"
cat >"$dir/nginx.conf" <<EOF
worker_processes 2;
pid $dir/nginx.pid;
error_log $dir/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log off;
  server {
    listen 127.0.0.1:$nginx_port ssl;
    ssl_certificate $dir/st/server.pem;
    ssl_certificate_key $dir/st/server.key;
    ssl_client_certificate $dir/st/ca-chain.pem;
    ssl_verify_client on;
    ssl_verify_depth 2;
    ssl_protocols TLSv1.3;
    root $dir/www;
    location / { default_type application/pkcs7-mime; }
  }
}
EOF
nginx -c "$dir/nginx.conf" -p "$dir"
for _ in $(seq 50); do [ -s "$dir/nginx.pid" ] && break; sleep 0.1; done
if ! cmp -s <(get "$sim_port") <(get "$nginx_port"); then
    echo "connection-peer.sh: the two servers answer differently" >&2
    cat "$dir/nginx-error.log" >&2
    exit 1
fi

ticks() { # pids... -> their utime + stime, in clock ticks
    local total=0 p
    for p in "$@"; do total=$((total + $(awk '{print $14 + $15}' "/proc/$p/stat"))); done
    echo "$total"
}
measure() { # name port pids...
    local name=$1 port=$2
    shift 2
    local before after out n
    before=$(ticks "$@")
    out=$(openssl s_time -connect "127.0.0.1:$port" -new -time "$seconds" \
        -cert "$dir/client.pem" -key "$dir/client.key" -CAfile "$dir/st/ca-chain.pem" \
        -www /.well-known/est/cacerts 2>&1 | grep 'real seconds')
    after=$(ticks "$@")
    n=$(awk '{print $1}' <<<"$out")
    awk -v name="$name" -v n="$n" -v t=$((after - before)) -v hz="$(getconf CLK_TCK)" \
        'BEGIN { printf "%-7s %6d connections, CPU %.3f ms per connection\n", name, n, t / hz * 1000 / n }'
}
nginx_pids=$(pgrep -d ' ' -P "$(cat "$dir/nginx.pid")")
nginx_pids="$(cat "$dir/nginx.pid") $nginx_pids"
echo "$(openssl version); nginx $(nginx -v 2>&1 | sed 's/.*\///'); ${seconds} s per measure"
for _ in $(seq "$rounds"); do
    measure sim-ca "$sim_port" "$sim_pid"
    # shellcheck disable=SC2086 # the pids are words
    measure nginx "$nginx_port" $nginx_pids
done
