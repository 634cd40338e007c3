#!/usr/bin/env bash
# run.sh start|stop — a mixed murder: a Rookery master and a Rookery
# frontend in front of two REAL Cyrus 3.6 backends (from ../shared/cyrus;
# needs root and the Cyrus packages, which its install.sh installs).
source "$(dirname "$0")/../lib.sh"
HARNESS=${ROOKERY_CYRUS_DIR:-$REPO/../shared/cyrus}

case ${1:-} in
start)
    build
    rm -f "$STATE/topology.env"
    users=$STATE/users
    # The harness's Cyrus backends log in to the master as mupdate and
    # accept the frontend as proxy, with these passwords.
    printf '%s\n' 'admin:{PLAIN}adminpw' 'mupdate:{PLAIN}mupdatepw' 'proxy:{PLAIN}proxypw' \
        'alice:{PLAIN}alicepw' 'bob:{PLAIN}bobpw' >"$users"
    MASTER=127.0.0.1:$(free_port)
    start_node master --users "$users" --admins "admin mupdate" --roles master --mupdate "$MASTER" \
        --admin 127.0.0.1:$(free_port)
    wait_log master "node started"
    for b in cy1 cy2; do
        port=$(free_port)
        "$HARNESS/murder.sh" start backend "$STATE/$b" --master "$MASTER" --imap-port "$port" >"$STATE/$b.start" \
            || { cat "$STATE/$b.start" >&2; exit 1; }
        echo "$STATE/$b" >>"$STATE/cyrus.dirs"
        env_out "$(echo "$b" | tr a-z A-Z)_IMAP=127.0.0.1:$port"
    done
    "$HARNESS/murder.sh" adduser "$STATE/cy1" alice alicepw --inbox >/dev/null
    "$HARNESS/murder.sh" adduser "$STATE/cy2" bob bobpw --inbox >/dev/null
    # carol exists only in cy1's sasldb: the frontend checks her password
    # there (password_check: users backend).
    "$HARNESS/murder.sh" adduser "$STATE/cy1" carol carolpw --inbox >/dev/null
    FE_IMAP=127.0.0.1:$(free_port)
    conf=$STATE/frontend.conf
    printf '%s\n' 'mupdate_authname: mupdate' 'mupdate_password: mupdatepw' 'proxy_password: proxypw' \
        'allowplaintext: yes' 'admins: admin' 'password_check: users backend' >"$conf"
    start_node fe --config "$conf" --users "$users" --roles frontend,replica --master "$MASTER" \
        --mupdate 127.0.0.1:$(free_port) --imap "$FE_IMAP" --pop3 127.0.0.1:$(free_port) \
        --lmtp 127.0.0.1:$(free_port) --admin 127.0.0.1:$(free_port)
    wait_log fe "replica synchronised"
    env_out "MASTER=$MASTER" "FE_IMAP=$FE_IMAP" "USERS=$users"
    ;;
stop)
    stop_all
    if [ -e "$STATE/cyrus.dirs" ]; then
        while read -r d; do "$HARNESS/murder.sh" stop "$d" >/dev/null || true; done <"$STATE/cyrus.dirs"
        rm -f "$STATE/cyrus.dirs"
    fi
    ;;
*)
    echo "usage: $0 start|stop" >&2; exit 2;;
esac
