-- The relay queue: outbound mail (Sieve redirect, vacation, reject, notify, DSN) waiting for the site's MTA.
-- One row per message, shared by every node: workers lease due rows with FOR UPDATE SKIP LOCKED, a lease
-- left behind by a crashed worker expires and the row is due again.

CREATE TABLE relay_queue (
    id            bigserial PRIMARY KEY,
    kind          text NOT NULL,
    sender        text NOT NULL,               -- '' is the null sender <>
    recipients    text[] NOT NULL,
    raw           bytea NOT NULL,
    account_id    bigint,                       -- the account that caused it (no FK: a queued bounce outlives it)
    message_id    text NOT NULL DEFAULT '',
    reason        text NOT NULL DEFAULT '',
    state         text NOT NULL DEFAULT 'pending'
                  CHECK (state IN ('pending', 'processing', 'sent', 'failed')),
    attempts      integer NOT NULL DEFAULT 0,
    queued_at     timestamptz NOT NULL DEFAULT now(),
    next_attempt  timestamptz NOT NULL DEFAULT now(),
    last_attempt  timestamptz,
    lease_until   timestamptz,
    leased_by     text NOT NULL DEFAULT '',
    last_error    text NOT NULL DEFAULT '',
    errors        text[] NOT NULL DEFAULT '{}',
    finished_at   timestamptz
);
CREATE INDEX relay_queue_due ON relay_queue (next_attempt) WHERE state = 'pending';
CREATE INDEX relay_queue_leased ON relay_queue (lease_until) WHERE state = 'processing';
CREATE INDEX relay_queue_finished ON relay_queue (state, finished_at) WHERE state IN ('sent', 'failed');

-- Per-account redirect counters, one row per fixed window (the rate limit against a compromised account).
CREATE TABLE relay_rate (
    account_id    bigint NOT NULL,
    window_start  timestamptz NOT NULL,
    sent          integer NOT NULL,
    PRIMARY KEY (account_id, window_start)
);
