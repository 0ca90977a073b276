-- QRESYNC (RFC 7162, issue #16): expunged rows keep their MODSEQ for the grace period; when they
-- are purged, the mailbox remembers the highest MODSEQ purged, so a resync from below it knows
-- its VANISHED (EARLIER) answer can no longer be exact.
ALTER TABLE mailboxes ADD COLUMN vanished_modseq bigint NOT NULL DEFAULT 0;
-- VANISHED (EARLIER): expunged rows of a mailbox by MODSEQ
CREATE INDEX messages_expunged_modseq ON messages (mailbox_id, modseq) WHERE expunged_at IS NOT NULL;
