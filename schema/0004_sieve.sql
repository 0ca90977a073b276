-- Sieve scripts (ManageSieve uploads them, delivery runs the active one) and vacation tracking.

CREATE TABLE sieve_scripts (
    id         bigserial PRIMARY KEY,
    account_id bigint NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name       text NOT NULL,
    script     text NOT NULL,
    active     boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX sieve_scripts_name ON sieve_scripts (account_id, name);
CREATE UNIQUE INDEX sieve_scripts_one_active ON sieve_scripts (account_id) WHERE active;

-- One row per (account, sender, handle): when the last vacation reply went out.
CREATE TABLE vacation_responses (
    account_id    bigint NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    sender        text NOT NULL,
    handle        text NOT NULL DEFAULT '',
    responded_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (account_id, sender, handle)
);
CREATE INDEX vacation_responses_age ON vacation_responses (responded_at);
