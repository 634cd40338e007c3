#!/usr/bin/env bash
# run.sh start|stop — one node with every role on loopback.
source "$(dirname "$0")/../lib.sh"

case ${1:-} in
start)
    build
    rm -f "$STATE/topology.env"
    MUPDATE=127.0.0.1:$(free_port) IMAP=127.0.0.1:$(free_port) ADMIN=127.0.0.1:$(free_port)
    POP3=127.0.0.1:$(free_port) LMTP=127.0.0.1:$(free_port)
    start_node aio --mupdate "$MUPDATE" --imap "$IMAP" --pop3 "$POP3" --lmtp "$LMTP" --admin "$ADMIN"
    wait_log aio "node started"
    node_env aio AIO
    env_out "MUPDATE=$MUPDATE" "IMAP=$IMAP" "POP3=$POP3" "LMTP=$LMTP" "ADMIN=$ADMIN" "USERS=$STATE/aio/users"
    ;;
stop)
    stop_all
    ;;
*)
    echo "usage: $0 start|stop" >&2; exit 2;;
esac
