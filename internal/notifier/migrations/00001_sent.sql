-- +goose Up
-- One row per event the notifier mailed, or decided not to. The event id is
-- the key: an event is mailed at most once however often it is delivered.
-- No address and no code is ever stored here.
CREATE TABLE notifier.sent (
    event_id      text PRIMARY KEY,
    account_id    text        NOT NULL,
    kind          text        NOT NULL,
    -- sending: claimed, SMTP in progress (or the process died during it);
    -- sent: the SMTP server accepted the mail; expired: not sent, the code
    -- or notice was out of date; failed: handed to the dead-letter stream.
    status        text        NOT NULL CHECK (status IN ('sending', 'sent', 'expired', 'failed')),
    attempts      integer     NOT NULL DEFAULT 0,
    claimed_by    text,
    claimed_until timestamptz,
    sent_at       timestamptz,
    message_id    text,
    last_error    text,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now()
);

-- Support: "which mails did this account get?"
CREATE INDEX sent_account_idx ON notifier.sent (account_id, created_at);

-- +goose Down
DROP TABLE notifier.sent;
