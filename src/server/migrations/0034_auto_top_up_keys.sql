-- Idempotency keys of the auto top-up settings changes (`meter.autoTopUp.set` / `disable`, and
-- `PUT /auto-top-up` with an `Idempotency-Key` header): the first request's body fingerprint
-- and its answer, per user, so a retry with the same key and body answers the same state
-- without applying the change a second time (a retried "turn on" must not clear a pause that
-- happened since), and the same key with another body is a conflict. Runs with search_path set
-- to the meter's schema.
CREATE TABLE auto_top_up_keys (
  user_id text NOT NULL,
  key text NOT NULL,
  fingerprint text NOT NULL,
  -- Null while the first request runs (or if it died mid-way: taken over after a minute).
  result jsonb,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, key)
);
CREATE INDEX auto_top_up_keys_created ON auto_top_up_keys (created_at);
