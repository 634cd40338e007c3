#!/usr/bin/env bash
# run.sh start|stop — a murder assembled by gossip: one master, two
# backends and a replica, all told only where to join.
source "$(dirname "$0")/../lib.sh"

case ${1:-} in
start)
    build
    rm -f "$STATE/topology.env"
    key=$STATE/cluster.key
    [ -e "$key" ] || python3 -c 'import os; print(os.urandom(16).hex())' >"$key"
    users=$STATE/users
    [ -e "$users" ] || printf 'admin:{PLAIN}adminpw\nmupdate:{PLAIN}mupdatepw\nalice:{PLAIN}alicepw\nbob:{PLAIN}bobpw\n' >"$users"
    conf=$STATE/node.conf
    printf 'admins: admin mupdate\nmupdate_authname: mupdate\nmupdate_password: mupdatepw\ngossip_preset: local\n' >"$conf"
    common=(--config "$conf" --users "$users" --cluster-key "$key")

    SEED=127.0.0.1:$(free_port)
    MASTER=127.0.0.1:$(free_port)
    start_node master "${common[@]}" --roles master --gossip "$SEED" --mupdate "$MASTER" \
        --admin 127.0.0.1:$(free_port)
    wait_log master "node started"
    for b in be1 be2; do
        imap=127.0.0.1:$(free_port)
        start_node "$b" "${common[@]}" --roles backend --gossip 127.0.0.1:$(free_port) --join "$SEED" \
            --imap "$imap" --pop3 127.0.0.1:$(free_port) --lmtp 127.0.0.1:$(free_port) \
            --admin 127.0.0.1:$(free_port)
        env_out "$(echo "$b" | tr a-z A-Z)_IMAP=$imap"
    done
    REPLICA=127.0.0.1:$(free_port)
    start_node replica "${common[@]}" --roles replica --gossip 127.0.0.1:$(free_port) --join "$SEED" \
        --mupdate "$REPLICA" --admin 127.0.0.1:$(free_port)
    for n in be1 be2; do wait_log "$n" "pushed the mailbox list"; done
    wait_log replica "replica synchronised"
    env_out "MASTER=$MASTER" "REPLICA=$REPLICA" "SEED=$SEED" "USERS=$users"
    ;;
stop)
    stop_all
    ;;
*)
    echo "usage: $0 start|stop" >&2; exit 2;;
esac
