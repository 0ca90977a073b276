-- Keywords ever used in a mailbox, for the IMAP FLAGS / PERMANENTFLAGS answers at SELECT.
ALTER TABLE mailboxes ADD COLUMN keywords text[] NOT NULL DEFAULT '{}';

CREATE FUNCTION sora_mailbox_keywords() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    UPDATE mailboxes mb
       SET keywords = mb.keywords || ARRAY(SELECT x FROM unnest(n.used) x WHERE x <> ALL(mb.keywords))
      FROM (SELECT r.mailbox_id, array_agg(DISTINCT k) AS used
              FROM new_rows r, unnest(r.keywords) k
             GROUP BY r.mailbox_id) n
     WHERE mb.id = n.mailbox_id AND NOT (n.used <@ mb.keywords);
    RETURN NULL;
END $$;

CREATE TRIGGER messages_keywords_insert AFTER INSERT ON messages
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION sora_mailbox_keywords();
CREATE TRIGGER messages_keywords_update AFTER UPDATE ON messages
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION sora_mailbox_keywords();

UPDATE mailboxes mb SET keywords = coalesce(
    (SELECT array_agg(DISTINCT k) FROM messages m, unnest(m.keywords) k WHERE m.mailbox_id = mb.id), '{}');
