-- IMAP completion (issue #16): keys computed once at delivery for SEARCH SENT*, address SEARCH,
-- SORT (RFC 5256, RFC 5957) and THREAD.

-- The UTC offset (minutes east) written in the Date: header: SENTON and friends compare the day as
-- written in the message's own zone (RFC 3501 6.4.4), not the day in UTC.
ALTER TABLE message_contents ADD COLUMN sent_tz smallint NOT NULL DEFAULT 0;
-- 'from: Name <local@domain>' per parsed From/To/Cc/Bcc address (comments and folding removed).
ALTER TABLE message_contents ADD COLUMN addresses text NOT NULL DEFAULT '';
-- SORT keys (i;ascii-casemap: upper-cased, compared with COLLATE "C"); DISPLAY keys case-folded.
ALTER TABLE message_contents ADD COLUMN sort_subject text NOT NULL DEFAULT '';
ALTER TABLE message_contents ADD COLUMN sort_from text NOT NULL DEFAULT '';
ALTER TABLE message_contents ADD COLUMN sort_to text NOT NULL DEFAULT '';
ALTER TABLE message_contents ADD COLUMN sort_cc text NOT NULL DEFAULT '';
ALTER TABLE message_contents ADD COLUMN display_from text NOT NULL DEFAULT '';
ALTER TABLE message_contents ADD COLUMN display_to text NOT NULL DEFAULT '';
-- every <msg-id> of References, space separated (THREAD=REFERENCES)
ALTER TABLE message_contents ADD COLUMN refs text NOT NULL DEFAULT '';

-- Rows stored before this migration: the same keys, from what the old columns hold. The zone is
-- the first numeric offset on the first Date: line; the base subject drops leading Re:/Fwd:
-- (the full RFC 5256 rules apply to every message delivered from now on).
UPDATE message_contents c
   SET sent_tz = coalesce((
           SELECT (CASE WHEN z[1] = '-' THEN -1 ELSE 1 END) * (z[2]::int * 60 + z[3]::int)
             FROM regexp_match(c.header_text, '(?:^|\n)[Dd][Aa][Tt][Ee]:[^\n]*?([+-])([0-9]{2})([0-5][0-9])(?![0-9])') z
            WHERE abs(z[2]::int) < 24), 0),
       addresses = concat_ws('',
           CASE WHEN c.from_addr <> '' THEN 'from: ' || c.from_addr || E'\n' END,
           CASE WHEN c.to_addr <> '' THEN 'to: ' || c.to_addr || E'\n' END,
           CASE WHEN c.cc_addr <> '' THEN 'cc: ' || c.cc_addr || E'\n' END),
       sort_subject = upper(regexp_replace(c.subject, '^\s*(((re|fwd?)\s*(\[[^]]*\])?\s*:|\[[^]]*\])\s*)+', '', 'i')),
       sort_from = upper(split_part(c.from_addr, '@', 1)),
       sort_to = upper(split_part(c.to_addr, '@', 1)),
       sort_cc = upper(split_part(c.cc_addr, '@', 1)),
       display_from = lower(coalesce(nullif(c.from_name, ''), c.from_addr)),
       display_to = lower(c.to_addr);
