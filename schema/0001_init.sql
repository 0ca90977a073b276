-- Sora kernel schema: accounts, credentials, mailboxes, messages, contents, subscriptions, locks.
-- Requires the pg_trgm extension (substring search index); the migration runner checks for it.

CREATE EXTENSION IF NOT EXISTS pg_trgm;

CREATE TABLE accounts (
    id             bigserial PRIMARY KEY,
    created_at     timestamptz NOT NULL DEFAULT now(),
    updated_at     timestamptz NOT NULL DEFAULT now(),
    deleted_at     timestamptz,
    quota_bytes    bigint,
    quota_messages bigint
);

CREATE TABLE credentials (
    id            bigserial PRIMARY KEY,
    account_id    bigint NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    address       text NOT NULL,
    domain        text NOT NULL,
    password_hash text,
    scram_secret  text,
    is_primary    boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX credentials_address_key ON credentials (lower(address));
CREATE UNIQUE INDEX credentials_one_primary ON credentials (account_id) WHERE is_primary;
CREATE INDEX credentials_account ON credentials (account_id);

CREATE TABLE mailboxes (
    id               bigserial PRIMARY KEY,
    account_id       bigint NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name             text NOT NULL,
    uidvalidity      bigint NOT NULL,
    uidnext          bigint NOT NULL DEFAULT 1,
    highest_modseq   bigint NOT NULL DEFAULT 1,
    first_recent_uid bigint NOT NULL DEFAULT 1,
    special_use      text,
    message_count    bigint NOT NULL DEFAULT 0,
    unseen_count     bigint NOT NULL DEFAULT 0,
    total_size       bigint NOT NULL DEFAULT 0,
    created_at       timestamptz NOT NULL DEFAULT now(),
    deleted_at       timestamptz
);
CREATE UNIQUE INDEX mailboxes_live_name ON mailboxes (account_id, name) WHERE deleted_at IS NULL;
CREATE INDEX mailboxes_deleted ON mailboxes (deleted_at) WHERE deleted_at IS NOT NULL;

CREATE TABLE subscriptions (
    account_id bigint NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name       text NOT NULL,
    PRIMARY KEY (account_id, name)
);

-- One row per distinct body of an account: what parsing once computed.
CREATE TABLE message_contents (
    account_id    bigint NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    content_hash  bytea NOT NULL,
    size          bigint NOT NULL,
    envelope      bytea NOT NULL,
    bodystructure bytea NOT NULL,
    body          bytea NOT NULL,
    subject       text NOT NULL DEFAULT '',
    from_addr     text NOT NULL DEFAULT '',
    from_name     text NOT NULL DEFAULT '',
    to_addr       text NOT NULL DEFAULT '',
    cc_addr       text NOT NULL DEFAULT '',
    message_id    text NOT NULL DEFAULT '',
    in_reply_to   text NOT NULL DEFAULT '',
    sent_date     timestamptz,
    header_text   text NOT NULL DEFAULT '',
    body_text     text NOT NULL DEFAULT '',
    indexed       boolean NOT NULL DEFAULT false,
    created_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, content_hash)
);
-- Trigram indexes cover rows the background indexer has marked; new rows are scanned directly,
-- which keeps index maintenance off the delivery path while SEARCH answers stay complete.
CREATE INDEX message_contents_header_trgm ON message_contents USING gin (header_text gin_trgm_ops) WHERE indexed;
CREATE INDEX message_contents_body_trgm ON message_contents USING gin (body_text gin_trgm_ops) WHERE indexed;
CREATE INDEX message_contents_unindexed ON message_contents (account_id) WHERE NOT indexed;

CREATE TABLE messages (
    id            bigserial PRIMARY KEY,
    account_id    bigint NOT NULL,
    mailbox_id    bigint NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
    uid           bigint NOT NULL,
    modseq        bigint NOT NULL,
    content_hash  bytea NOT NULL,
    size          bigint NOT NULL,
    internal_date timestamptz NOT NULL,
    saved_at      timestamptz NOT NULL DEFAULT now(),
    flags         integer NOT NULL DEFAULT 0,
    keywords      text[] NOT NULL DEFAULT '{}',
    delivery_key  bytea,
    expunged_at   timestamptz,
    UNIQUE (mailbox_id, uid)
);
CREATE INDEX messages_modseq ON messages (mailbox_id, modseq);
CREATE INDEX messages_content ON messages (account_id, content_hash);
CREATE INDEX messages_expunged ON messages (expunged_at) WHERE expunged_at IS NOT NULL;
CREATE INDEX messages_delivery_key ON messages (mailbox_id, delivery_key) WHERE delivery_key IS NOT NULL;

-- Per-mailbox counters kept by statement-level triggers, so STATUS never counts rows.
CREATE FUNCTION sora_messages_after_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE mailboxes mb
       SET message_count = mb.message_count + d.n,
           unseen_count = mb.unseen_count + d.unseen,
           total_size = mb.total_size + d.bytes
      FROM (SELECT mailbox_id, count(*) AS n, count(*) FILTER (WHERE flags & 1 = 0) AS unseen,
                   sum(size) AS bytes
              FROM new_rows WHERE expunged_at IS NULL GROUP BY mailbox_id) d
     WHERE mb.id = d.mailbox_id;
    RETURN NULL;
END $$;

CREATE FUNCTION sora_messages_after_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE mailboxes mb
       SET message_count = mb.message_count + d.n,
           unseen_count = mb.unseen_count + d.unseen,
           total_size = mb.total_size + d.bytes
      FROM (SELECT mailbox_id, sum(n) AS n, sum(unseen) AS unseen, sum(bytes) AS bytes FROM (
                SELECT mailbox_id, 1 AS n, CASE WHEN flags & 1 = 0 THEN 1 ELSE 0 END AS unseen, size AS bytes
                  FROM new_rows WHERE expunged_at IS NULL
                UNION ALL
                SELECT mailbox_id, -1, CASE WHEN flags & 1 = 0 THEN -1 ELSE 0 END, -size
                  FROM old_rows WHERE expunged_at IS NULL) x
             GROUP BY mailbox_id) d
     WHERE mb.id = d.mailbox_id AND (d.n <> 0 OR d.unseen <> 0 OR d.bytes <> 0);
    RETURN NULL;
END $$;

CREATE FUNCTION sora_messages_after_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE mailboxes mb
       SET message_count = mb.message_count - d.n,
           unseen_count = mb.unseen_count - d.unseen,
           total_size = mb.total_size - d.bytes
      FROM (SELECT mailbox_id, count(*) AS n, count(*) FILTER (WHERE flags & 1 = 0) AS unseen,
                   sum(size) AS bytes
              FROM old_rows WHERE expunged_at IS NULL GROUP BY mailbox_id) d
     WHERE mb.id = d.mailbox_id;
    RETURN NULL;
END $$;

CREATE TRIGGER messages_counters_insert AFTER INSERT ON messages
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION sora_messages_after_insert();
CREATE TRIGGER messages_counters_update AFTER UPDATE ON messages
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION sora_messages_after_update();
CREATE TRIGGER messages_counters_delete AFTER DELETE ON messages
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION sora_messages_after_delete();

-- Session locks with a lease (POP3 maildrop lock across nodes, and any future exclusive session).
CREATE TABLE session_locks (
    kind       text NOT NULL,
    account_id bigint NOT NULL,
    owner      text NOT NULL,
    expires_at timestamptz NOT NULL,
    PRIMARY KEY (kind, account_id)
);

-- UIDVALIDITY values: never reused, even when a mailbox is deleted and created again.
CREATE SEQUENCE mailbox_uidvalidity_seq;
SELECT setval('mailbox_uidvalidity_seq', extract(epoch FROM now())::bigint);
