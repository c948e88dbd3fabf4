-- One database round trip per HTTP mutation. Runs with search_path set to the meter's schema.
--
-- 0003 claimed an `Idempotency-Key` in its own transaction (`http_claim`, a round trip before
-- the ledger call) and deleted the claim again when the operation failed (a third one). Here
-- the claim runs in the ledger call's own statement:
--
--   SELECT CASE WHEN http_claim_in(key, fingerprint) THEN op_reserve(…) END
--
-- so the claim and the write commit together or not at all: a key used with another request is
-- a `conflict` raised before the operation runs (nothing written), and an operation that fails
-- rolls its claim back with it (the key stays free for the corrected request) — the rules of
-- docs/http.md, with no release step that could itself fail. `http_claim` stays for processes
-- of an older version still running during a deploy.

-- Claims `p_key` for `p_fingerprint` inside the caller's transaction and returns true, or raises
-- `conflict` when the key is bound to another fingerprint. A request with the same key that is
-- still in flight holds the row's insert lock: the INSERT waits for it to commit (then this is
-- a repeat, answered by the ledger's own idempotency) or roll back (then this claims the key).
-- Unlike `http_claim` it leaves `synchronous_commit` alone: the transaction is the ledger's.
CREATE FUNCTION http_claim_in(p_key text, p_fingerprint text) RETURNS boolean
LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
DECLARE
  fp text;
BEGIN
  INSERT INTO http_idempotency (key, fingerprint) VALUES (p_key, p_fingerprint) ON CONFLICT (key) DO NOTHING;
  IF FOUND THEN RETURN true; END IF;
  -- A new statement, so a new snapshot (READ COMMITTED): it sees the claim that stopped the insert.
  SELECT fingerprint INTO fp FROM http_idempotency WHERE key = p_key;
  IF NOT FOUND THEN
    -- Swept (older than the retention) between the two statements: claim it now.
    INSERT INTO http_idempotency (key, fingerprint) VALUES (p_key, p_fingerprint) ON CONFLICT (key) DO NOTHING;
    IF FOUND THEN RETURN true; END IF;
    SELECT fingerprint INTO fp FROM http_idempotency WHERE key = p_key;
  END IF;
  IF fp IS DISTINCT FROM p_fingerprint THEN
    PERFORM fail('conflict', format('Idempotency-Key %s was already used with a different request.', to_json(p_key)),
                 jsonb_build_object('idempotencyKey', p_key));
  END IF;
  RETURN true;
END $$;
