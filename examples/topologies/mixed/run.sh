#!/usr/bin/env bash
# run.sh start|stop — a mixed murder: a Rookery master and a Rookery
# frontend in front of two REAL Cyrus 3.6 backends, run by the repository's
# cyrusctl (internal/cyrustest). Needs root and the packages of
# `sudo internal/cyrustest/install-cyrus.sh`.
#
# start records every node's pid and every Cyrus directory in $STATE before
# starting it, so stop stops all of them, also after a start that failed
# half-way (start then stops them itself).
source "$(dirname "$0")/../lib.sh"
CTL=$STATE/bin/cyrusctl

stop_mixed() {
    stop_all
    if [ -e "$STATE/cyrus.dirs" ]; then
        # shellcheck disable=SC2046 # one directory per line, no spaces
        "$CTL" stop $(cat "$STATE/cyrus.dirs")
        rm -f "$STATE/cyrus.dirs"
    fi
}

case ${1:-} in
start)
    if [ -e "$STATE/cyrus.dirs" ] || compgen -G "$STATE/*.pid" >/dev/null; then
        echo "$0: $STATE holds a running topology; run $0 stop first" >&2
        exit 1
    fi
    build
    (cd "$REPO" && go build -o "$CTL" ./internal/cyrustest/cyrusctl)
    trap 'echo "$0: start failed; stopping what it started" >&2; stop_mixed' ERR
    rm -f "$STATE/topology.env"
    users=$STATE/users
    # cyrustest's Cyrus backends log in to the master as mupdate and
    # accept the frontend as proxy, with these passwords.
    printf '%s\n' 'admin:{PLAIN}adminpw' 'mupdate:{PLAIN}mupdatepw' 'proxy:{PLAIN}proxypw' \
        'alice:{PLAIN}alicepw' 'bob:{PLAIN}bobpw' >"$users"
    MASTER=127.0.0.1:$(free_port)
    start_node master --users "$users" --admins "admin mupdate" --roles master --mupdate "$MASTER" \
        --admin 127.0.0.1:$(free_port)
    wait_log master "node started"
    for b in cy1 cy2; do
        port=$(free_port)
        echo "$STATE/$b" >>"$STATE/cyrus.dirs"
        "$CTL" start backend "$STATE/$b" -master "$MASTER" -imap-port "$port" >"$STATE/$b.env"
        env_out "$(echo "$b" | tr a-z A-Z)_IMAP=127.0.0.1:$port"
    done
    "$CTL" adduser "$STATE/cy1" alice alicepw -inbox
    "$CTL" adduser "$STATE/cy2" bob bobpw -inbox
    # carol exists only in cy1's sasldb: the frontend checks her password
    # there (password_check: users backend).
    "$CTL" adduser "$STATE/cy1" carol carolpw -inbox
    FE_IMAP=127.0.0.1:$(free_port)
    conf=$STATE/frontend.conf
    printf '%s\n' 'mupdate_authname: mupdate' 'mupdate_password: mupdatepw' 'proxy_password: proxypw' \
        'allowplaintext: yes' 'admins: admin' 'password_check: users backend' >"$conf"
    start_node fe --config "$conf" --users "$users" --roles frontend,replica --master "$MASTER" \
        --mupdate 127.0.0.1:$(free_port) --imap "$FE_IMAP" --pop3 127.0.0.1:$(free_port) \
        --lmtp 127.0.0.1:$(free_port) --admin 127.0.0.1:$(free_port)
    wait_log fe "replica synchronised"
    node_env master MASTER
    node_env fe FE
    env_out "MASTER=$MASTER" "USERS=$users"
    ;;
stop)
    stop_mixed
    ;;
*)
    echo "usage: $0 start|stop" >&2; exit 2;;
esac
