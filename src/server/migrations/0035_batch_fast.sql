-- The batched path, cheaper per operation (issue 16). Same envelope and answers as 0031: the
-- default plan's subscriptions first, every lock in ascending key order, then each operation in
-- arrival order through the same op_* function as unbatched, one answer per operation. What
-- changes (docs/benchmarks.md, "Batched path", has the figures):
--   * the batch arrives as jsonb, parsed once (a json value is re-parsed by every -> and ->>:
--     0031 parsed each operation's arguments once per argument);
--   * the operations run optimistically in ONE subtransaction. Only if one of them raises is
--     that subtransaction rolled back and the batch run again with one subtransaction per
--     operation (0031's way), so a failing operation still rolls back only itself. A batch
--     without a failure (the usual case) no longer pays a subtransaction per operation, nor
--     one subtransaction id per writing operation (past 64 in one transaction, every other
--     session's snapshots must look them up in pg_subtrans);
--   * the lock keys are computed in one pass, and a routed reservation id (0030) finds its
--     hold by (user, id), so on tables partitioned by user every statement of a batch of one
--     user reads one partition (test/server/partitionPruning.test.ts);
--   * the answer is JSON text built from each result's own text (no json value re-checked).
-- Runs with search_path set to the meter's schema, like 0001.

-- The advisory lock keys a resolve of `p_id` needs (as 0031): its hold's (user, counter), or
-- every part's of a multi-counter reservation, read without a lock (a hold's user and counter
-- never change). A routed id is looked up by its user first; ids without a user (issued before
-- 0.3), a part id named on its own and unknown ids by id alone, as op_resolve finds them.
-- Empty for an unknown id (the operation then fails with not_found and takes no lock).
-- A migration that moves holds elsewhere must re-define this function.
CREATE OR REPLACE FUNCTION hold_lock_keys(p_id text) RETURNS SETOF bigint
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT AS $$
DECLARE
  u text := reservation_user(p_id);
BEGIN
  -- lock_key() of 0001, inline (a call per row costs more than the hash).
  -- Two statements, as op_resolve reads them: an OR of the two would not use either index.
  IF u IS NOT NULL THEN
    RETURN QUERY
      SELECT ('x' || left(md5(current_schema() || chr(31) || h.user_id || chr(31) || h.counter_key), 16))::bit(64)::bigint
      FROM holds h WHERE h.id = p_id AND h.user_id = u;
    IF FOUND THEN
      RETURN;
    END IF;
    RETURN QUERY
      SELECT ('x' || left(md5(current_schema() || chr(31) || h.user_id || chr(31) || h.counter_key), 16))::bit(64)::bigint
      FROM holds h WHERE h.group_id = p_id AND h.user_id = u;
    IF FOUND THEN
      RETURN;
    END IF;
  END IF;
  RETURN QUERY
    SELECT ('x' || left(md5(current_schema() || chr(31) || h.user_id || chr(31) || h.counter_key), 16))::bit(64)::bigint
    FROM holds h WHERE h.id = p_id
    UNION
    SELECT ('x' || left(md5(current_schema() || chr(31) || h.user_id || chr(31) || h.counter_key), 16))::bit(64)::bigint
    FROM holds h WHERE h.group_id = p_id;
END $$;

-- One operation of a batch: the same function, with the same arguments, as the unbatched call
-- (each `a` exactly the parameters that call passes). One place for the dispatch, used by both
-- runs of op_batch below.
CREATE FUNCTION batch_call(p_fn text, a jsonb) RETURNS jsonb
LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
  CASE p_fn
    WHEN 'op_reserve' THEN
      RETURN op_reserve(a ->> 0, a ->> 1, a ->> 2, (a ->> 3)::bigint, (a ->> 4)::bigint, a ->> 5, a ->> 6,
                        a ->> 7, a ->> 8, (a ->> 9)::jsonb, (a ->> 10)::jsonb);
    WHEN 'op_resolve' THEN
      RETURN op_resolve(a ->> 0, (a ->> 1)::boolean, (a ->> 2)::bigint, (a ->> 3)::jsonb);
    WHEN 'op_track' THEN
      RETURN op_track(a ->> 0, a ->> 1, a ->> 2, (a ->> 3)::bigint, (a ->> 4)::numeric, a ->> 5, a ->> 6,
                      a ->> 7, a ->> 8, (a ->> 9)::jsonb);
    WHEN 'op_reserve_multi' THEN
      RETURN op_reserve_multi(a ->> 0, (a ->> 1)::jsonb, (a ->> 2)::bigint, a ->> 3, a ->> 4, a ->> 5, a ->> 6, (a ->> 7)::jsonb);
    WHEN 'op_resolve_multi' THEN
      RETURN op_resolve_multi(a ->> 0, (a ->> 1)::boolean, (a ->> 2)::jsonb, (a ->> 3)::jsonb);
    ELSE
      PERFORM fail('internal', format('op_batch cannot run %s.', p_fn));
  END CASE;
  RETURN NULL;
END $$;

-- p_ops: [{ "fn": "op_reserve" | "op_reserve_multi" | "op_resolve" | "op_resolve_multi" | "op_track",
--           "args": [...] }] (as 0031). Returns, as JSON text, one element per operation, in
-- order: { "ok": <the function's result> } or { "error": { "code": SQLSTATE, "message",
-- "detail", "hint" } } (the fields a driver error carries, so the application maps both alike).
--
-- 1. A user with no subscription gets the default plan's here, before any lock, as context()
--    would give it (0031 says why: a batch holding locks must never wait on another
--    transaction's insert of that row). Inserted in user order, so two batches meeting the
--    same new users wait for each other in one direction only. If every operation of such a
--    user then fails, the row is deleted again (unbatched, their rollback would remove it).
-- 2. Every lock the batch needs, in ascending key order: the order op_reserve_multi and
--    op_resolve_multi use, so batches and single calls never deadlock.
-- 3. The operations in arrival order, all in one subtransaction. If one raises, that
--    subtransaction is rolled back (the locks, taken before it, stay) and the batch runs again
--    from its first operation with one subtransaction per operation: the failing one rolls back
--    only itself and answers its error, the others commit. Both runs see the same state (the
--    same transaction, locks held throughout, the same clock), so each answer is the one the
--    operation gives unbatched in that order; a failure costs its batch one more run.
CREATE FUNCTION op_batch(p_ops jsonb) RETURNS text
LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
DECLARE
  n int := jsonb_array_length(p_ops);
  fns text[];
  args jsonb[];
  users text[] := '{}';
  keys bigint[] := '{}';
  k bigint;
  a jsonb;
  r jsonb;
  i int;
  dp text;
  auto text[] := '{}';
  served text[] := '{}';
  results text[];
  failed boolean := false;
  st text;
  msg text;
  det text;
  hin text;
  con text;
BEGIN
  -- Unpacked once: each operation's function, arguments, user to subscribe and lock keys.
  FOR i IN 1 .. n LOOP
    fns[i] := p_ops -> (i - 1) ->> 'fn';
    a := p_ops -> (i - 1) -> 'args';
    args[i] := a;
    CASE fns[i]
      WHEN 'op_reserve', 'op_track' THEN
        users := users || (a ->> 0);
        keys := keys || ('x' || left(md5(current_schema() || chr(31) || (a ->> 0) || chr(31) || (a ->> 1)), 16))::bit(64)::bigint;
      WHEN 'op_reserve_multi' THEN
        users := users || (a ->> 0);
        keys := keys || ARRAY(SELECT ('x' || left(md5(current_schema() || chr(31) || (a ->> 0) || chr(31) || (part ->> 'counter')), 16))::bit(64)::bigint
                              FROM jsonb_array_elements((a ->> 1)::jsonb) part);
      WHEN 'op_resolve', 'op_resolve_multi' THEN
        keys := keys || ARRAY(SELECT hold_lock_keys(a ->> 0));
      ELSE
        NULL; -- batch_call answers it with an error
    END CASE;
  END LOOP;

  -- 1.
  IF users <> '{}' THEN
    SELECT value INTO dp FROM settings WHERE key = 'default_plan';
    IF dp IS NOT NULL THEN
      WITH ins AS (
        INSERT INTO subscriptions (user_id, plan_id, started_at)
        SELECT u, dp, clock() FROM (SELECT DISTINCT u FROM unnest(users) u) x ORDER BY u
        ON CONFLICT (user_id) DO NOTHING
        RETURNING user_id
      )
      SELECT coalesce(array_agg(user_id), '{}') INTO auto FROM ins;
    END IF;
  END IF;

  -- 2.
  PERFORM set_config('lock_timeout', coalesce(current_setting('meterkit.lock_timeout', true), '5s'), true);
  FOR k IN SELECT DISTINCT key FROM unnest(keys) key ORDER BY key LOOP
    PERFORM pg_advisory_xact_lock(k);
  END LOOP;

  -- 3. Optimistic: one subtransaction for the whole batch.
  BEGIN
    FOR i IN 1 .. n LOOP
      results[i] := '{"ok":' || coalesce(batch_call(fns[i], args[i])::text, 'null') || '}';
    END LOOP;
  EXCEPTION WHEN OTHERS THEN
    failed := true;
  END;
  IF NOT failed THEN
    RETURN '[' || array_to_string(results, ',') || ']';
  END IF;

  -- One of them raised: again, each operation in its own subtransaction (as 0031).
  FOR i IN 1 .. n LOOP
    BEGIN
      r := batch_call(fns[i], args[i]);
      results[i] := '{"ok":' || coalesce(r::text, 'null') || '}';
      IF fns[i] IN ('op_reserve', 'op_reserve_multi', 'op_track') THEN
        served := served || (args[i] ->> 0);
      END IF;
    EXCEPTION WHEN OTHERS THEN
      GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL, hin = PG_EXCEPTION_HINT,
        con = CONSTRAINT_NAME;
      -- The constraint too, as a driver error carries it: a unique violation of the idempotency
      -- key (two batches, one key, two counters) answers `conflict` as it does unbatched.
      results[i] := jsonb_build_object('error', jsonb_build_object('code', st, 'message', msg,
        'detail', nullif(det, ''), 'hint', nullif(hin, ''), 'constraint', nullif(con, '')))::text;
    END;
  END LOOP;
  IF auto <> '{}' THEN
    DELETE FROM subscriptions WHERE user_id = ANY (auto) AND NOT user_id = ANY (served);
  END IF;
  RETURN '[' || array_to_string(results, ',') || ']';
END $$;
