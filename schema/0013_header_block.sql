-- The header block of each body (with its terminating blank line), so header-section FETCHes
-- (a mail client's message list) are answered from the metadata without reading the body.
-- NULL for bodies stored before: those are read from the blob store as before.
ALTER TABLE message_contents ADD COLUMN header bytea;
