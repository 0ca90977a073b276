-- TLS certificates shared by every node: ACME accounts, issued certificates, pending challenges.
-- The ACME plugin orders under an advisory lock (one node at a time) and every node serves what is here.

CREATE TABLE tls_acme_accounts (
    directory   text PRIMARY KEY,           -- the CA's directory URL: one account per CA
    key_pem     text NOT NULL,              -- the account's private key (PKCS#8 PEM)
    uri         text NOT NULL DEFAULT '',   -- the account URL the CA gave (kid)
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE tls_certificates (
    name        text PRIMARY KEY,           -- the first (primary) DNS name
    names       text[] NOT NULL,
    cert_pem    text NOT NULL,              -- leaf first, then the chain
    key_pem     text NOT NULL,
    not_after   timestamptz NOT NULL,
    issuer      text NOT NULL DEFAULT '',   -- the directory URL that issued it
    renewals    integer NOT NULL DEFAULT 0,
    issued_at   timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE tls_acme_challenges (
    kind        text NOT NULL CHECK (kind IN ('http-01', 'tls-alpn-01')),
    key         text NOT NULL,              -- http-01: the token; tls-alpn-01: the domain
    value       text NOT NULL,              -- http-01: the key authorization; tls-alpn-01: cert+key PEM
    created_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (kind, key)
);
