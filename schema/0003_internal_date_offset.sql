-- The client's UTC offset of INTERNALDATE (minutes east), so APPEND's date-time comes back as sent.
ALTER TABLE messages ADD COLUMN internal_tz smallint NOT NULL DEFAULT 0;
