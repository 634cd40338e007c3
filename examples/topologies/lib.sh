# Shared by the topology scripts: build the node binary, pick free ports,
# start nodes in the background, wait until they answer, stop them.
# Every script keeps its state in $STATE (default: ./state next to it).
set -euo pipefail

TOPO_DIR=$(cd "$(dirname "${BASH_SOURCE[1]}")" && pwd)
REPO=$(cd "$TOPO_DIR/../../.." && pwd)
STATE=${STATE:-$TOPO_DIR/state}
BIN=$STATE/bin/node

build() {
    mkdir -p "$STATE/bin"
    (cd "$REPO" && go build -o "$BIN" ./cmd/node)
}

# free_port prints a TCP port free on 127.0.0.1 right now.
free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

# start_node NAME ARGS...: runs a node in the background, logging to
# $STATE/NAME.log, and records its pid.
start_node() {
    local name=$1; shift
    mkdir -p "$STATE/$name"
    "$BIN" --name "$name" --data "$STATE/$name" "$@" >"$STATE/$name.log" 2>&1 &
    echo $! >"$STATE/$name.pid"
}

# wait_log NAME TEXT: waits until the node logged TEXT (or died).
wait_log() {
    local name=$1 text=$2 i
    for i in $(seq 1 300); do
        grep -q "$text" "$STATE/$name.log" 2>/dev/null && return 0
        kill -0 "$(cat "$STATE/$name.pid")" 2>/dev/null || { echo "node $name died:" >&2; tail -20 "$STATE/$name.log" >&2; return 1; }
        sleep 0.1
    done
    echo "node $name: no '$text' after 30 s" >&2
    tail -20 "$STATE/$name.log" >&2
    return 1
}

# stop_all: SIGTERM every node of this topology and wait for each.
stop_all() {
    local f pid
    for f in "$STATE"/*.pid; do
        [ -e "$f" ] || continue
        pid=$(cat "$f")
        kill -TERM "$pid" 2>/dev/null || true
    done
    for f in "$STATE"/*.pid; do
        [ -e "$f" ] || continue
        pid=$(cat "$f")
        for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -KILL "$pid" 2>/dev/null || true
        rm -f "$f"
    done
}

# env_out KEY=VALUE...: prints and records what a test or user needs.
env_out() {
    printf '%s\n' "$@" | tee -a "$STATE/topology.env"
}

# node_env NAME PREFIX: prints and records PREFIX_KEY=ADDRESS for every
# listener NAME's "node started" line names (MUPDATE, IMAP, IMAPS, POP3,
# POP3S, LMTP, ADMIN, GOSSIP), so an operator can reach any node, e.g.
# join a new master through a backend's gossip address.
node_env() {
    local name=$1 prefix=$2 key addr
    for key in mupdate imap imaps pop3 pop3s lmtp admin gossip; do
        addr=$(sed -n "s/.*node started.* $key=\([^ \"]*\).*/\1/p" "$STATE/$name.log" | head -n 1)
        if [ -n "$addr" ]; then
            env_out "${prefix}_$(echo "$key" | tr a-z A-Z)=$addr"
        fi
    done
}
