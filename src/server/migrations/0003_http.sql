-- Idempotency keys of the HTTP server routes (/v1). Runs with search_path set to the meter's
-- schema. A row claims a key for one request fingerprint (method, route, body): a retry with
-- the same fingerprint runs again and the ledger answers with the first result (its own
-- idempotency key for reserve / events / grants, "a hold resolves at most once" for commit and
-- release, an upsert for subscriptions); another fingerprint is a conflict and writes nothing.

CREATE TABLE http_idempotency (
  key text PRIMARY KEY,
  fingerprint text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX http_idempotency_created ON http_idempotency (created_at);

-- Claims `p_key` for `p_fingerprint`; returns 'claimed' (new), 'same' (seen with this
-- fingerprint) or 'conflict'. The second statement runs with a fresh snapshot, so a claim that
-- another transaction committed meanwhile is seen.
CREATE FUNCTION http_claim(p_key text, p_fingerprint text) RETURNS text
LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
DECLARE
  fp text;
BEGIN
  -- No WAL flush wait for the claim: the ledger write that follows flushes the WAL up to and
  -- including this record, so the claim is durable whenever the operation it guards is.
  PERFORM set_config('synchronous_commit', 'off', true);
  INSERT INTO http_idempotency (key, fingerprint) VALUES (p_key, p_fingerprint) ON CONFLICT (key) DO NOTHING;
  IF FOUND THEN RETURN 'claimed'; END IF;
  SELECT fingerprint INTO fp FROM http_idempotency WHERE key = p_key;
  IF NOT FOUND THEN
    -- Released by a failed first attempt between our insert and select: claim it now.
    INSERT INTO http_idempotency (key, fingerprint) VALUES (p_key, p_fingerprint) ON CONFLICT (key) DO NOTHING;
    RETURN CASE WHEN FOUND THEN 'claimed' ELSE 'conflict' END;
  END IF;
  RETURN CASE WHEN fp = p_fingerprint THEN 'same' ELSE 'conflict' END;
END $$;
