-- Keyed HTTP mutations ride the batches too (issue 16). A /v1 mutation with an Idempotency-Key
-- claims the key in the statement that writes (0033: `SELECT CASE WHEN http_claim_in(key, fp)
-- THEN op_…(…) END`), and such calls never batched: on a meter with `batch: true`, every
-- reservation from meterkit/client (which sends a key on each) went out alone.
-- Now an operation of op_batch may carry `"claim": [key, fingerprint]`. It never takes the set
-- path; it runs through its function right after its claim, in the batch's subtransaction and,
-- when any operation of the batch raised, again in a subtransaction of its own (0031), so a
-- claim that conflicts, or an operation that fails, rolls back with its own claim only: the key
-- stays free for the corrected request, and the batch's other operations answer as before.
-- Same rules as a lone claimed call (docs/http.md), with one difference of order: a batch takes
-- its locks first, then claims; a lone call claims, then locks. A claim waits only while another
-- transaction has claimed the same key and not yet ended (a request with that key still in
-- flight: its row's insert lock); a batch waits for it holding its own locks. Two transactions
-- that each claimed a key the other claims next (requests reusing each other's keys at the same
-- moment) deadlock until Postgres's detector ends one: a lone call answers `unavailable` (safe
-- to retry); a batch's first run rolls back and the batch reruns one operation per
-- subtransaction, where a second deadlock fails that operation alone.
-- Runs with search_path set to the meter's schema, like 0001.

-- op_batch as 0040's, with the claims: read once when the batch is unpacked, kept off the set
-- path, made right before their operation.
CREATE OR REPLACE FUNCTION op_batch(p_ops jsonb) RETURNS text
LANGUAGE plpgsql
SET search_path FROM CURRENT
SET plan_cache_mode = force_generic_plan
SET enable_seqscan = off
SET enable_hashjoin = off
SET enable_mergejoin = off AS $$
DECLARE
  n int := jsonb_array_length(p_ops);
  now_ timestamptz := clock();
  fns text[];
  args jsonb[];
  -- Per operation, the HTTP Idempotency-Key it claims and the request's fingerprint ([key, fp]), or null.
  claims jsonb[];
  users text[] := '{}';
  keys bigint[] := '{}';
  opkey bigint[];
  ks bigint[];
  r jsonb;
  i int;
  dp text;
  auto text[] := '{}';
  served text[] := '{}';
  results text[];
  failed boolean := false;
  many boolean;
  resolves int[] := '{}';
  -- Per operation, the user its routed reservation id names (a resolve's; null otherwise).
  rusers text[];
  found_j int[];
  found_k bigint[];
  plain_r int[];
  plain_c int[];
  done_i int[];
  done_r text[];
  st text;
  msg text;
  det text;
  hin text;
  con text;
BEGIN
  -- Unpacked once, in one statement: each operation's function and arguments, the users to
  -- subscribe, the lock keys, the key of each operation that needs exactly one (a reserve or
  -- track; a resolve's comes with its hold below), the user each resolve's routed id names
  -- (read once here, not in every statement below), and whether the batch holds several users
  -- (a routed reservation id names its user; an unrouted one counts for none).
  SELECT array_agg(e ->> 'fn' ORDER BY o), array_agg(e -> 'args' ORDER BY o),
         coalesce(array_agg(u.u ORDER BY o) FILTER (WHERE u.u IS NOT NULL), '{}'),
         array_agg(CASE WHEN e ->> 'fn' IN ('op_reserve', 'op_track')
                        THEN batch_lock_key(e -> 'args' ->> 0, e -> 'args' ->> 1)
                   END ORDER BY o),
         coalesce(array_agg(o::int ORDER BY o) FILTER (WHERE e ->> 'fn' IN ('op_resolve', 'op_resolve_multi')), '{}'),
         array_agg(u.r ORDER BY o),
         coalesce(min(coalesce(u.r, u.u) COLLATE "C") <> max(coalesce(u.r, u.u) COLLATE "C"), false),
         array_agg(e -> 'claim' ORDER BY o)
    INTO fns, args, users, opkey, resolves, rusers, many, claims
  FROM jsonb_array_elements(p_ops) WITH ORDINALITY AS t(e, o)
  -- r: a resolve's user, by its routed id; u: a reserve's or track's (its first argument).
  CROSS JOIN LATERAL (SELECT CASE WHEN e ->> 'fn' IN ('op_resolve', 'op_resolve_multi') THEN reservation_user(e -> 'args' ->> 0) END AS r,
                             CASE WHEN e ->> 'fn' IN ('op_reserve', 'op_track', 'op_reserve_multi') THEN e -> 'args' ->> 0 END AS u) u;
  keys := ARRAY(SELECT key FROM unnest(opkey) key WHERE key IS NOT NULL);
  -- A multi-counter reservation locks each of its counters.
  IF 'op_reserve_multi' = ANY (fns) THEN
    keys := keys || ARRAY(SELECT batch_lock_key(args[j] ->> 0, part ->> 'counter')
                          FROM generate_series(1, n) j, jsonb_array_elements((args[j] ->> 1)::jsonb) part
                          WHERE fns[j] = 'op_reserve_multi');
  END IF;
  IF many THEN
    -- One read for the keys of every hold found by its routed id (as hold_lock_keys finds it
    -- first); the rest (parts, groups, ids without a user, unknown ids) as 0035 reads them.
    SELECT coalesce(array_agg(j), '{}'), coalesce(array_agg(key), '{}') INTO found_j, found_k
    FROM unnest(resolves) j
    CROSS JOIN LATERAL (SELECT batch_lock_key(h.user_id, h.counter_key) AS key
                        FROM holds h WHERE h.id = args[j] ->> 0 AND h.user_id = rusers[j] LIMIT 1) f;
    keys := keys || found_k;
    FOR i IN 1 .. cardinality(found_j) LOOP
      IF fns[found_j[i]] = 'op_resolve' THEN
        opkey[found_j[i]] := found_k[i];
      END IF;
    END LOOP;
    resolves := ARRAY(SELECT j FROM unnest(resolves) j WHERE NOT j = ANY (found_j));
  END IF;
  FOREACH i IN ARRAY resolves LOOP
    ks := ARRAY(SELECT hold_lock_keys(args[i] ->> 0));
    keys := keys || ks;
    IF fns[i] = 'op_resolve' AND cardinality(ks) = 1 THEN
      opkey[i] := ks[1];
    END IF;
  END LOOP;

  -- 1. (as 0035)
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

  -- 2. (as 0035) Every lock, in ascending key order, in one statement.
  PERFORM set_config('lock_timeout', coalesce(current_setting('meterkit.lock_timeout', true), '5s'), true);
  PERFORM pg_advisory_xact_lock(key) FROM (SELECT DISTINCT key FROM unnest(keys) key ORDER BY key) s;

  -- Which operations take the set path (see the top of this file).
  IF many THEN
    SELECT coalesce(array_agg(j ORDER BY j) FILTER (WHERE fns[j] = 'op_reserve' AND args[j] ->> 5 IS NULL), '{}'),
           coalesce(array_agg(j ORDER BY j) FILTER (WHERE fns[j] = 'op_resolve' AND args[j] ->> 3 IS NULL
                                                    AND rusers[j] IS NOT NULL), '{}')
      INTO plain_r, plain_c
    FROM generate_series(1, n) j
    WHERE opkey[j] = ANY (ARRAY(SELECT key FROM unnest(keys) key GROUP BY key HAVING count(*) = 1))
      AND claims[j] IS NULL;
  END IF;

  -- 3. Optimistic: one subtransaction for the whole batch; the plain operations first, as sets.
  BEGIN
    IF cardinality(plain_r) > 0 THEN
      WITH x AS MATERIALIZED (
        SELECT j, args[j] ->> 0 AS u, args[j] ->> 1 AS ck, args[j] ->> 2 AS mk, (args[j] ->> 3)::bigint AS amt,
               now_ + (args[j] ->> 4)::bigint * interval '1 millisecond' AS exp, args[j] ->> 7 AS hid,
               args[j] ->> 8 AS model, (args[j] ->> 9)::jsonb AS tp, (args[j] ->> 10)::jsonb AS md
        FROM unnest(plain_r) j
      ), s AS MATERIALIZED (
        -- Per operation: op_reserve's steps 1 and 3, available(c, exp) with no hold past its expiry.
        -- A period without its balance row yet counts as used 0 (op_reserve's step 4); `ib` makes it.
        SELECT x.*, st.quota, st.held, st.period_start AS ps, st.period_end AS pe, st.used IS NULL AS first,
               CASE WHEN st.quota IS NULL THEN NULL
                    ELSE greatest(0, st.quota - (coalesce(st.used, 0) - coalesce(st.used_from_grants, 0))) + st.grants_left - st.held END AS avail
        FROM x
        CROSS JOIN LATERAL batch_counter_state(x.u, x.ck, now_, x.exp) st
        WHERE x.amt > 0 AND NOT st.stale
      ), ok AS (
        SELECT s.*, jsonb_build_object('allowed', true, 'reservationId', s.hid, 'remaining', s.avail - s.amt,
                      'expiresAt', to_char(s.exp AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
                      'amount', s.amt, 'counter', s.ck) AS res
        FROM s
        WHERE s.avail >= s.amt OR s.quota IS NULL AND s.held + s.amt <= 9007199254740991
      ), ib AS (
        -- Before its check, as op_reserve does (a denial, left to op_reserve, then finds the row).
        INSERT INTO balances (user_id, counter_key, period_start, period_end)
        SELECT u, ck, ps, pe FROM s WHERE first ORDER BY j
        ON CONFLICT DO NOTHING
      ), ih AS (
        INSERT INTO holds (id, user_id, counter_key, meter_key, amount, status, expires_at, model, token_prices, metadata)
        SELECT hid, u, ck, mk, amt, 'open', exp, model, tp, md FROM ok ORDER BY j
      ), ie AS (
        INSERT INTO entries (user_id, counter_key, kind, amount, hold_id, meter_key, model, metadata)
        SELECT u, ck, 'reserve', amt, hid, mk, model, md FROM ok ORDER BY j
      )
      SELECT coalesce(array_agg(j), '{}'), coalesce(array_agg(res::text), '{}') INTO done_i, done_r FROM ok;
      FOR i IN 1 .. cardinality(done_i) LOOP
        results[done_i[i]] := '{"ok":' || done_r[i] || '}';
      END LOOP;
    END IF;
    IF cardinality(plain_c) > 0 THEN
      WITH x AS MATERIALIZED (
        SELECT j, args[j] ->> 0 AS hid, (args[j] ->> 1)::boolean AS rel, (args[j] ->> 2)::bigint AS actual,
               rusers[j] AS u
        FROM unnest(plain_c) j
      ), s AS MATERIALIZED (
        -- Per operation: the hold, then op_resolve's steps 1 and 3, available(c) with no hold past
        -- its expiry.
        SELECT x.j, x.rel, x.actual, h.id, x.u, h.ck, h.mk, h.amount, h.model, st.quota, st.period_start AS ps, h.charge,
               st.used, st.used_from_grants AS ufg, st.held, st.grants_left AS gl
        FROM x
        CROSS JOIN LATERAL (
          -- By its key alone (the other conditions outside: inside, they matched holds_open's
          -- predicate, and a plan made on an empty table walked that index instead).
          SELECT hh.id, hh.counter_key AS ck, hh.meter_key AS mk, hh.amount, hh.model, hh.status, hh.group_id,
                 hh.expires_at, hh.token_prices,
                 CASE WHEN x.rel THEN 0 WHEN x.actual IS NULL THEN hh.amount ELSE x.actual END AS charge
          FROM holds hh
          WHERE hh.id = x.hid AND hh.user_id = x.u
          LIMIT 1) h
        CROSS JOIN LATERAL batch_counter_state(x.u, h.ck, now_, now_) st
        WHERE h.status = 'open' AND h.group_id IS NULL AND h.expires_at > now_ AND h.token_prices IS NULL
          AND st.used IS NOT NULL AND NOT st.stale AND h.charge >= 0
      ), ok AS (
        -- The allowance covers the charge (or nothing to draw from): one UPDATE, no draw().
        SELECT s.*,
               CASE WHEN s.quota IS NULL THEN NULL
                    ELSE greatest(greatest(0, s.quota - (s.used + s.charge - s.ufg)) + s.gl - s.held + s.amount, 0) END AS remaining
        FROM s
        WHERE s.used::numeric + s.charge <= 9007199254740991
          AND (s.charge = 0 OR s.quota IS NULL OR s.charge <= greatest(0, s.quota - (s.used - s.ufg)) OR s.gl = 0)
      ), r AS (
        SELECT ok.*,
               CASE WHEN ok.rel
                    THEN jsonb_build_object('reservationId', ok.id, 'userId', ok.u, 'status', 'released', 'released', ok.amount,
                                            'remaining', ok.remaining)
                    ELSE jsonb_build_object('reservationId', ok.id, 'userId', ok.u, 'status', 'committed', 'held', ok.amount,
                                            'committed', ok.charge, 'refunded', greatest(ok.amount - ok.charge, 0),
                                            'overage', greatest(ok.charge - ok.amount, 0), 'remaining', ok.remaining) END AS res
        FROM ok
      ), uh AS (
        UPDATE holds SET status = CASE WHEN r.rel THEN 'released' ELSE 'committed' END, resolved_at = now_,
          request = CASE WHEN r.rel THEN holds.request ELSE jsonb_build_object('actual', r.actual, 'usage', NULL::jsonb) END,
          result = r.res
        FROM r WHERE holds.id = r.id AND holds.user_id = r.u
      ), ub AS (
        UPDATE balances SET used = balances.used + r.charge
        FROM r WHERE r.charge > 0 AND balances.user_id = r.u AND balances.counter_key = r.ck AND balances.period_start = r.ps
      ), ic AS (
        INSERT INTO entries (user_id, counter_key, kind, amount, period_start, from_grants, hold_id, meter_key, model, metadata)
        SELECT u, ck, 'commit', charge, ps, '[]'::jsonb, id, mk, model,
               jsonb_build_object('held', amount, 'refunded', greatest(amount - charge, 0), 'overage', greatest(charge - amount, 0))
        FROM r WHERE NOT rel ORDER BY j
      ), ir AS (
        INSERT INTO entries (user_id, counter_key, kind, amount, hold_id, meter_key, model)
        SELECT u, ck, 'release', amount, id, mk, model FROM r WHERE rel ORDER BY j
      )
      SELECT coalesce(array_agg(j), '{}'), coalesce(array_agg(res::text), '{}') INTO done_i, done_r FROM r;
      FOR i IN 1 .. cardinality(done_i) LOOP
        results[done_i[i]] := '{"ok":' || done_r[i] || '}';
      END LOOP;
    END IF;
    -- The others, in arrival order, through their functions (0035), each after its claim.
    FOR i IN 1 .. n LOOP
      CONTINUE WHEN results[i] IS NOT NULL;
      IF claims[i] IS NOT NULL THEN
        PERFORM http_claim_in(claims[i] ->> 0, claims[i] ->> 1);
      END IF;
      results[i] := '{"ok":' || coalesce(batch_call(fns[i], args[i])::text, 'null') || '}';
    END LOOP;
  EXCEPTION WHEN OTHERS THEN
    failed := true;
  END;
  IF NOT failed THEN
    RETURN '[' || array_to_string(results, ',') || ']';
  END IF;

  -- One of them raised: again, each operation in its own subtransaction (as 0031). The rolled
  -- back subtransaction undid the set path's writes, not its answers: forget them.
  results := '{}';
  FOR i IN 1 .. n LOOP
    BEGIN
      -- Its claim in its own subtransaction too: a claim that conflicts, or an operation that
      -- fails, leaves the key as it was (docs/http.md).
      IF claims[i] IS NOT NULL THEN
        PERFORM http_claim_in(claims[i] ->> 0, claims[i] ->> 1);
      END IF;
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
