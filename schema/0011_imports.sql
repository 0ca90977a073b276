-- Messages brought in by `sora import maildir`: which Maildir file became which message. The row is
-- written in the transaction that stores the message, so a second (or interrupted, kill -9) run skips
-- exactly what is stored, and an export can give a message back its original file name.
CREATE TABLE maildir_imports (
    mailbox_id   bigint NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
    source_key   text NOT NULL,          -- the file's base name (the part before ':2,'); stable in Dovecot
    account_id   bigint NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    uid          bigint NOT NULL,
    content_hash bytea NOT NULL,
    crlf         boolean NOT NULL DEFAULT false,  -- the file had CRLF line ends (export writes them back)
    imported_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (mailbox_id, source_key)
);
CREATE INDEX maildir_imports_uid ON maildir_imports (mailbox_id, uid);
