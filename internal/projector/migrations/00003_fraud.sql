-- The fraud read model (issue 20; docs/projector.md, "Fraud read model"):
-- login attempts counted by source prefix, by device (user agent) and by
-- hour, and the credential changes that, with the lockouts of
-- login_attempts, make the takeover pattern. Written by the projector in
-- the same transaction as the other tables (so under the same
-- per-partition checkpoints), rebuilt with them. The counters only ever
-- grow by the attempts a batch adds; two partitions add to the same rows.
-- Each table is keyed on what it counts, so another fact about sources
-- (the throttling by source, say) is one more table keyed by source.

-- +goose Up
CREATE TABLE fraud_source_hourly (
    source_prefix cidr NOT NULL,        -- the client address's /24 (IPv4) or /64 (IPv6)
    hour          timestamptz NOT NULL, -- the hour (UTC) the attempts fall in
    step          text NOT NULL,        -- as in login_attempts
    outcome       text NOT NULL,        -- as in login_attempts
    attempts      bigint NOT NULL,
    PRIMARY KEY (source_prefix, hour, step, outcome)
);
CREATE INDEX fraud_source_hourly_hour ON fraud_source_hourly (hour);

CREATE TABLE fraud_device_hourly (
    ua_hash  text COLLATE "C" NOT NULL, -- digest of the user agent: fraud_user_agents has its text
    hour     timestamptz NOT NULL,
    step     text NOT NULL,
    outcome  text NOT NULL,
    attempts bigint NOT NULL,
    PRIMARY KEY (ua_hash, hour, step, outcome)
);
CREATE INDEX fraud_device_hourly_hour ON fraud_device_hourly (hour);

-- Each user agent once.
CREATE TABLE fraud_user_agents (
    ua_hash       text COLLATE "C" PRIMARY KEY,
    user_agent    text NOT NULL,
    first_seen_at timestamptz NOT NULL
);

CREATE TABLE fraud_hourly (
    hour     timestamptz NOT NULL,
    channel  text NOT NULL,             -- '' when the request named none
    step     text NOT NULL,
    outcome  text NOT NULL,
    attempts bigint NOT NULL,
    PRIMARY KEY (hour, channel, step, outcome)
);

-- Completed password resets and email changes (they never leave the stream).
CREATE TABLE credential_changes (
    partition  integer NOT NULL,
    seq        bigint NOT NULL,
    account_id text COLLATE "C" NOT NULL,
    kind       text NOT NULL,           -- password_reset | email_change
    at         timestamptz NOT NULL,
    PRIMARY KEY (partition, seq)
);
CREATE INDEX credential_changes_account_at ON credential_changes (account_id, at);
CREATE INDEX credential_changes_kind_at ON credential_changes (kind, at);

-- The usual takeover pattern: a lockout, a password reset and an email
-- change of one account, the three within 48 hours of each other. One row
-- per (email change, reset) pair that has a lockout in its window, with
-- the latest such lockout. Lockouts are login_attempts' 'blocked'
-- outcomes (password failures, code failures, code quota), whose rows
-- survive the attempts' retention.
CREATE VIEW fraud_takeover_pattern AS
SELECT e.account_id, l.at AS locked_at, l.reason AS lock_reason, r.at AS reset_at, e.at AS email_changed_at
FROM credential_changes e
JOIN credential_changes r ON r.account_id = e.account_id AND r.kind = 'password_reset'
    AND r.at >= e.at - interval '48 hours' AND r.at <= e.at + interval '48 hours'
CROSS JOIN LATERAL (
    SELECT a.at, a.reason FROM login_attempts a
    WHERE a.account_id = e.account_id AND a.outcome = 'blocked'
      AND a.at >= greatest(e.at, r.at) - interval '48 hours'
      AND a.at <= least(e.at, r.at) + interval '48 hours'
    ORDER BY a.at DESC LIMIT 1) l
WHERE e.kind = 'email_change';

-- +goose Down
DROP VIEW fraud_takeover_pattern;
DROP TABLE credential_changes;
DROP TABLE fraud_hourly;
DROP TABLE fraud_user_agents;
DROP TABLE fraud_device_hourly;
DROP TABLE fraud_source_hourly;
