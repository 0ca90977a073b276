-- Remote (S3) blobs: one row per account and BLAKE3 hash, the pending upload and the uploaded marker in one.
--
-- A row is written (state 'pending', node = the node holding the spool file) before the message row that
-- references the hash commits; the upload worker of that node leases it, uploads, and marks it 'uploaded'.
-- touched_at is refreshed by every store of the same bytes: the cleaner deletes a blob only when no message
-- row of the account references the hash AND touched_at is older than its fence, under the row's lock.
CREATE TABLE s3_blobs (
    account_id    bigint NOT NULL,
    content_hash  bytea NOT NULL,
    object_key    text NOT NULL,
    size          bigint NOT NULL,
    state         text NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'uploaded', 'failed')),
    node          text NOT NULL,
    attempts      integer NOT NULL DEFAULT 0,
    next_attempt  timestamptz NOT NULL DEFAULT now(),
    last_error    text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    uploaded_at   timestamptz,
    touched_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, content_hash)
);
CREATE INDEX s3_blobs_pending ON s3_blobs (node, next_attempt) WHERE state = 'pending';
CREATE INDEX s3_blobs_touched ON s3_blobs (touched_at);

-- Upload-worker liveness: a pending row of a node whose heartbeat is stale may be taken over by a node that
-- receives the same bytes again.
CREATE TABLE s3_nodes (
    node       text PRIMARY KEY,
    started_at timestamptz NOT NULL DEFAULT now(),
    last_seen  timestamptz NOT NULL DEFAULT now()
);
