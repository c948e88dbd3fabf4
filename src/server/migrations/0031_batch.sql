-- The batched path (createMeter({ batch })): many ledger operations of one process in one SQL
-- call and one transaction. Each operation still runs through its own op_* function, so every
-- rule stays in one place; this file only adds the envelope.

-- The advisory lock keys a resolve of `p_id` needs: its hold's (user, counter), or every part's
-- of a multi-counter reservation. Read without a lock: a hold's user and counter never change.
-- Empty for an unknown id (the operation then fails with not_found and takes no lock).
-- A migration that moves holds elsewhere must re-define this function.
CREATE FUNCTION hold_lock_keys(p_id text) RETURNS SETOF bigint
LANGUAGE sql STABLE
SET search_path FROM CURRENT AS $$
  SELECT lock_key(user_id, counter_key) FROM holds WHERE id = p_id
  UNION
  SELECT lock_key(user_id, counter_key) FROM holds WHERE group_id = p_id
$$;

-- p_ops: [{ "fn": "op_reserve" | "op_reserve_multi" | "op_resolve" | "op_resolve_multi" | "op_track",
--           "args": [...] }], each `args` exactly the parameters the unbatched call passes.
-- Returns one element per operation, in order: { "ok": <the function's result> } or
-- { "error": { "code": SQLSTATE, "message", "detail", "hint" } } (the fields a driver error
-- carries, so the application maps both the same way).
--
-- 1. A user with no subscription gets the default plan's here, before any lock, as context()
--    would give it: context() inserts that row while its caller holds no lock, and a batch
--    that waited on another transaction's insert of it while holding its locks could deadlock
--    with that transaction (which waits for one of those locks). If every operation of that
--    user then fails, the row is deleted again (unbatched, their rollback would remove it).
-- 2. Every lock the batch needs is taken next, in ascending key order: the order
--    op_reserve_multi and op_resolve_multi use, so batches and single calls never deadlock.
-- 3. Each operation runs in arrival order inside its own BEGIN … EXCEPTION block (a
--    subtransaction): a failing one rolls back only itself, the others commit together.
--    Its own enter() then re-takes a lock the batch already holds (re-entrant, no wait).
CREATE FUNCTION op_batch(p_ops json) RETURNS json
LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
DECLARE
  k bigint;
  o json;
  a json;
  r json;
  results json[] := '{}';
  st text;
  msg text;
  det text;
  hin text;
  dp text;
  auto text[] := '{}';
  served text[] := '{}';
BEGIN
  SELECT value INTO dp FROM settings WHERE key = 'default_plan';
  IF dp IS NOT NULL THEN
    WITH ins AS (
      INSERT INTO subscriptions (user_id, plan_id, started_at)
      SELECT DISTINCT op -> 'args' ->> 0, dp, clock() FROM json_array_elements(p_ops) op
      WHERE op ->> 'fn' IN ('op_reserve', 'op_reserve_multi', 'op_track')
        AND NOT EXISTS (SELECT 1 FROM subscriptions s WHERE s.user_id = op -> 'args' ->> 0)
      ON CONFLICT (user_id) DO NOTHING
      RETURNING user_id
    )
    SELECT coalesce(array_agg(user_id), '{}') INTO auto FROM ins;
  END IF;

  PERFORM set_config('lock_timeout', coalesce(current_setting('meterkit.lock_timeout', true), '5s'), true);
  FOR k IN
    SELECT DISTINCT key FROM (
      SELECT lock_key(op -> 'args' ->> 0, op -> 'args' ->> 1) AS key
      FROM json_array_elements(p_ops) op WHERE op ->> 'fn' IN ('op_reserve', 'op_track')
      UNION ALL
      SELECT lock_key(op -> 'args' ->> 0, part ->> 'counter')
      FROM json_array_elements(p_ops) op, json_array_elements((op -> 'args' ->> 1)::json) part
      WHERE op ->> 'fn' = 'op_reserve_multi'
      UNION ALL
      SELECT hk FROM json_array_elements(p_ops) op, hold_lock_keys(op -> 'args' ->> 0) hk
      WHERE op ->> 'fn' IN ('op_resolve', 'op_resolve_multi')
    ) keys
    ORDER BY key
  LOOP
    PERFORM pg_advisory_xact_lock(k);
  END LOOP;

  FOR o IN SELECT value FROM json_array_elements(p_ops) LOOP
    a := o -> 'args';
    BEGIN
      r := CASE o ->> 'fn'
        WHEN 'op_reserve' THEN op_reserve(a ->> 0, a ->> 1, a ->> 2, (a ->> 3)::bigint, (a ->> 4)::bigint, a ->> 5, a ->> 6,
                                          a ->> 7, a ->> 8, (a ->> 9)::jsonb, (a ->> 10)::jsonb)::json
        WHEN 'op_reserve_multi' THEN op_reserve_multi(a ->> 0, (a ->> 1)::jsonb, (a ->> 2)::bigint, a ->> 3, a ->> 4,
                                                      a ->> 5, a ->> 6, (a ->> 7)::jsonb)::json
        WHEN 'op_resolve' THEN op_resolve(a ->> 0, (a ->> 1)::boolean, (a ->> 2)::bigint, (a ->> 3)::jsonb)::json
        WHEN 'op_resolve_multi' THEN op_resolve_multi(a ->> 0, (a ->> 1)::boolean, (a ->> 2)::jsonb, (a ->> 3)::jsonb)::json
        WHEN 'op_track' THEN op_track(a ->> 0, a ->> 1, a ->> 2, (a ->> 3)::bigint, (a ->> 4)::numeric, a ->> 5, a ->> 6,
                                      a ->> 7, a ->> 8, (a ->> 9)::jsonb)::json
      END;
      IF r IS NULL AND (o ->> 'fn') NOT IN ('op_reserve', 'op_reserve_multi', 'op_resolve', 'op_resolve_multi', 'op_track') THEN
        PERFORM fail('internal', format('op_batch cannot run %s.', o ->> 'fn'));
      END IF;
      results := results || json_build_object('ok', r);
      IF (o ->> 'fn') IN ('op_reserve', 'op_reserve_multi', 'op_track') THEN served := served || (a ->> 0); END IF;
    EXCEPTION WHEN OTHERS THEN
      GET STACKED DIAGNOSTICS st = RETURNED_SQLSTATE, msg = MESSAGE_TEXT, det = PG_EXCEPTION_DETAIL, hin = PG_EXCEPTION_HINT;
      results := results || json_build_object('error', json_build_object('code', st, 'message', msg,
        'detail', nullif(det, ''), 'hint', nullif(hin, '')));
    END;
  END LOOP;
  IF auto <> '{}' THEN
    DELETE FROM subscriptions WHERE user_id = ANY (auto) AND NOT user_id = ANY (served);
  END IF;
  RETURN array_to_json(results);
END $$;
