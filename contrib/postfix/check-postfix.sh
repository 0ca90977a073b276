#!/bin/sh
# Check that Postfix delivers into Sora over LMTP, with a throwaway Postfix instance.
#
#   sudo contrib/postfix/check-postfix.sh [LMTP host:port] [recipient ...]
#   sudo contrib/postfix/check-postfix.sh 127.0.0.1:2424 a@example.com b@example.com
#
# Needs root and the postfix package (Debian: apt-get install postfix). It builds a Postfix
# instance in $SORA_POSTFIX_DIR (default /tmp/sora-postfix-check) whose virtual_transport is
# Sora's LMTP listener, queues one message for all recipients with that instance's sendmail,
# waits for the LMTP replies in its log and stops the instance again. The default instance is
# neither started nor reconfigured, except that /etc/postfix/main.cf must allow the check's
# config directory (alternate_config_directories); the script adds that line when missing.
# Exit status 0 when every recipient got "status=sent" with Sora's 250 2.0.0 reply.
set -eu

LMTP=${1:-127.0.0.1:2424}
[ $# -gt 0 ] && shift
RECIPIENTS=${*:-a@example.com}
DIR=${SORA_POSTFIX_DIR:-/tmp/sora-postfix-check}
DOMAINS=$(for r in $RECIPIENTS; do echo "${r#*@}"; done | sort -u | tr '\n' ' ')

command -v postfix >/dev/null || { echo "postfix is not installed" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "run as root (postfix needs it to start an instance)" >&2; exit 2; }

postfix -c "$DIR/etc" stop >/dev/null 2>&1 || true
rm -rf "$DIR"
mkdir -p "$DIR/etc" "$DIR/spool" "$DIR/data"
chown postfix "$DIR/data"

cat > "$DIR/etc/main.cf" <<EOF
compatibility_level = 3.6
queue_directory = $DIR/spool
data_directory = $DIR/data
maillog_file = $DIR/maillog
maillog_file_prefixes = $DIR
mail_owner = postfix
myhostname = postfix-check.sora.test
mydestination =
inet_interfaces = loopback-only
inet_protocols = ipv4
virtual_mailbox_domains = $DOMAINS
virtual_transport = lmtp:inet:$LMTP
recipient_delimiter = +
EOF
# no smtpd: the message enters through the instance's own sendmail (pickup)
cat > "$DIR/etc/master.cf" <<'EOF'
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
EOF

DEFAULT=/etc/postfix/main.cf
if ! postconf -h alternate_config_directories 2>/dev/null | grep -q "$DIR/etc"; then
    echo "adding $DIR/etc to alternate_config_directories in $DEFAULT"
    [ -f "$DEFAULT" ] || echo "compatibility_level = 3.6" > "$DEFAULT"
    current=$(postconf -h alternate_config_directories 2>/dev/null || true)
    postconf -e "alternate_config_directories = ${current:+$current, }$DIR/etc"
fi

postfix -c "$DIR/etc" check
postfix -c "$DIR/etc" start >/dev/null
trap 'postfix -c "$DIR/etc" stop >/dev/null 2>&1 || true' EXIT

ID="sora-postfix-check-$(date +%s)-$$"
# shellcheck disable=SC2086  # one argument per recipient
/usr/sbin/sendmail -C "$DIR/etc" -f postfix-check@sora.test $RECIPIENTS <<EOF
From: Postfix check <postfix-check@sora.test>
To: $(echo $RECIPIENTS | sed 's/ /, /g')
Subject: Postfix to Sora over LMTP
Message-ID: <$ID@sora.test>

Delivered by Postfix through Sora's LMTP listener at $LMTP.
EOF

expected=$(echo $RECIPIENTS | wc -w)
for _ in $(seq 1 60); do
    done_count=$(grep -c "status=" "$DIR/maillog" 2>/dev/null || true)
    [ "${done_count:-0}" -ge "$expected" ] && break
    sleep 0.5
done
grep "status=" "$DIR/maillog" || { echo "FAIL: no delivery attempt logged (see $DIR/maillog)"; exit 1; }
sent=$(grep "status=sent" "$DIR/maillog" | grep -c "said: 250 2.0.0\|(250 2.0.0 " || true)
if [ "$sent" -eq "$expected" ]; then
    echo "OK: $sent of $expected recipients delivered into Sora (Message-ID <$ID@sora.test>)"
    exit 0
fi
echo "FAIL: $sent of $expected recipients delivered; see $DIR/maillog"
exit 1
