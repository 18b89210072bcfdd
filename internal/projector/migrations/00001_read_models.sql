-- The read models of SPEC section 6. Names are unqualified: the migrations
-- run with search_path set to the target schema (auth, or auth_rebuild while
-- a rebuild builds its shadow copy), so one set of files builds both.
-- No secret is ever stored: no password, code, token or session hash, no
-- sealed value, no NIR. Identifiers use the "C" collation: they are ASCII,
-- and byte comparison keeps the indexes fast.

-- +goose Up
CREATE TABLE accounts (
    account_id                    text COLLATE "C" PRIMARY KEY,
    status                        text NOT NULL,              -- active | deactivated
    affiliation                   text NOT NULL,              -- active | pending | none
    masked_email                  text,                       -- v***@y***.fr
    email_validated               boolean NOT NULL DEFAULT false,
    email_changed_at              timestamptz,
    blocked_until                 timestamptz,                -- in force while now() < blocked_until
    block_reason                  text,                       -- password_failures | otp_failures | otp_quota
    password_failures             integer NOT NULL DEFAULT 0, -- in a row; spent by a block, reset by a login
    otp_failures                  integer NOT NULL DEFAULT 0,
    otp_requests_last_hour        integer NOT NULL DEFAULT 0, -- as of otp_last_requested_at
    otp_last_requested_at         timestamptz,
    password_changed_at           timestamptz,
    password_changed_by           text,                       -- change | reset
    password_reset_requested_at   timestamptz,
    password_change_blocked_until timestamptz,
    password_change_block_reason  text,                       -- code_requests_exceeded | code_attempts_exceeded
    email_change_blocked_until    timestamptz,
    email_change_block_reason     text,
    last_login_at                 timestamptz,
    last_login_channel            text,                       -- web | app | kiosk | backoffice
    last_login_method             text,                       -- otp | trusted_device | biometric
    trusted_devices               integer NOT NULL DEFAULT 0, -- rows in trusted_devices
    biometric_devices             integer NOT NULL DEFAULT 0, -- rows in biometric_devices
    biometric_offer               text,                       -- last answer: later | never | refuse
    deactivated_at                timestamptz,
    deactivation_reason           text,
    reactivated_at                timestamptz,
    registered_at                 timestamptz NOT NULL,
    updated_at                    timestamptz NOT NULL,       -- time of the last applied event
    version                       bigint NOT NULL             -- stream sequence of the last applied event
) WITH (fillfactor = 70); -- room on the page keeps the projector's updates HOT

-- One row per login-related fact, for fraud and support teams.
CREATE TABLE login_attempts (
    seq           bigint PRIMARY KEY, -- the event's stream sequence
    event_id      text NOT NULL,      -- the event's id (ULID)
    account_id    text COLLATE "C" NOT NULL,
    at            timestamptz NOT NULL,
    channel       text,
    client_ip     text,
    user_agent    text,
    step          text NOT NULL,   -- password | otp_send | otp | biometric_challenge | biometric
    outcome       text NOT NULL,   -- failed | blocked | refused | verified | code_sent | challenge_issued | succeeded
    reason        text,
    method        text,
    device        text,
    failures      integer,
    blocked_until timestamptz,
    login_ref     text             -- links the steps of one login; not the login_id
);
CREATE INDEX login_attempts_account_at ON login_attempts (account_id, at);
CREATE INDEX login_attempts_ip_at ON login_attempts (client_ip, at) WHERE client_ip IS NOT NULL;

-- Devices whose "Se souvenir de cet appareil" token skips the code: the
-- decider's list (the 10 newest, none expired when the last was added).
CREATE TABLE trusted_devices (
    account_id text COLLATE "C" NOT NULL,
    seq        bigint NOT NULL,                -- stream sequence of the login that trusted it
    device_ref text COLLATE "C" NOT NULL,      -- digest of the token's keyed hash
    created_at timestamptz NOT NULL,
    expires_at timestamptz NOT NULL,           -- valid while now() < expires_at
    channel    text,
    PRIMARY KEY (account_id, seq)
);

-- Devices enrolled for biometric login in the app.
CREATE TABLE biometric_devices (
    account_id  text COLLATE "C" NOT NULL,
    device_id   text COLLATE "C" NOT NULL,
    seq         bigint NOT NULL,
    enrolled_at timestamptz NOT NULL,
    expires_at  timestamptz NOT NULL,
    PRIMARY KEY (account_id, device_id)
);

-- The projector's position, written in the same transaction as the rows.
CREATE TABLE projector_checkpoint (
    projection    text PRIMARY KEY,
    last_seq      bigint NOT NULL,
    last_event_at timestamptz,
    updated_at    timestamptz NOT NULL DEFAULT now()
);
INSERT INTO projector_checkpoint (projection, last_seq) VALUES ('auth', 0);

-- +goose Down
DROP TABLE projector_checkpoint;
DROP TABLE biometric_devices;
DROP TABLE trusted_devices;
DROP TABLE login_attempts;
DROP TABLE accounts;
