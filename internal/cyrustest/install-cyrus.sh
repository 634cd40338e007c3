#!/usr/bin/env bash
# install-cyrus.sh - install what Rookery's interop tests need on Debian 12:
# real Cyrus IMAP 3.6 (murder, POP3, clients, admin tools), SASL with sasldb,
# mbsync for the packaged-client test, libdovecot for imaptest, a C compiler
# for per-instance Cyrus logs and python3 for the example topologies.
#
#   sudo internal/cyrustest/install-cyrus.sh
#
# Safe to re-run (it only installs what is missing) and to run in parallel
# (runs take turns on a lock). The packages' maintainer scripts are kept from
# starting the system-wide Cyrus, which would hold *:143 and *:110. Appends
# "lmtp 2003/tcp" to /etc/services if it has no lmtp entry.
set -euo pipefail

say() { echo "install-cyrus.sh: $*"; }

[ "$(id -u)" = 0 ] || { say "run me as root (sudo $0)" >&2; exit 1; }
command -v apt-get >/dev/null || { say "needs Debian or Ubuntu (apt-get)" >&2; exit 1; }

lock=/run/lock/rookery-install-cyrus.lock
[ -d /run/lock ] || lock=/tmp/rookery-install-cyrus.lock
exec 9>"$lock"
flock -w 900 9 || { say "another run holds $lock for 15 minutes; giving up" >&2; exit 1; }

# Never dovecot-imapd: it conflicts with cyrus-imapd and would remove it.
packages="cyrus-common cyrus-imapd cyrus-murder cyrus-pop3d cyrus-clients cyrus-admin
    sasl2-bin libsasl2-modules libsasl2-modules-db isync dovecot-core slapd openssl
    gcc libc6-dev python3 netbase util-linux"

missing=""
for p in $packages; do
    if [ "$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)" != "install ok installed" ]; then
        missing="$missing $p"
    fi
done

if [ -n "$missing" ]; then
    say "installing:$missing"
    export DEBIAN_FRONTEND=noninteractive
    # policy-rc.d exit 101 tells invoke-rc.d and deb-systemd-invoke not to
    # start services; one that exists already is the administrator's.
    if [ ! -e /usr/sbin/policy-rc.d ]; then
        printf '#!/bin/sh\n# rookery install-cyrus.sh: no daemons during install\nexit 101\n' >/usr/sbin/policy-rc.d
        chmod 0755 /usr/sbin/policy-rc.d
        trap 'rm -f /usr/sbin/policy-rc.d' EXIT
    fi
    apt="apt-get -q -o DPkg::Lock::Timeout=600"
    # shellcheck disable=SC2086
    if ! $apt install -y --no-install-recommends \
            -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold $missing; then
        $apt update
        # shellcheck disable=SC2086
        $apt install -y --no-install-recommends \
            -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold $missing
    fi
else
    say "every package is installed already"
fi

# A Cyrus frontend finds a backend's LMTP port by the service name "lmtp",
# which Debian's /etc/services lacks; 2003 is the port Cyrus documents.
if ! getent services lmtp/tcp >/dev/null; then
    printf 'lmtp\t\t2003/tcp\t\t\t# Cyrus murder LMTP (rookery install-cyrus.sh)\n' >>/etc/services
    say "added lmtp 2003/tcp to /etc/services"
fi

# The tests run backends on 127.0.0.N:143 and :110; a daemon on the
# wildcard address of those ports (a system cyrus-imapd) blocks them.
for port in 143 110; do
    hex=$(printf '%04X' "$port")
    if grep -qE "^ *[0-9]+: 00000000:$hex [0-9A-F]{8}:[0-9A-F]{4} 0A " /proc/net/tcp 2>/dev/null; then
        say "warning: something listens on *:$port (the system cyrus-imapd?); stop it," \
            "e.g. systemctl disable --now cyrus-imapd" >&2
    fi
done

say "$(/usr/lib/cyrus/bin/master -V 2>&1 | head -n1 || true)"
say "done"
