-- Sources throttled (issue 20; docs/projector.md, "Fraud read model"):
-- the fraud.source_throttled and fraud.source_released events of the
-- AUTH_FRAUD stream, one row each, as the commands service recorded them.
-- Written by the projector's fraud follower (fraudsrc.go), not by the
-- batches of the account streams: no checkpoint, the stream sequence is
-- the key and a redelivered event inserts nothing. A rebuild does not
-- derive these rows from the account streams: it carries them over.

-- +goose Up
CREATE TABLE fraud_source_events (
    seq            bigint PRIMARY KEY,          -- AUTH_FRAUD's stream sequence
    event_id       text COLLATE "C" NOT NULL UNIQUE, -- the event's id (its Nats-Msg-Id)
    type           text NOT NULL CHECK (type IN ('throttled', 'released')),
    source         cidr NOT NULL,               -- 203.0.113.7/32, 203.0.113.0/24, 2001:db8::/64 ...
    kind           text NOT NULL CHECK (kind IN ('ip', 'prefix')),
    failures       integer NOT NULL,            -- attempts counted in the window
    budget         integer NOT NULL,            -- the policy's budget for the kind
    window_start   timestamptz NOT NULL,
    window_seconds bigint NOT NULL,
    until          timestamptz NOT NULL,        -- throttled: end of the throttle; released: when it ended
    reason         text,                        -- released: window_passed | adviser
    request_id     text,                        -- released by an adviser: the request's request_id
    occurred_at    timestamptz NOT NULL
);
CREATE INDEX fraud_source_events_source ON fraud_source_events (source, window_start);
CREATE INDEX fraud_source_events_occurred_at ON fraud_source_events (occurred_at);

-- Each throttle with its release, if any: the first release of the same
-- source and window (a release names the window it ends). released_at is
-- null while the throttle is in force, or until its release is seen (the
-- commands service records a release lazily, at the source's first
-- attempt after the window: compare until with now()).
CREATE VIEW fraud_sources_throttled AS
SELECT t.source, t.kind, t.failures, t.budget, t.window_start, t.window_seconds,
       t.occurred_at AS throttled_at, t.until, r.occurred_at AS released_at, r.reason AS release_reason,
       t.event_id AS throttle_event_id, t.seq AS throttle_seq
FROM fraud_source_events t
LEFT JOIN LATERAL (
    SELECT x.occurred_at, x.reason FROM fraud_source_events x
    WHERE x.type = 'released' AND x.source = t.source AND x.kind = t.kind AND x.window_start = t.window_start
    ORDER BY x.seq LIMIT 1) r ON true
WHERE t.type = 'throttled';

-- +goose Down
DROP VIEW fraud_sources_throttled;
DROP TABLE fraud_source_events;
