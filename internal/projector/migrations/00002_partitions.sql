-- Partitions of the events (AUTH_PARTITIONS, docs/scale.md): one checkpoint
-- per partition, and login attempts keyed by (partition, seq), since each
-- partition's stream numbers its events from 1. The existing rows are
-- partition 0, which is the whole stream of a one-partition deployment.

-- +goose Up
ALTER TABLE projector_checkpoint ADD COLUMN partition integer NOT NULL DEFAULT 0;
ALTER TABLE projector_checkpoint DROP CONSTRAINT projector_checkpoint_pkey;
ALTER TABLE projector_checkpoint ADD PRIMARY KEY (projection, partition);
ALTER TABLE login_attempts ADD COLUMN partition integer NOT NULL DEFAULT 0;
ALTER TABLE login_attempts DROP CONSTRAINT login_attempts_pkey;
ALTER TABLE login_attempts ADD PRIMARY KEY (partition, seq);

-- +goose Down
DELETE FROM login_attempts WHERE partition <> 0;
ALTER TABLE login_attempts DROP CONSTRAINT login_attempts_pkey;
ALTER TABLE login_attempts ADD PRIMARY KEY (seq);
ALTER TABLE login_attempts DROP COLUMN partition;
DELETE FROM projector_checkpoint WHERE partition <> 0;
ALTER TABLE projector_checkpoint DROP CONSTRAINT projector_checkpoint_pkey;
ALTER TABLE projector_checkpoint ADD PRIMARY KEY (projection);
ALTER TABLE projector_checkpoint DROP COLUMN partition;
