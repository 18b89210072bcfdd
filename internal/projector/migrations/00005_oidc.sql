-- The OpenID Connect audit read model (issue 18; docs/projector.md,
-- "OpenID Connect"): one row per oidc.authorized (kind authorized) and
-- per oidc.token_issued (kind token_issued). Written by the projector in
-- the same transaction as the other tables, under the same per-partition
-- checkpoints, rebuilt with them. No subject, grant or claim: the events
-- hold none.

-- +goose Up
CREATE TABLE oidc_authorizations (
    partition  integer NOT NULL,
    seq        bigint NOT NULL,              -- the event's stream sequence
    account_id text COLLATE "C" NOT NULL,
    kind       text NOT NULL,                -- authorized | token_issued
    client_id  text COLLATE "C" NOT NULL,    -- the relying party
    scopes     text[] NOT NULL,              -- authorized, or of the tokens
    acr        text NOT NULL,                -- eidas1
    amr        text[],                       -- authorized only: pwd+otp, pwd+swk or hwk
    at         timestamptz NOT NULL,
    PRIMARY KEY (partition, seq)
);
CREATE INDEX oidc_authorizations_account_at ON oidc_authorizations (account_id, at);
CREATE INDEX oidc_authorizations_client_at ON oidc_authorizations (client_id, at);

-- +goose Down
DROP TABLE oidc_authorizations;
