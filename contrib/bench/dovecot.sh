#!/usr/bin/env bash
# Start a throwaway Dovecot (Debian's dovecot-imapd, -pop3d, -lmtpd) on loopback for side-by-side
# benchmarks with Sora: IMAP 11143, POP3 11110, LMTP 12424, Maildir, any user, password "bench".
#   contrib/bench/dovecot.sh start DIR     |   contrib/bench/dovecot.sh stop DIR
# Needs root (it runs mail as the "vmail" user it creates). Never exposed beyond 127.0.0.1.
set -euo pipefail
action=${1:?start|stop}
dir=$(realpath -m "${2:?directory}")
case "$action" in
  start)
    command -v dovecot >/dev/null || { echo "apt-get install dovecot-imapd dovecot-pop3d dovecot-lmtpd" >&2; exit 1; }
    id vmail >/dev/null 2>&1 || useradd --system --no-create-home vmail
    mkdir -p "$dir/run" "$dir/mail"
    chown vmail:vmail "$dir/mail"
    cat > "$dir/dovecot.conf" <<CONF
base_dir = $dir/run
log_path = $dir/dovecot.log
protocols = imap pop3 lmtp
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
mail_location = maildir:$dir/mail/%u
mail_uid = vmail
mail_gid = vmail
first_valid_uid = 1
# room for the idle-connection memory benchmark (1,000 sessions of one user from one address)
default_process_limit = 3000
default_client_limit = 20000
mail_max_userip_connections = 5000
passdb {
  driver = static
  args = password=bench
}
userdb {
  driver = static
  args = uid=vmail gid=vmail home=$dir/mail/%u allow_all_users=yes
}
service imap-login {
  inet_listener imap {
    port = 11143
  }
  inet_listener imaps {
    port = 0
  }
}
service pop3-login {
  inet_listener pop3 {
    port = 11110
  }
  inet_listener pop3s {
    port = 0
  }
}
service lmtp {
  inet_listener lmtp {
    address = 127.0.0.1
    port = 12424
  }
}
CONF
    dovecot -c "$dir/dovecot.conf"
    echo "dovecot: IMAP 127.0.0.1:11143 POP3 127.0.0.1:11110 LMTP 127.0.0.1:12424 (any user, password bench)"
    ;;
  stop)
    doveadm -c "$dir/dovecot.conf" stop 2>/dev/null || pkill -f "dovecot -c $dir/dovecot.conf" || true
    ;;
esac
