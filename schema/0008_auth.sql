-- Auth rate limiting shared by every worker and node: one row per tracked key, a failure count in a
-- sliding-from-first-failure window and, once the tier's threshold is reached, a block end.
-- key: 'ip:<ip>', 'pair:<ip>|<user>' (user canonical: lower case, +detail and master suffix stripped)
-- or 'user:<user>' (stats only, never blocks). Each row carries its tier's window, threshold and block
-- length so the one upsert that counts a failure can decide the block (ON CONFLICT sees EXCLUDED).

CREATE TABLE auth_failures (
    key            text PRIMARY KEY,
    kind           text NOT NULL,
    failures       integer NOT NULL,
    window_start   timestamptz NOT NULL,
    last_failure   timestamptz NOT NULL,
    window_seconds double precision NOT NULL,
    threshold      integer NOT NULL,
    block_seconds  double precision NOT NULL,
    blocked_until  timestamptz
);
CREATE INDEX auth_failures_blocked ON auth_failures (blocked_until) WHERE blocked_until IS NOT NULL;
CREATE INDEX auth_failures_age ON auth_failures (last_failure);

-- Client connections of every worker and node, so operators list and kick them cluster-wide. Each
-- worker writes its own rows (owner = node:pid) and refreshes seen_at; rows of a worker that stopped
-- refreshing are stale and ignored, then deleted. A kick sets kick_requested_at; the owner closes the
-- session with the protocol's goodbye (IMAP BYE) and deletes the row.
CREATE TABLE active_connections (
    id                text PRIMARY KEY,
    owner             text NOT NULL,
    protocol          text NOT NULL,
    remote_ip         text NOT NULL,
    remote_port       integer NOT NULL,
    local_port        integer NOT NULL,
    tls               boolean NOT NULL,
    username          text NOT NULL DEFAULT '',
    connected_at      timestamptz NOT NULL,
    seen_at           timestamptz NOT NULL DEFAULT now(),
    kick_requested_at timestamptz
);
CREATE INDEX active_connections_owner ON active_connections (owner);
CREATE INDEX active_connections_user ON active_connections (lower(username));
