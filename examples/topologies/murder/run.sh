#!/usr/bin/env bash
# run.sh start|stop — a murder assembled by gossip: one master, two
# backends and two frontends, all told only where to join.
source "$(dirname "$0")/../lib.sh"

case ${1:-} in
start)
    build
    rm -f "$STATE/topology.env"
    key=$STATE/cluster.key
    [ -e "$key" ] || python3 -c 'import os; print(os.urandom(16).hex())' >"$key"
    users=$STATE/users
    [ -e "$users" ] || printf '%s\n' 'admin:{PLAIN}adminpw' 'mupdate:{PLAIN}mupdatepw' 'proxy:{PLAIN}proxypw' \
        'alice:{PLAIN}alicepw' 'bob:{PLAIN}bobpw' >"$users"
    conf=$STATE/node.conf
    printf '%s\n' 'admins: admin mupdate' 'mupdate_authname: mupdate' 'mupdate_password: mupdatepw' \
        'proxyservers: proxy' 'proxy_password: proxypw' 'allowplaintext: yes' 'gossip_preset: local' >"$conf"
    common=(--config "$conf" --users "$users" --cluster-key "$key")
    mail_ports() {
        echo --imap 127.0.0.1:$(free_port) --pop3 127.0.0.1:$(free_port) --lmtp 127.0.0.1:$(free_port) \
            --admin 127.0.0.1:$(free_port) --gossip 127.0.0.1:$(free_port)
    }

    SEED=127.0.0.1:$(free_port)
    MASTER=127.0.0.1:$(free_port)
    start_node master "${common[@]}" --roles master --gossip "$SEED" --mupdate "$MASTER" \
        --admin 127.0.0.1:$(free_port)
    wait_log master "node started"
    for b in be1 be2; do
        # shellcheck disable=SC2046
        start_node "$b" "${common[@]}" --roles backend --join "$SEED" $(mail_ports)
    done
    for f in fe1 fe2; do
        # shellcheck disable=SC2046
        start_node "$f" "${common[@]}" --roles frontend,replica --join "$SEED" \
            --mupdate 127.0.0.1:$(free_port) $(mail_ports)
    done
    for n in be1 be2; do wait_log "$n" "pushed the mailbox list"; done
    for n in fe1 fe2; do wait_log "$n" "replica synchronised"; done
    for n in master be1 be2 fe1 fe2; do node_env "$n" "$(echo "$n" | tr a-z A-Z)"; done
    env_out "MASTER=$MASTER" "SEED=$SEED" "USERS=$users"
    ;;
stop)
    stop_all
    ;;
*)
    echo "usage: $0 start|stop" >&2; exit 2;;
esac
