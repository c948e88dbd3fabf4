-- The fast ledger (issue 16): reserve, commit, release and track each run in one PL/pgSQL frame
-- with a short fast path, instead of ~15 nested calls each saving and restoring search_path.
-- Same tables, same entries, same results, same rules as the newest definitions they replace
-- (0004 and 0020): the slow, rare paths (a new user on the default plan, grants to draw from,
-- priced commits, refunds, denials) still call the helpers of 0001–0020 that carry them.
-- Runs with search_path set to the meter's schema, like 0001.

-- ---------------------------------------------------------------------------------------
-- Functions keep the meter's schema through `SET search_path FROM CURRENT`. pg_temp goes last
-- explicitly: left out, it is searched FIRST for tables, so a caller's temporary table named
-- `holds` would shadow ours. Every operation now has one such frame instead of ~15.
-- migrate() sets it so from 0030 on; the functions of 0001–0020 get it here.
DO $$
DECLARE
  f regprocedure;
BEGIN
  EXECUTE format('SET LOCAL search_path TO %I, pg_catalog, pg_temp', current_schema());
  FOR f IN SELECT p.oid FROM pg_catalog.pg_proc p
           WHERE p.pronamespace = current_schema()::regnamespace
             AND EXISTS (SELECT 1 FROM unnest(p.proconfig) s WHERE s LIKE 'search\_path=%') LOOP
    EXECUTE format('ALTER FUNCTION %s SET search_path = %I, pg_catalog, pg_temp', f, current_schema());
  END LOOP;
END $$;

-- ---------------------------------------------------------------------------------------
-- Tables

-- CHECK constraints are re-read from their stored text and planned on every INSERT/UPDATE
-- (executor start-up); a domain's constraints are cached. Same rules, cheaper. Each column
-- first becomes an unconstrained domain (no table rewrite), then the domain gets the rule
-- (one validating scan), then the table constraint goes.
CREATE DOMAIN hold_status AS text;
CREATE DOMAIN hold_amount AS bigint;
CREATE DOMAIN usage_part AS text;
CREATE DOMAIN entry_kind AS text;
ALTER TABLE holds ALTER COLUMN status TYPE hold_status, ALTER COLUMN amount TYPE hold_amount,
  ALTER COLUMN usage_part TYPE usage_part;
ALTER TABLE entries ALTER COLUMN kind TYPE entry_kind;
ALTER DOMAIN hold_status ADD CONSTRAINT hold_status_check CHECK (VALUE IN ('open', 'committed', 'released', 'expired'));
ALTER DOMAIN hold_amount ADD CONSTRAINT hold_amount_check CHECK (VALUE > 0);
ALTER DOMAIN usage_part ADD CONSTRAINT usage_part_check CHECK (VALUE IN ('input', 'output'));
ALTER DOMAIN entry_kind ADD CONSTRAINT entry_kind_check
  CHECK (VALUE IN ('reserve', 'commit', 'release', 'expire', 'track', 'refund', 'grant', 'adjust', 'clawback', 'debt', 'settle'));
ALTER TABLE holds DROP CONSTRAINT holds_status_check, DROP CONSTRAINT holds_amount_check,
  DROP CONSTRAINT holds_usage_part_check;
ALTER TABLE entries DROP CONSTRAINT entries_kind_check;

-- entries_taken (0004: kind IN ('clawback', 'settle')) answers every query entries_clawback did;
-- each entry insert no longer evaluates its predicate.
DROP INDEX entries_clawback;

-- ---------------------------------------------------------------------------------------
-- Reservation ids route to their user

-- A reservation id is opaque to users. Ids issued from 0.3 on are
-- `rsv_` + 12 hex digits of time (ms) + 16 random hex digits + `_` + the user id, so that the
-- ledger finds a hold by (user, id): every statement of a commit or release then names the
-- user, which is what lets the tables be partitioned (or distributed) by user. The time prefix
-- keeps inserts into holds_pkey on its right-most pages (fewer full-page images than random
-- ids). Ids of older releases (`rsv_` + 32 hex digits), and ids of users too long to fit in
-- 255 characters, carry no user: they are found by one read on the id alone. Returns the user
-- of a routed id, else NULL. A plain SQL function, so it is inlined where it is called.
CREATE FUNCTION reservation_user(p_id text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$
  SELECT CASE WHEN p_id OPERATOR(pg_catalog.~) '^rsv_[0-9a-f]{28}_.' THEN pg_catalog.substr(p_id, 34) END
$$;

-- ---------------------------------------------------------------------------------------
-- The operations. Each follows the same steps as before, in one frame:
--   1. the context (subscription + limit group, one read; the period on the database clock);
--   2. the (user, counter) lock, with its lock_timeout, as one expression (no query);
--   3. one read of everything the check needs under the lock: the balance row, the grants
--      still valid, the open holds (held, count, any past expiry);
--   4. expiry entries for holds that ran out and the balance row, only when needed;
--   5. idempotency replay, the check, the writes, the result.

CREATE OR REPLACE FUNCTION op_reserve(p_user text, p_counter text, p_meter text, p_amount bigint, p_ttl_ms bigint,
                           p_key text, p_fingerprint text, p_hold_id text, p_model text,
                           p_token_prices jsonb, p_metadata jsonb) RETURNS jsonb
LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
DECLARE
  now_ timestamptz := clock();
  exp timestamptz := now_ + p_ttl_ms * interval '1 millisecond';
  c ctx;
  started timestamptz;
  custom jsonb;
  g_key text;
  g_quota bigint;
  g_period text;
  g_anchor text;
  locked text;
  b_used bigint;
  b_ufg bigint;
  grants_left bigint;
  held bigint;
  n_open bigint;
  stale boolean;
  prior idempotency;
  amt bigint;
  avail bigint;
  res jsonb;
BEGIN
  -- 1. Context (as context() of 0020; a user without a subscription takes the full path).
  SELECT sub.plan_id, sub.started_at, sub.custom_limits, lg.key, lg.unit, lg.quota, lg.period, lg.anchor, lg.overage, lg.kind
    INTO c.plan_id, started, custom, g_key, c.unit, g_quota, g_period, g_anchor, c.overage, c.kind
  FROM subscriptions sub
  LEFT JOIN limit_groups lg ON lg.plan_id = sub.plan_id AND lg.key = p_counter
  WHERE sub.user_id = p_user;
  IF g_key IS NULL THEN
    c := context(p_user, p_counter);
  ELSE
    c.user_id := p_user;
    c.counter_key := p_counter;
    c.quota := CASE WHEN custom -> p_counter ? 'quota' THEN (custom -> p_counter ->> 'quota')::bigint ELSE g_quota END;
    IF g_period = 'none' THEN
      c.period_start := '-infinity'; c.period_end := 'infinity';
    ELSIF g_anchor = 'calendar' THEN
      c.period_start := date_trunc(g_period, now_ AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
      c.period_end := (date_trunc(g_period, now_ AT TIME ZONE 'UTC') + ('1 ' || g_period)::interval) AT TIME ZONE 'UTC';
    ELSE
      SELECT b.period_start, b.period_end INTO c.period_start, c.period_end FROM period_bounds(g_period, g_anchor, started, now_) b;
    END IF;
  END IF;
  -- 2. The lock (lock_key() of 0001, inline).
  locked := set_config('lock_timeout', coalesce(current_setting('meterkit.lock_timeout', true), '5s'), true)
         || pg_advisory_xact_lock(('x' || left(md5(current_schema() || chr(31) || p_user || chr(31) || p_counter), 16))::bit(64)::bigint)::text;
  -- 3. Under the lock: grants that outlive the hold (available(c, exp) of 0020).
  SELECT b.used, b.used_from_grants,
         (SELECT coalesce(sum(g.remaining), 0) FROM grants g
          WHERE g.user_id = p_user AND g.counter_key = p_counter AND (g.expires_at IS NULL OR g.expires_at > exp)),
         o.held, o.n, o.stale
    INTO b_used, b_ufg, grants_left, held, n_open, stale
  FROM (SELECT coalesce(sum(h.amount) FILTER (WHERE h.expires_at > now_), 0) AS held,
               count(*) FILTER (WHERE h.expires_at > now_) AS n,
               coalesce(bool_or(h.expires_at <= now_), false) AS stale
        FROM holds h WHERE h.user_id = p_user AND h.counter_key = p_counter AND h.status = 'open') o
  LEFT JOIN balances b ON b.user_id = p_user AND b.counter_key = p_counter AND b.period_start = c.period_start;
  -- 4. As enter() of 0001.
  IF stale THEN
    WITH ex AS (
      UPDATE holds SET status = 'expired', resolved_at = expires_at,
        result = jsonb_build_object('reservationId', id, 'userId', user_id, 'status', 'expired', 'expired', amount)
      WHERE user_id = p_user AND counter_key = p_counter AND status = 'open' AND expires_at <= now_
      RETURNING id, amount, meter_key
    )
    INSERT INTO entries (user_id, counter_key, kind, amount, hold_id, meter_key)
    SELECT p_user, p_counter, 'expire', amount, id, meter_key FROM ex;
  END IF;
  IF b_used IS NULL THEN
    INSERT INTO balances (user_id, counter_key, period_start, period_end)
    VALUES (p_user, p_counter, c.period_start, c.period_end) ON CONFLICT DO NOTHING;
    b_used := 0; b_ufg := 0;
  END IF;
  -- 5. Replay (replay() of 0001), the check (0020), the writes.
  IF p_key IS NOT NULL THEN
    SELECT * INTO prior FROM idempotency WHERE user_id = p_user AND key = p_key;
    IF FOUND THEN
      IF prior.fingerprint <> p_fingerprint THEN
        PERFORM fail('conflict', format('Idempotency key %s was already used with different arguments.', p_key), jsonb_build_object('idempotencyKey', p_key));
      END IF;
      RETURN prior.result;
    END IF;
  END IF;
  -- A concurrency hold is one slot, whatever the amount asked.
  amt := CASE WHEN c.kind = 'concurrency' THEN 1 ELSE p_amount END;
  avail := CASE WHEN c.quota IS NULL THEN NULL
                WHEN c.kind = 'concurrency' THEN c.quota - n_open
                ELSE greatest(0, c.quota - (b_used - b_ufg)) + grants_left - held END;
  IF avail < amt THEN
    RETURN remember(p_user, p_key, p_fingerprint, jsonb_strip_nulls(jsonb_build_object(
      'allowed', false, 'reason', 'limit_reached', 'remaining', greatest(avail, 0),
      'required', amt, 'counter', p_counter, 'retryAfter', retry_after(c, amt))));
  END IF;
  -- On a limited counter available >= amount bounds the holds by quota + grants; an unlimited
  -- one admits anything, so bound its holds here.
  IF c.quota IS NULL AND held + amt > 9007199254740991 THEN
    PERFORM fail_unsafe('the open holds', 'amount');
  END IF;
  INSERT INTO holds (id, user_id, counter_key, meter_key, amount, status, expires_at, model, token_prices, metadata)
  VALUES (p_hold_id, p_user, p_counter, p_meter, amt, 'open', exp, p_model, p_token_prices, p_metadata);
  INSERT INTO entries (user_id, counter_key, kind, amount, hold_id, meter_key, model, metadata)
  VALUES (p_user, p_counter, 'reserve', amt, p_hold_id, p_meter, p_model, p_metadata);
  res := jsonb_build_object('allowed', true, 'reservationId', p_hold_id, 'remaining', avail - amt,
    'expiresAt', to_char(exp AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    'amount', amt, 'counter', p_counter);
  IF p_key IS NOT NULL THEN
    INSERT INTO idempotency (user_id, key, fingerprint, result) VALUES (p_user, p_key, p_fingerprint, res);
  END IF;
  RETURN res;
END $$;

-- Resolves a hold once (0004) and every rule of 0020: repeating the same resolution returns the
-- first result, anything else is a conflict carrying it; a part of a multi-counter reservation
-- resolves only with the others; a commit on a concurrency group records no usage.
CREATE OR REPLACE FUNCTION op_resolve(p_hold_id text, p_release boolean, p_actual bigint, p_usage jsonb) RETURNS jsonb
LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
DECLARE
  now_ timestamptz := clock();
  u text := reservation_user(p_hold_id);
  grp text := nullif(current_setting('meterkit.resolving', true), '');
  h holds;
  c ctx;
  started timestamptz;
  custom jsonb;
  g_key text;
  g_quota bigint;
  g_period text;
  g_anchor text;
  locked text;
  b_used bigint;
  b_ufg bigint;
  grants_left bigint;
  held bigint;
  n_open bigint;
  stale boolean;
  charge bigint;
  fine numeric;
  draws jsonb := '[]';
  from_grants bigint;
  remaining bigint;
  res jsonb;
  is_group boolean;
  k int;
  req jsonb := CASE WHEN p_release THEN NULL ELSE jsonb_build_object('actual', p_actual, 'usage', p_usage) END;
BEGIN
  -- A part of a multi-counter reservation (id = reservation id || '.' || counter), resolved by
  -- op_resolve_multi: its user is the reservation's.
  IF grp IS NOT NULL AND left(p_hold_id, length(grp) + 1) = grp || '.' THEN
    u := reservation_user(grp);
  END IF;
  -- Every read names the user when the id carries one (so it reaches the user's partition or
  -- shard alone); only ids without a user (issued before 0.3) are looked up by id alone.
  IF u IS NOT NULL THEN
    SELECT * INTO h FROM holds WHERE id = p_hold_id AND user_id = u;
  ELSE
    SELECT * INTO h FROM holds WHERE id = p_hold_id;
  END IF;
  IF h.id IS NULL AND u IS NOT NULL AND grp IS NULL THEN
    -- A part id (reservation id || '.' || counter) named on its own: its user is the
    -- reservation's, the id up to one of its dots (user ids and counters may hold dots too).
    FOR k IN 35 .. length(p_hold_id) - 1 LOOP
      CONTINUE WHEN substr(p_hold_id, k, 1) <> '.';
      SELECT * INTO h FROM holds WHERE id = p_hold_id AND user_id = substr(p_hold_id, 34, k - 34);
      EXIT WHEN h.id IS NOT NULL;
    END LOOP;
  END IF;
  IF h.id IS NULL THEN
    -- A multi-counter reservation: resolve all its parts (only on this miss; one hold is unchanged).
    IF u IS NOT NULL THEN
      is_group := EXISTS (SELECT 1 FROM holds WHERE group_id = p_hold_id AND user_id = u);
    ELSE
      is_group := EXISTS (SELECT 1 FROM holds WHERE group_id = p_hold_id);
    END IF;
    IF is_group THEN
      IF p_actual IS NOT NULL THEN
        PERFORM fail('invalid_request', format('Reservation %s holds several counters: pass actual per meter key ({ actual: { "llm.input": 120, ... } }).', p_hold_id),
          jsonb_build_object('field', 'actual', 'reservationId', p_hold_id));
      END IF;
      RETURN op_resolve_multi(p_hold_id, p_release, NULL, p_usage);
    END IF;
    PERFORM fail('not_found', format('Unknown reservation %s.', p_hold_id), jsonb_build_object('reservationId', p_hold_id));
  END IF;
  -- 1. Context (as in op_reserve).
  SELECT sub.plan_id, sub.started_at, sub.custom_limits, lg.key, lg.unit, lg.quota, lg.period, lg.anchor, lg.overage, lg.kind
    INTO c.plan_id, started, custom, g_key, c.unit, g_quota, g_period, g_anchor, c.overage, c.kind
  FROM subscriptions sub
  LEFT JOIN limit_groups lg ON lg.plan_id = sub.plan_id AND lg.key = h.counter_key
  WHERE sub.user_id = h.user_id;
  IF g_key IS NULL THEN
    c := context(h.user_id, h.counter_key);
  ELSE
    c.user_id := h.user_id;
    c.counter_key := h.counter_key;
    c.quota := CASE WHEN custom -> h.counter_key ? 'quota' THEN (custom -> h.counter_key ->> 'quota')::bigint ELSE g_quota END;
    IF g_period = 'none' THEN
      c.period_start := '-infinity'; c.period_end := 'infinity';
    ELSIF g_anchor = 'calendar' THEN
      c.period_start := date_trunc(g_period, now_ AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
      c.period_end := (date_trunc(g_period, now_ AT TIME ZONE 'UTC') + ('1 ' || g_period)::interval) AT TIME ZONE 'UTC';
    ELSE
      SELECT b.period_start, b.period_end INTO c.period_start, c.period_end FROM period_bounds(g_period, g_anchor, started, now_) b;
    END IF;
  END IF;
  -- 2. The lock.
  locked := set_config('lock_timeout', coalesce(current_setting('meterkit.lock_timeout', true), '5s'), true)
         || pg_advisory_xact_lock(('x' || left(md5(current_schema() || chr(31) || c.user_id || chr(31) || c.counter_key), 16))::bit(64)::bigint)::text;
  -- 3. Under the lock: grants valid now (available(c) of 0020).
  SELECT b.used, b.used_from_grants,
         (SELECT coalesce(sum(g.remaining), 0) FROM grants g
          WHERE g.user_id = c.user_id AND g.counter_key = c.counter_key AND (g.expires_at IS NULL OR g.expires_at > now_)),
         o.held, o.n, o.stale
    INTO b_used, b_ufg, grants_left, held, n_open, stale
  FROM (SELECT coalesce(sum(x.amount) FILTER (WHERE x.expires_at > now_), 0) AS held,
               count(*) FILTER (WHERE x.expires_at > now_) AS n,
               coalesce(bool_or(x.expires_at <= now_), false) AS stale
        FROM holds x WHERE x.user_id = c.user_id AND x.counter_key = c.counter_key AND x.status = 'open') o
  LEFT JOIN balances b ON b.user_id = c.user_id AND b.counter_key = c.counter_key AND b.period_start = c.period_start;
  -- 4. As enter() of 0001.
  IF stale THEN
    WITH ex AS (
      UPDATE holds SET status = 'expired', resolved_at = expires_at,
        result = jsonb_build_object('reservationId', id, 'userId', user_id, 'status', 'expired', 'expired', amount)
      WHERE user_id = c.user_id AND counter_key = c.counter_key AND status = 'open' AND expires_at <= now_
      RETURNING id, amount, meter_key
    )
    INSERT INTO entries (user_id, counter_key, kind, amount, hold_id, meter_key)
    SELECT c.user_id, c.counter_key, 'expire', amount, id, meter_key FROM ex;
  END IF;
  IF b_used IS NULL THEN
    INSERT INTO balances (user_id, counter_key, period_start, period_end)
    VALUES (c.user_id, c.counter_key, c.period_start, c.period_end) ON CONFLICT DO NOTHING;
    b_used := 0; b_ufg := 0;
  END IF;
  SELECT * INTO h FROM holds WHERE id = h.id AND user_id = h.user_id;   -- again, under the lock
  -- 5. The rules of 0020.
  IF h.group_id IS NOT NULL AND current_setting('meterkit.resolving', true) IS DISTINCT FROM h.group_id THEN
    PERFORM fail('invalid_request', format('%s is a part of reservation %s: commit or release %s.', p_hold_id, h.group_id, h.group_id),
      jsonb_build_object('field', 'reservationId', 'reservationId', h.group_id));
  END IF;
  -- Holds committed before 0.2 did not keep their request: any repeat returns the first result.
  IF h.status = 'committed' AND NOT p_release AND (h.request IS NULL OR h.request = req)
     OR h.status = 'released' AND p_release THEN
    RETURN h.result;
  END IF;
  IF h.status <> 'open' THEN
    PERFORM fail('conflict',
      CASE WHEN h.status = 'committed' AND NOT p_release
           THEN format('Reservation %s was already committed with other numbers (%s); a hold resolves once.', p_hold_id, h.request::text)
           ELSE format('Reservation %s is already %s.', p_hold_id, h.status) END,
      jsonb_build_object('reservationId', p_hold_id, 'reason', h.status, 'expiresAt',
        to_char(h.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'), 'result', h.result));
  END IF;
  IF p_release THEN
    charge := 0;
  ELSIF c.kind = 'concurrency' THEN
    -- A slot records no usage: committing frees it, like a release.
    charge := 0;
  ELSIF p_usage IS NOT NULL THEN
    IF h.token_prices IS NULL THEN
      IF c.unit = 'cents' THEN
        PERFORM fail('invalid_request', format('Reservation %s has no model prices to convert token usage to %s; commit { actual } instead.', h.id, c.unit),
          jsonb_build_object('reservationId', h.id));
      END IF;
      IF (p_usage ->> 'inputTokens')::numeric + (p_usage ->> 'outputTokens')::numeric > 9007199254740991 THEN
        PERFORM fail_unsafe('usage.inputTokens + usage.outputTokens', 'usage');
      END IF;
      charge := (p_usage ->> 'inputTokens')::bigint + (p_usage ->> 'outputTokens')::bigint;
    ELSE
      fine := ((p_usage ->> 'inputTokens')::numeric - coalesce((p_usage ->> 'cachedInputTokens')::numeric, 0)) * (h.token_prices ->> 'input')::numeric
            + coalesce((p_usage ->> 'cachedInputTokens')::numeric, 0) * (h.token_prices ->> 'cachedInput')::numeric
            + (p_usage ->> 'outputTokens')::numeric * (h.token_prices ->> 'output')::numeric;
      charge := round_fine(c, fine);
    END IF;
  ELSIF p_actual IS NULL THEN
    charge := h.amount;
  ELSIF h.token_prices IS NOT NULL AND h.token_prices ? 'unit' THEN
    charge := round_fine(c, p_actual * (h.token_prices ->> 'unit')::numeric);
  ELSE
    charge := p_actual;
  END IF;
  IF charge > 0 THEN
    -- draw() of 0004: allowance first, then grants soonest-expiring first, then overage. The
    -- allowance alone (or an unlimited counter) is one UPDATE; grants take the full path.
    IF b_used::numeric + charge > 9007199254740991 THEN
      PERFORM fail_unsafe('this period''s usage', 'amount');
    END IF;
    IF c.quota IS NULL OR charge <= greatest(0, c.quota - (b_used - b_ufg)) OR grants_left = 0 THEN
      UPDATE balances SET used = used + charge
      WHERE user_id = c.user_id AND counter_key = c.counter_key AND period_start = c.period_start;
      b_used := b_used + charge;
    ELSE
      draws := draw(c, charge);
      from_grants := (SELECT coalesce(sum((d ->> 'amount')::bigint), 0) FROM jsonb_array_elements(draws) d);
      b_used := b_used + charge;
      b_ufg := b_ufg + from_grants;
      grants_left := grants_left - from_grants;
    END IF;
  END IF;
  -- What is left once the hold is resolved: available (the hold still counted) + its amount
  -- (remaining_of(c, h.amount) of 0004).
  remaining := CASE WHEN c.quota IS NULL THEN NULL
                    WHEN c.kind = 'concurrency' THEN greatest(c.quota - n_open + h.amount, 0)
                    ELSE greatest(greatest(0, c.quota - (b_used - b_ufg)) + grants_left - held + h.amount, 0) END;
  IF p_release THEN
    res := jsonb_build_object('reservationId', h.id, 'userId', h.user_id, 'status', 'released', 'released', h.amount,
                              'remaining', remaining);
    UPDATE holds SET status = 'released', resolved_at = now_, result = res WHERE id = h.id AND user_id = h.user_id;
    INSERT INTO entries (user_id, counter_key, kind, amount, hold_id, meter_key, model)
    VALUES (h.user_id, h.counter_key, 'release', h.amount, h.id, h.meter_key, h.model);
  ELSE
    res := jsonb_build_object('reservationId', h.id, 'userId', h.user_id, 'status', 'committed', 'held', h.amount,
      'committed', charge, 'refunded', greatest(h.amount - charge, 0), 'overage', greatest(charge - h.amount, 0),
      'remaining', remaining);
    UPDATE holds SET status = 'committed', resolved_at = now_, request = req, result = res WHERE id = h.id AND user_id = h.user_id;
    INSERT INTO entries (user_id, counter_key, kind, amount, period_start, from_grants, hold_id, meter_key, model, metadata)
    VALUES (h.user_id, h.counter_key, 'commit', charge, c.period_start, draws, h.id, h.meter_key, h.model,
      jsonb_build_object('held', h.amount, 'refunded', greatest(h.amount - charge, 0), 'overage', greatest(charge - h.amount, 0)));
  END IF;
  RETURN res;
END $$;

-- As 0020 (which calls op_resolve for each part), but every read of the parts names the user
-- of a routed reservation id, so it stays on one partition.
CREATE OR REPLACE FUNCTION op_resolve_multi(p_group text, p_release boolean, p_actual jsonb, p_usage jsonb) RETURNS jsonb
LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
DECLARE
  u text := reservation_user(p_group);
  h record;
  r jsonb;
  parts jsonb := '{}';
  usage jsonb;
  act bigint;
  uid text;
BEGIN
  IF u IS NULL THEN
    -- A reservation id without a user (issued before 0.3): find it by its parts.
    SELECT user_id INTO u FROM holds WHERE group_id = p_group LIMIT 1;
  END IF;
  IF NOT EXISTS (SELECT 1 FROM holds WHERE group_id = p_group AND user_id = u) THEN
    IF EXISTS (SELECT 1 FROM holds WHERE id = p_group AND (reservation_user(p_group) IS NULL OR user_id = reservation_user(p_group))) THEN
      PERFORM fail('invalid_request', format('Reservation %s holds one counter: pass actual as a number.', p_group),
        jsonb_build_object('field', 'actual', 'reservationId', p_group));
    END IF;
    PERFORM fail('not_found', format('Unknown reservation %s.', p_group), jsonb_build_object('reservationId', p_group));
  END IF;
  FOR h IN SELECT * FROM holds WHERE group_id = p_group AND user_id = u ORDER BY lock_key(user_id, counter_key) LOOP
    PERFORM enter(context(h.user_id, h.counter_key));
  END LOOP;
  PERFORM set_config('meterkit.resolving', p_group, true);
  FOR h IN SELECT * FROM holds WHERE group_id = p_group AND user_id = u ORDER BY counter_key LOOP
    uid := h.user_id;
    usage := CASE WHEN p_usage IS NULL OR h.usage_part IS NULL THEN p_usage
                  WHEN h.usage_part = 'input' THEN p_usage || '{"outputTokens": 0}'
                  ELSE p_usage || '{"inputTokens": 0, "cachedInputTokens": 0}' END;
    act := coalesce(p_actual ->> h.meter_key, p_actual ->> h.counter_key)::bigint;
    r := op_resolve(h.id, p_release, act, usage);
    parts := parts || jsonb_build_object(h.counter_key, r - 'userId');
  END LOOP;
  PERFORM set_config('meterkit.resolving', '', true);
  RETURN jsonb_strip_nulls(jsonb_build_object('reservationId', p_group, 'userId', uid,
    'status', CASE WHEN p_release THEN 'released' ELSE 'committed' END,
    'held', CASE WHEN NOT p_release THEN (SELECT sum((v ->> 'held')::bigint) FROM jsonb_each(parts) e(k, v)) END,
    'committed', CASE WHEN NOT p_release THEN (SELECT sum((v ->> 'committed')::bigint) FROM jsonb_each(parts) e(k, v)) END,
    'refunded', CASE WHEN NOT p_release THEN (SELECT sum((v ->> 'refunded')::bigint) FROM jsonb_each(parts) e(k, v)) END,
    'overage', CASE WHEN NOT p_release THEN (SELECT sum((v ->> 'overage')::bigint) FROM jsonb_each(parts) e(k, v)) END,
    'released', CASE WHEN p_release THEN (SELECT sum((v ->> 'released')::bigint) FROM jsonb_each(parts) e(k, v)) END))
    || jsonb_build_object('remaining', (SELECT min((v ->> 'remaining')::bigint) FROM jsonb_each(parts) e(k, v)), 'parts', parts);
END $$;

-- Usage without a hold, or a refund: every rule of 0020 (a refund naming a reservation must be
-- one of this user's committed holds on this counter and gives back at most what it committed
-- less earlier refunds; overage 'reject' refuses with retryAfter; credits given back to grants
-- pay open debts first). Usage the allowance covers is one UPDATE; grants, refunds and priced
-- amounts take the helpers of 0004.
CREATE OR REPLACE FUNCTION op_track(p_user text, p_counter text, p_meter text, p_amount bigint, p_fine numeric,
                         p_key text, p_fingerprint text, p_hold_id text, p_model text, p_metadata jsonb) RETURNS jsonb
LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
DECLARE
  now_ timestamptz := clock();
  c ctx;
  started timestamptz;
  custom jsonb;
  g_key text;
  g_quota bigint;
  g_period text;
  g_anchor text;
  locked text;
  b_used bigint;
  b_ufg bigint;
  grants_left bigint;
  held bigint;
  n_open bigint;
  stale boolean;
  prior idempotency;
  amt bigint := p_amount;
  avail bigint;
  draws jsonb := '[]';
  from_grants bigint;
  gb jsonb;
  h holds;
  refund boolean := p_meter LIKE '%.refund';
  res jsonb;
BEGIN
  -- 1. Context (as in op_reserve).
  SELECT sub.plan_id, sub.started_at, sub.custom_limits, lg.key, lg.unit, lg.quota, lg.period, lg.anchor, lg.overage, lg.kind
    INTO c.plan_id, started, custom, g_key, c.unit, g_quota, g_period, g_anchor, c.overage, c.kind
  FROM subscriptions sub
  LEFT JOIN limit_groups lg ON lg.plan_id = sub.plan_id AND lg.key = p_counter
  WHERE sub.user_id = p_user;
  IF g_key IS NULL THEN
    c := context(p_user, p_counter);
  ELSE
    c.user_id := p_user;
    c.counter_key := p_counter;
    c.quota := CASE WHEN custom -> p_counter ? 'quota' THEN (custom -> p_counter ->> 'quota')::bigint ELSE g_quota END;
    IF g_period = 'none' THEN
      c.period_start := '-infinity'; c.period_end := 'infinity';
    ELSIF g_anchor = 'calendar' THEN
      c.period_start := date_trunc(g_period, now_ AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
      c.period_end := (date_trunc(g_period, now_ AT TIME ZONE 'UTC') + ('1 ' || g_period)::interval) AT TIME ZONE 'UTC';
    ELSE
      SELECT b.period_start, b.period_end INTO c.period_start, c.period_end FROM period_bounds(g_period, g_anchor, started, now_) b;
    END IF;
  END IF;
  -- 2. The lock.
  locked := set_config('lock_timeout', coalesce(current_setting('meterkit.lock_timeout', true), '5s'), true)
         || pg_advisory_xact_lock(('x' || left(md5(current_schema() || chr(31) || p_user || chr(31) || p_counter), 16))::bit(64)::bigint)::text;
  -- 3. Under the lock: grants valid now.
  SELECT b.used, b.used_from_grants,
         (SELECT coalesce(sum(g.remaining), 0) FROM grants g
          WHERE g.user_id = p_user AND g.counter_key = p_counter AND (g.expires_at IS NULL OR g.expires_at > now_)),
         o.held, o.n, o.stale
    INTO b_used, b_ufg, grants_left, held, n_open, stale
  FROM (SELECT coalesce(sum(x.amount) FILTER (WHERE x.expires_at > now_), 0) AS held,
               count(*) FILTER (WHERE x.expires_at > now_) AS n,
               coalesce(bool_or(x.expires_at <= now_), false) AS stale
        FROM holds x WHERE x.user_id = p_user AND x.counter_key = p_counter AND x.status = 'open') o
  LEFT JOIN balances b ON b.user_id = p_user AND b.counter_key = p_counter AND b.period_start = c.period_start;
  -- 4. As enter() of 0001.
  IF stale THEN
    WITH ex AS (
      UPDATE holds SET status = 'expired', resolved_at = expires_at,
        result = jsonb_build_object('reservationId', id, 'userId', user_id, 'status', 'expired', 'expired', amount)
      WHERE user_id = p_user AND counter_key = p_counter AND status = 'open' AND expires_at <= now_
      RETURNING id, amount, meter_key
    )
    INSERT INTO entries (user_id, counter_key, kind, amount, hold_id, meter_key)
    SELECT p_user, p_counter, 'expire', amount, id, meter_key FROM ex;
  END IF;
  IF b_used IS NULL THEN
    INSERT INTO balances (user_id, counter_key, period_start, period_end)
    VALUES (p_user, p_counter, c.period_start, c.period_end) ON CONFLICT DO NOTHING;
    b_used := 0; b_ufg := 0;
  END IF;
  -- 5. Replay, then the rules of 0020.
  IF p_key IS NOT NULL THEN
    SELECT * INTO prior FROM idempotency WHERE user_id = p_user AND key = p_key;
    IF FOUND THEN
      IF prior.fingerprint <> p_fingerprint THEN
        PERFORM fail('conflict', format('Idempotency key %s was already used with different arguments.', p_key), jsonb_build_object('idempotencyKey', p_key));
      END IF;
      RETURN prior.result;
    END IF;
  END IF;
  IF refund AND p_hold_id IS NOT NULL THEN
    -- Checked before anything is written (round_fine moves the carry).
    SELECT * INTO h FROM holds WHERE id = p_hold_id AND user_id = p_user;
    IF NOT FOUND THEN
      PERFORM fail('not_found', format('Unknown reservation %s for user %s.', p_hold_id, p_user),
        jsonb_build_object('reservationId', p_hold_id, 'field', 'reservationId'));
    END IF;
    IF h.counter_key <> p_counter THEN
      PERFORM fail('conflict', format('Reservation %s is on counter %s, not %s.', p_hold_id, h.counter_key, p_counter),
        jsonb_build_object('reservationId', p_hold_id, 'reason', 'other_counter', 'counter', h.counter_key));
    END IF;
    IF h.status <> 'committed' THEN
      PERFORM fail('conflict', format('Reservation %s is %s: only a committed reservation can be refunded.', p_hold_id, h.status),
        jsonb_build_object('reservationId', p_hold_id, 'reason', h.status));
    END IF;
  END IF;
  IF p_fine IS NOT NULL THEN amt := round_fine(c, p_fine); END IF;
  IF h.id IS NOT NULL AND amt < 0 THEN
    amt := -least(-amt, greatest((h.result ->> 'committed')::bigint - h.refunded, 0));
  END IF;
  -- available(c) of 0020, from the read of step 3.
  avail := CASE WHEN c.quota IS NULL THEN NULL
                WHEN c.kind = 'concurrency' THEN c.quota - n_open
                ELSE greatest(0, c.quota - (b_used - b_ufg)) + grants_left - held END;
  IF amt > 0 THEN
    IF c.overage = 'reject' AND avail < amt THEN
      PERFORM fail('limit_reached', format('Limit reached on %s: %s required, %s left.', p_counter, amt, greatest(avail, 0)),
        jsonb_strip_nulls(jsonb_build_object('counter', p_counter, 'remaining', greatest(avail, 0), 'required', amt,
                                             'retryAfter', retry_after(c, amt))));
    END IF;
    -- draw() of 0004 (see op_resolve).
    IF b_used::numeric + amt > 9007199254740991 THEN
      PERFORM fail_unsafe('this period''s usage', 'amount');
    END IF;
    IF c.quota IS NULL OR amt <= greatest(0, c.quota - (b_used - b_ufg)) OR grants_left = 0 THEN
      UPDATE balances SET used = used + amt
      WHERE user_id = p_user AND counter_key = p_counter AND period_start = c.period_start;
      from_grants := 0;
    ELSE
      draws := draw(c, amt);
      from_grants := (SELECT coalesce(sum((d ->> 'amount')::bigint), 0) FROM jsonb_array_elements(draws) d);
    END IF;
    b_used := b_used + amt;
    b_ufg := b_ufg + from_grants;
    grants_left := grants_left - from_grants;
    avail := CASE WHEN c.quota IS NULL THEN NULL
                  WHEN c.kind = 'concurrency' THEN c.quota - n_open
                  ELSE greatest(0, c.quota - (b_used - b_ufg)) + grants_left - held END;
  ELSIF amt < 0 THEN
    gb := giveback(c, -amt);
    amt := -(gb ->> 'applied')::bigint;
    draws := gb -> 'draws';
    -- Credits given back to a grant are credits arriving: they pay open debts first.
    IF draws <> '[]'::jsonb THEN PERFORM collect_debts(p_user, p_counter, NULL); END IF;
  END IF;
  IF h.id IS NOT NULL AND amt < 0 THEN
    UPDATE holds SET refunded = refunded - amt WHERE id = h.id AND user_id = p_user;
  END IF;
  INSERT INTO entries (user_id, counter_key, kind, amount, period_start, from_grants, hold_id, meter_key, model, metadata)
  VALUES (p_user, p_counter, CASE WHEN amt < 0 OR refund THEN 'refund' ELSE 'track' END,
          amt, c.period_start, draws, p_hold_id, p_meter, p_model, p_metadata);
  -- remaining_of(c) of 0004: after a give-back, read again (grants and debts moved).
  res := jsonb_build_object('amount', amt, 'counter', p_counter,
    'remaining', CASE WHEN amt < 0 THEN remaining_of(c) WHEN c.quota IS NULL THEN NULL ELSE greatest(avail, 0) END);
  IF p_key IS NOT NULL THEN
    INSERT INTO idempotency (user_id, key, fingerprint, result) VALUES (p_user, p_key, p_fingerprint, res);
  END IF;
  RETURN res;
END $$;

-- ---------------------------------------------------------------------------------------
-- As 0004, reading and updating the pack's grant by (user, id): like every statement of an
-- operation, it names its user (docs/scale.md, test/server/partitionPruning.test.ts).

CREATE OR REPLACE FUNCTION stripe_apply_clawback(c ctx, p_payment_intent text, p_debt_id text) RETURNS jsonb
LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
DECLARE
  p stripe_payments;
  g grants;
  target bigint;
  delta bigint;
  take bigint;
  debt bigint;
  paid bigint := 0;
BEGIN
  SELECT * INTO p FROM stripe_payments WHERE payment_intent = p_payment_intent;
  IF p.grant_id IS NULL OR p.credits IS NULL THEN
    RETURN jsonb_build_object('clawedBack', 0, 'debt', 0);
  END IF;
  -- Credits in proportion to the money lost, rounded up: a user never keeps credits paid back.
  IF p.paid IS NULL OR p.paid <= 0 THEN
    target := CASE WHEN p.refunded + p.disputed > 0 THEN p.credits ELSE 0 END;
  ELSE
    target := least(p.credits, ceil(p.credits::numeric * least(p.paid, p.refunded + p.disputed) / p.paid)::bigint);
  END IF;
  delta := target - p.clawed;
  IF delta <= 0 THEN
    RETURN jsonb_build_object('clawedBack', 0, 'debt', 0);
  END IF;
  SELECT * INTO g FROM grants WHERE user_id = p.user_id AND id = p.grant_id;
  take := least(greatest(g.remaining, 0), delta);
  debt := delta - take;
  IF take > 0 THEN
    UPDATE grants SET remaining = remaining - take WHERE user_id = g.user_id AND id = g.id;
    INSERT INTO entries (user_id, counter_key, kind, amount, grant_id, metadata)
    VALUES (c.user_id, c.counter_key, 'clawback', take, g.id,
            jsonb_build_object('source', 'stripe', 'paymentIntent', p_payment_intent));
  END IF;
  IF debt > 0 THEN
    INSERT INTO debts (id, user_id, counter_key, amount, remaining, payment_intent, grant_id)
    VALUES (p_debt_id, c.user_id, c.counter_key, debt, debt, p_payment_intent, g.id);
    INSERT INTO entries (user_id, counter_key, kind, amount, metadata)
    VALUES (c.user_id, c.counter_key, 'debt', debt,
            jsonb_build_object('debtId', p_debt_id, 'source', 'stripe', 'paymentIntent', p_payment_intent, 'grantId', g.id));
    paid := collect_debts(c.user_id, c.counter_key, NULL);
  END IF;
  UPDATE stripe_payments SET clawed = target, updated_at = now() WHERE payment_intent = p_payment_intent;
  RETURN jsonb_build_object('clawedBack', take, 'debt', debt, 'debtPaid', paid);
END $$;
