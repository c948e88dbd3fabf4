-- Rate windows and concurrency limits (issue 15). Runs with search_path set to the meter's
-- schema, like 0001. Replaces functions of 0001 and 0004 with CREATE OR REPLACE (same
-- signatures).

-- ---------------------------------------------------------------------------------------
-- Rate windows: periods of an hour and a minute, fixed windows on the database clock.

ALTER TABLE limit_groups DROP CONSTRAINT limit_groups_period_check;
ALTER TABLE limit_groups ADD CONSTRAINT limit_groups_period_check
  CHECK (period IN ('month', 'week', 'day', 'hour', 'minute', 'none'));

-- As 0001, plus `hour` and `minute`: calendar windows start at the top of the UTC hour or
-- minute (date_trunc), subscription_start windows every 60 min / 60 s from the start.
CREATE OR REPLACE FUNCTION period_bounds(p_period text, p_anchor text, p_started timestamptz, p_now timestamptz,
                                         OUT period_start timestamptz, OUT period_end timestamptz)
LANGUAGE plpgsql IMMUTABLE
SET search_path FROM CURRENT AS $$
DECLARE
  len interval;
  k bigint;
  n timestamp := p_now AT TIME ZONE 'UTC';
BEGIN
  IF p_period = 'none' THEN
    period_start := '-infinity'; period_end := 'infinity'; RETURN;
  END IF;
  IF p_anchor = 'calendar' THEN
    period_start := date_trunc(p_period, n) AT TIME ZONE 'UTC';
    period_end := (date_trunc(p_period, n) + ('1 ' || p_period)::interval) AT TIME ZONE 'UTC';
    RETURN;
  END IF;
  IF p_period IN ('day', 'week', 'hour', 'minute') THEN
    len := CASE p_period WHEN 'day' THEN interval '1 day' WHEN 'week' THEN interval '7 days'
                         WHEN 'hour' THEN interval '1 hour' ELSE interval '1 minute' END;
    k := floor(extract(epoch FROM p_now - p_started) / extract(epoch FROM len))::bigint;
    period_start := p_started + len * k;
    period_end := p_started + len * (k + 1);
    RETURN;
  END IF;
  k := (extract(year FROM n) - extract(year FROM p_started AT TIME ZONE 'UTC')) * 12
       + extract(month FROM n) - extract(month FROM p_started AT TIME ZONE 'UTC');
  IF month_anchor(p_started, k::int) > p_now THEN k := k - 1; END IF;
  period_start := month_anchor(p_started, k::int);
  period_end := month_anchor(p_started, k::int + 1);
END $$;

-- ---------------------------------------------------------------------------------------
-- Concurrency groups: a limit group of kind 'concurrency' counts open holds (one slot per hold,
-- whatever its amount), freed by commit, release or expiry; a commit on it records no usage.

ALTER TABLE limit_groups ADD COLUMN kind text NOT NULL DEFAULT 'quota' CHECK (kind IN ('quota', 'concurrency'));
ALTER TYPE ctx ADD ATTRIBUTE kind text;

-- As 0004, plus the group's kind.
CREATE OR REPLACE FUNCTION context(p_user text, p_counter text) RETURNS ctx
LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
DECLARE
  c ctx;
  started timestamptz;
  custom jsonb;
  g_key text;
  g_quota bigint;
  g_period text;
  g_anchor text;
  dp text;
BEGIN
  SELECT sub.plan_id, sub.started_at, sub.custom_limits, lg.key, lg.unit, lg.quota, lg.period, lg.anchor, lg.overage, lg.kind
    INTO c.plan_id, started, custom, g_key, c.unit, g_quota, g_period, g_anchor, c.overage, c.kind
  FROM subscriptions sub
  LEFT JOIN limit_groups lg ON lg.plan_id = sub.plan_id AND lg.key = p_counter
  WHERE sub.user_id = p_user;
  IF NOT FOUND THEN
    SELECT value INTO dp FROM settings WHERE key = 'default_plan';
    IF dp IS NULL THEN
      PERFORM fail('not_found', format('Unknown user %s: no subscription and no default plan.', p_user), jsonb_build_object('userId', p_user));
    END IF;
    INSERT INTO subscriptions (user_id, plan_id, started_at) VALUES (p_user, dp, clock())
      ON CONFLICT (user_id) DO NOTHING;
    SELECT sub.plan_id, sub.started_at, sub.custom_limits, lg.key, lg.unit, lg.quota, lg.period, lg.anchor, lg.overage, lg.kind
      INTO c.plan_id, started, custom, g_key, c.unit, g_quota, g_period, g_anchor, c.overage, c.kind
    FROM subscriptions sub
    LEFT JOIN limit_groups lg ON lg.plan_id = sub.plan_id AND lg.key = p_counter
    WHERE sub.user_id = p_user;
  END IF;
  IF g_key IS NULL THEN
    PERFORM fail('not_found', format('Plan %s has no counter %s.', c.plan_id, p_counter), jsonb_build_object('counter', p_counter, 'planId', c.plan_id));
  END IF;
  SELECT b.period_start, b.period_end INTO c.period_start, c.period_end FROM period_bounds(g_period, g_anchor, started, clock()) b;
  c.user_id := p_user;
  c.counter_key := p_counter;
  c.quota := CASE WHEN custom -> p_counter ? 'quota' THEN (custom -> p_counter ->> 'quota')::bigint ELSE g_quota END;
  RETURN c;
END $$;

-- As 0004, plus: a concurrency group has its quota less the holds in flight (grants do not apply).
CREATE OR REPLACE FUNCTION available(c ctx, p_until timestamptz) RETURNS bigint
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT AS $$
DECLARE
  allowance bigint;
  grants_left bigint;
  held bigint;
BEGIN
  IF c.quota IS NULL THEN RETURN NULL; END IF;
  IF c.kind = 'concurrency' THEN
    RETURN c.quota - (SELECT count(*) FROM holds WHERE user_id = c.user_id AND counter_key = c.counter_key
                      AND status = 'open' AND expires_at > clock());
  END IF;
  SELECT greatest(0, c.quota - (b.used - b.used_from_grants)) INTO allowance
  FROM balances b WHERE b.user_id = c.user_id AND b.counter_key = c.counter_key AND b.period_start = c.period_start;
  SELECT coalesce(sum(remaining), 0) INTO grants_left FROM grants
  WHERE user_id = c.user_id AND counter_key = c.counter_key AND (expires_at IS NULL OR expires_at > p_until);
  SELECT coalesce(sum(amount), 0) INTO held FROM holds
  WHERE user_id = c.user_id AND counter_key = c.counter_key AND status = 'open' AND expires_at > clock();
  RETURN coalesce(allowance, greatest(c.quota, 0)) + grants_left - held;
END $$;

-- Seconds until waiting can help a request of `p_required` that was just refused: the end of
-- the current period, when the counter renews there and its next allowance plus the grants
-- still valid then would cover the request. NULL when waiting would not help (period 'none',
-- an amount beyond the allowance, an unlimited counter). On a concurrency group: the seconds
-- until the earliest open hold expires (a slot is free by then at the latest).
CREATE FUNCTION retry_after(c ctx, p_required bigint) RETURNS int
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT AS $$
DECLARE
  later bigint;
BEGIN
  IF c.kind = 'concurrency' THEN
    IF c.quota IS NULL OR c.quota < 1 THEN RETURN NULL; END IF;
    RETURN (SELECT greatest(1, ceil(extract(epoch FROM min(expires_at) - clock())))::int FROM holds
            WHERE user_id = c.user_id AND counter_key = c.counter_key AND status = 'open' AND expires_at > clock());
  END IF;
  IF c.quota IS NULL OR NOT isfinite(c.period_end) THEN RETURN NULL; END IF;
  SELECT coalesce(sum(remaining), 0) INTO later FROM grants
  WHERE user_id = c.user_id AND counter_key = c.counter_key AND (expires_at IS NULL OR expires_at > c.period_end);
  IF c.quota + later < p_required THEN RETURN NULL; END IF;
  RETURN greatest(1, ceil(extract(epoch FROM c.period_end - clock())))::int;
END $$;

-- ---------------------------------------------------------------------------------------
-- Denials say when to retry.

-- As 0004, plus: a denial carries `retryAfter` (see retry_after) when waiting would help.
CREATE OR REPLACE FUNCTION op_reserve(p_user text, p_counter text, p_meter text, p_amount bigint, p_ttl_ms bigint,
                           p_key text, p_fingerprint text, p_hold_id text, p_model text,
                           p_token_prices jsonb, p_metadata jsonb) RETURNS jsonb
LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
DECLARE
  c ctx := context(p_user, p_counter);
  prior jsonb;
  avail bigint;
  exp timestamptz;
  res jsonb;
BEGIN
  PERFORM enter(c);
  prior := replay(p_user, p_key, p_fingerprint);
  IF prior IS NOT NULL THEN RETURN prior; END IF;
  exp := clock() + p_ttl_ms * interval '1 millisecond';
  -- A concurrency hold is one slot, whatever the amount asked.
  IF c.kind = 'concurrency' THEN p_amount := 1; END IF;
  avail := available(c, exp);
  IF avail < p_amount THEN
    RETURN remember(p_user, p_key, p_fingerprint, jsonb_strip_nulls(jsonb_build_object(
      'allowed', false, 'reason', 'limit_reached', 'remaining', greatest(avail, 0),
      'required', p_amount, 'counter', p_counter, 'retryAfter', retry_after(c, p_amount))));
  END IF;
  -- On a limited counter available >= amount bounds the holds by quota + grants; an unlimited
  -- one admits anything, so bound its holds here.
  IF c.quota IS NULL AND (SELECT coalesce(sum(amount), 0) FROM holds WHERE user_id = p_user AND counter_key = p_counter
                          AND status = 'open' AND expires_at > clock()) + p_amount > max_safe() THEN
    PERFORM fail_unsafe('the open holds', 'amount');
  END IF;
  INSERT INTO holds (id, user_id, counter_key, meter_key, amount, status, expires_at, model, token_prices, metadata)
  VALUES (p_hold_id, p_user, p_counter, p_meter, p_amount, 'open', exp, p_model, p_token_prices, p_metadata);
  INSERT INTO entries (user_id, counter_key, kind, amount, hold_id, meter_key, model, metadata)
  VALUES (p_user, p_counter, 'reserve', p_amount, p_hold_id, p_meter, p_model, p_metadata);
  res := jsonb_build_object('allowed', true, 'reservationId', p_hold_id, 'remaining', avail - p_amount,
    'expiresAt', to_char(exp AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
    'amount', p_amount, 'counter', p_counter);
  RETURN remember(p_user, p_key, p_fingerprint, res);
END $$;

-- As 0004, plus: a track refused by overage 'reject' carries `retryAfter` when waiting would help.
CREATE OR REPLACE FUNCTION op_track(p_user text, p_counter text, p_meter text, p_amount bigint, p_fine numeric,
                         p_key text, p_fingerprint text, p_hold_id text, p_model text, p_metadata jsonb) RETURNS jsonb
LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
DECLARE
  c ctx := context(p_user, p_counter);
  prior jsonb;
  amt bigint := p_amount;
  avail bigint;
  draws jsonb := '[]';
  gb jsonb;
  h holds;
  refund boolean := p_meter LIKE '%.refund';
BEGIN
  PERFORM enter(c);
  prior := replay(p_user, p_key, p_fingerprint);
  IF prior IS NOT NULL THEN RETURN prior; END IF;
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
  IF amt > 0 THEN
    IF c.overage = 'reject' THEN
      avail := available(c);
      IF avail < amt THEN
        PERFORM fail('limit_reached', format('Limit reached on %s: %s required, %s left.', p_counter, amt, greatest(avail, 0)),
          jsonb_strip_nulls(jsonb_build_object('counter', p_counter, 'remaining', greatest(avail, 0), 'required', amt,
                                               'retryAfter', retry_after(c, amt))));
      END IF;
    END IF;
    draws := draw(c, amt);
  ELSIF amt < 0 THEN
    gb := giveback(c, -amt);
    amt := -(gb ->> 'applied')::bigint;
    draws := gb -> 'draws';
    -- Credits given back to a grant are credits arriving: they pay open debts first.
    IF draws <> '[]'::jsonb THEN PERFORM collect_debts(p_user, p_counter, NULL); END IF;
  END IF;
  IF h.id IS NOT NULL AND amt < 0 THEN
    UPDATE holds SET refunded = refunded - amt WHERE id = h.id;
  END IF;
  INSERT INTO entries (user_id, counter_key, kind, amount, period_start, from_grants, hold_id, meter_key, model, metadata)
  VALUES (p_user, p_counter, CASE WHEN amt < 0 OR refund THEN 'refund' ELSE 'track' END,
          amt, c.period_start, draws, p_hold_id, p_meter, p_model, p_metadata);
  RETURN remember(p_user, p_key, p_fingerprint,
    jsonb_build_object('amount', amt, 'counter', p_counter, 'remaining', remaining_of(c)));
END $$;

-- As 0004, plus: a commit on a concurrency group frees its slot and records no usage.
CREATE OR REPLACE FUNCTION op_resolve(p_hold_id text, p_release boolean, p_actual bigint, p_usage jsonb) RETURNS jsonb
LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
DECLARE
  h holds;
  c ctx;
  charge bigint;
  fine numeric;
  draws jsonb;
  res jsonb;
  req jsonb := CASE WHEN p_release THEN NULL ELSE jsonb_build_object('actual', p_actual, 'usage', p_usage) END;
BEGIN
  SELECT * INTO h FROM holds WHERE id = p_hold_id;
  IF NOT FOUND THEN
    -- A multi-counter reservation: resolve all its parts (only on this miss; one hold is unchanged).
    IF EXISTS (SELECT 1 FROM holds WHERE group_id = p_hold_id) THEN
      IF p_actual IS NOT NULL THEN
        PERFORM fail('invalid_request', format('Reservation %s holds several counters: pass actual per meter key ({ actual: { "llm.input": 120, ... } }).', p_hold_id),
          jsonb_build_object('field', 'actual', 'reservationId', p_hold_id));
      END IF;
      RETURN op_resolve_multi(p_hold_id, p_release, NULL, p_usage);
    END IF;
    PERFORM fail('not_found', format('Unknown reservation %s.', p_hold_id), jsonb_build_object('reservationId', p_hold_id));
  END IF;
  c := context(h.user_id, h.counter_key);
  PERFORM enter(c);
  SELECT * INTO h FROM holds WHERE id = p_hold_id;   -- again, under the lock
  -- A part of a multi-counter reservation resolves only with the others (op_resolve_multi sets
  -- the transaction-local meterkit.resolving to its id).
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
    -- The hold is still open here, so what is left once it is resolved is available + its amount.
    UPDATE holds SET status = 'released', resolved_at = clock(),
      result = jsonb_build_object('reservationId', h.id, 'userId', h.user_id, 'status', 'released', 'released', h.amount,
                                  'remaining', remaining_of(c, h.amount))
    WHERE id = h.id RETURNING result INTO res;
    INSERT INTO entries (user_id, counter_key, kind, amount, hold_id, meter_key, model)
    VALUES (h.user_id, h.counter_key, 'release', h.amount, h.id, h.meter_key, h.model);
  ELSE
    IF c.kind = 'concurrency' THEN
      -- A slot records no usage: committing frees it, like a release.
      charge := 0;
    ELSIF p_usage IS NOT NULL THEN
      IF h.token_prices IS NULL THEN
        IF c.unit = 'cents' THEN
          PERFORM fail('invalid_request', format('Reservation %s has no model prices to convert token usage to %s; commit { actual } instead.', h.id, c.unit),
            jsonb_build_object('reservationId', h.id));
        END IF;
        IF (p_usage ->> 'inputTokens')::numeric + (p_usage ->> 'outputTokens')::numeric > max_safe() THEN
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
    draws := CASE WHEN charge > 0 THEN draw(c, charge) ELSE '[]'::jsonb END;
    UPDATE holds SET status = 'committed', resolved_at = clock(), request = req,
      result = jsonb_build_object('reservationId', h.id, 'userId', h.user_id, 'status', 'committed', 'held', h.amount,
        'committed', charge, 'refunded', greatest(h.amount - charge, 0), 'overage', greatest(charge - h.amount, 0),
        'remaining', remaining_of(c, h.amount))
    WHERE id = h.id RETURNING result INTO res;
    INSERT INTO entries (user_id, counter_key, kind, amount, period_start, from_grants, hold_id, meter_key, model, metadata)
    VALUES (h.user_id, h.counter_key, 'commit', charge, c.period_start, draws, h.id, h.meter_key, h.model,
      jsonb_build_object('held', h.amount, 'refunded', greatest(h.amount - charge, 0), 'overage', greatest(charge - h.amount, 0)));
  END IF;
  RETURN res;
END $$;

-- As 0004, plus: a concurrency group reports `kind`, its slots in flight as `held`, `used` 0
-- and `remaining` = quota - held.
CREATE OR REPLACE FUNCTION op_usage(p_user text) RETURNS jsonb
LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
DECLARE
  s subscriptions;
  dp text;
BEGIN
  SELECT * INTO s FROM subscriptions WHERE user_id = p_user;
  IF NOT FOUND THEN
    SELECT value INTO dp FROM settings WHERE key = 'default_plan';
    IF dp IS NULL THEN
      PERFORM fail('not_found', format('Unknown user %s: no subscription and no default plan.', p_user), jsonb_build_object('userId', p_user));
    END IF;
    s.user_id := p_user; s.plan_id := dp; s.custom_limits := '{}'; s.started_at := clock();
  END IF;
  RETURN (
    WITH g AS (
      SELECT lg.*, CASE WHEN s.custom_limits -> lg.key ? 'quota' THEN (s.custom_limits -> lg.key ->> 'quota')::bigint ELSE lg.quota END AS q,
             (period_bounds(lg.period, lg.anchor, s.started_at, clock())).*
      FROM limit_groups lg WHERE lg.plan_id = s.plan_id
    ), rows AS (
      SELECT g.*, coalesce(b.used, 0) AS used, coalesce(b.used_from_grants, 0) AS ufg,
        coalesce((SELECT sum(remaining) FROM grants gr WHERE gr.user_id = p_user AND gr.counter_key = g.key
                  AND (gr.expires_at IS NULL OR gr.expires_at > clock())), 0)::bigint AS grants_left,
        -- A concurrency group holds one slot per open hold.
        coalesce((SELECT CASE WHEN g.kind = 'concurrency' THEN count(*) ELSE sum(amount) END FROM holds h
                  WHERE h.user_id = p_user AND h.counter_key = g.key
                  AND h.status = 'open' AND h.expires_at > clock()), 0)::bigint AS held,
        (SELECT sum(d.remaining) FROM debts d WHERE d.user_id = p_user AND d.counter_key = g.key AND d.remaining > 0)::bigint AS debt
      FROM g
      LEFT JOIN balances b ON b.user_id = p_user AND b.counter_key = g.key AND b.period_start = g.period_start
    ), newest AS (
      SELECT id, created_at FROM entries WHERE user_id = p_user ORDER BY id DESC LIMIT 1
    )
    SELECT jsonb_build_object(
      'userId', p_user, 'planId', s.plan_id,
      'version', greatest(coalesce((SELECT id FROM newest), 0), coalesce(s.version, 0)),
      'updatedAt', to_char(coalesce(greatest((SELECT created_at FROM newest), s.updated_at), clock()) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
      'counters', coalesce(jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
        'key', key, 'label', label, 'unit', unit, 'currency', currency,
        'granted', CASE WHEN kind = 'concurrency' THEN 0 ELSE grants_left + ufg END, 'used', used, 'held', held, 'debt', debt,
        'kind', CASE WHEN kind = 'concurrency' THEN kind END))
        || jsonb_build_object(
        'quota', q,
        'remaining', CASE WHEN q IS NULL THEN NULL WHEN kind = 'concurrency' THEN greatest(0, q - held)
                          ELSE greatest(0, greatest(0, q - (used - ufg)) + grants_left - held) END,
        'periodStart', CASE WHEN isfinite(period_start) THEN to_char(period_start AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') END,
        'periodEnd', CASE WHEN isfinite(period_end) THEN to_char(period_end AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') END)
        ORDER BY key), '[]'::jsonb))
    FROM rows
  );
END $$;

-- As 0001, plus the group's kind.
CREATE OR REPLACE FUNCTION sync_config(p_plans jsonb, p_default_plan text) RETURNS void
LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
DECLARE
  p record;
  g record;
BEGIN
  PERFORM pg_advisory_xact_lock(lock_key('', 'config'));
  FOR p IN SELECT key, value FROM jsonb_each(p_plans) LOOP
    INSERT INTO plans (id, label) VALUES (p.key, p.value ->> 'label')
      ON CONFLICT (id) DO UPDATE SET label = excluded.label;
    DELETE FROM limit_groups WHERE plan_id = p.key AND NOT (p.value -> 'limits') ? key;
    FOR g IN SELECT key, value FROM jsonb_each(p.value -> 'limits') LOOP
      INSERT INTO limit_groups (plan_id, key, label, unit, currency, quota, period, anchor, overage, kind)
      VALUES (p.key, g.key, g.value ->> 'label', g.value ->> 'unit', g.value ->> 'currency', (g.value ->> 'quota')::bigint,
              g.value ->> 'period', g.value ->> 'anchor', g.value ->> 'overage', coalesce(g.value ->> 'kind', 'quota'))
      ON CONFLICT (plan_id, key) DO UPDATE SET label = excluded.label, unit = excluded.unit, currency = excluded.currency,
        quota = excluded.quota, period = excluded.period, anchor = excluded.anchor, overage = excluded.overage, kind = excluded.kind;
    END LOOP;
  END LOOP;
  INSERT INTO settings (key, value) VALUES ('default_plan', p_default_plan)
    ON CONFLICT (key) DO UPDATE SET value = excluded.value;
END $$;

-- ---------------------------------------------------------------------------------------
-- Multi-counter reservations: one reservation id holding amounts on several counters, all or
-- nothing. Each counter gets its own hold row (id = reservation id || '.' || counter, group_id =
-- the reservation id), so every single-counter rule (expiry, commit pricing, audit) applies to
-- each part unchanged. The locks of every counter are taken in lock-key order: no deadlock.

-- group_id: the multi-counter reservation this hold is a part of. usage_part: which side of a
-- commit's { usage } this part counts ('input' or 'output'; NULL = both).
ALTER TABLE holds ADD COLUMN group_id text;
ALTER TABLE holds ADD COLUMN usage_part text CHECK (usage_part IN ('input', 'output'));
CREATE INDEX holds_group ON holds (group_id) WHERE group_id IS NOT NULL;

-- p_parts: [{counter, meter, amount, tokenPrices, usagePart}], at most one per counter.
CREATE FUNCTION op_reserve_multi(p_user text, p_parts jsonb, p_ttl_ms bigint, p_key text, p_fingerprint text,
                                 p_hold_id text, p_model text, p_metadata jsonb) RETURNS jsonb
LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
DECLARE
  part record;
  c ctx;
  cs ctx[] := '{}';
  amounts bigint[] := '{}';
  prior jsonb;
  avail bigint;
  amt bigint;
  exp timestamptz;
  parts jsonb := '{}';
  i int;
BEGIN
  -- Contexts first (they may fail with not_found before any lock), then the locks in key order.
  FOR part IN SELECT p ->> 'counter' AS counter FROM jsonb_array_elements(p_parts) p
              ORDER BY lock_key(p_user, p ->> 'counter') LOOP
    c := context(p_user, part.counter);
    PERFORM enter(c);
    cs := cs || c;
  END LOOP;
  prior := replay(p_user, p_key, p_fingerprint);
  IF prior IS NOT NULL THEN RETURN prior; END IF;
  exp := clock() + p_ttl_ms * interval '1 millisecond';
  -- Every counter is checked before anything is written: a denial names the first that fails.
  FOR i IN 1 .. array_length(cs, 1) LOOP
    c := cs[i];
    SELECT CASE WHEN c.kind = 'concurrency' THEN 1 ELSE (p ->> 'amount')::bigint END INTO amt
    FROM jsonb_array_elements(p_parts) p WHERE p ->> 'counter' = c.counter_key;
    amounts := amounts || amt;
    avail := available(c, exp);
    IF avail < amt THEN
      RETURN remember(p_user, p_key, p_fingerprint, jsonb_strip_nulls(jsonb_build_object(
        'allowed', false, 'reason', 'limit_reached', 'remaining', greatest(avail, 0),
        'required', amt, 'counter', c.counter_key, 'retryAfter', retry_after(c, amt))));
    END IF;
    IF c.quota IS NULL AND (SELECT coalesce(sum(amount), 0) FROM holds WHERE user_id = p_user AND counter_key = c.counter_key
                            AND status = 'open' AND expires_at > clock()) + amt > max_safe() THEN
      PERFORM fail_unsafe('the open holds', 'amount');
    END IF;
  END LOOP;
  FOR i IN 1 .. array_length(cs, 1) LOOP
    c := cs[i];
    amt := amounts[i];
    SELECT p ->> 'meter' AS meter, p -> 'tokenPrices' AS tp, p ->> 'usagePart' AS up INTO part
    FROM jsonb_array_elements(p_parts) p WHERE p ->> 'counter' = c.counter_key;
    INSERT INTO holds (id, user_id, counter_key, meter_key, amount, status, expires_at, model, token_prices, metadata, group_id, usage_part)
    VALUES (p_hold_id || '.' || c.counter_key, p_user, c.counter_key, part.meter, amt, 'open', exp, p_model,
            nullif(part.tp, 'null'::jsonb), p_metadata, p_hold_id, part.up);
    INSERT INTO entries (user_id, counter_key, kind, amount, hold_id, meter_key, model, metadata)
    VALUES (p_user, c.counter_key, 'reserve', amt, p_hold_id || '.' || c.counter_key, part.meter, p_model, p_metadata);
    parts := parts || jsonb_build_object(c.counter_key, jsonb_build_object('amount', amt, 'meterKey', part.meter,
      'remaining', CASE WHEN c.quota IS NULL THEN NULL ELSE available(c) END));
  END LOOP;
  RETURN remember(p_user, p_key, p_fingerprint, jsonb_build_object('allowed', true, 'reservationId', p_hold_id,
    'expiresAt', to_char(exp AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'), 'parts', parts));
END $$;

-- Resolves every part of a multi-counter reservation under all its locks (key order), each by
-- op_resolve (whose own lock is then re-entrant). p_actual: meter key or counter key → amount
-- (a part not named commits its whole hold). p_usage: each part counts its usage_part side.
-- One part in conflict raises, so nothing is written. The result sums held, committed,
-- refunded and overage (meaningful when the parts share a unit), `remaining` is the least of
-- the limited parts, and `parts` has each part's own result by counter.
CREATE FUNCTION op_resolve_multi(p_group text, p_release boolean, p_actual jsonb, p_usage jsonb) RETURNS jsonb
LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
DECLARE
  h record;
  r jsonb;
  parts jsonb := '{}';
  usage jsonb;
  act bigint;
  uid text;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM holds WHERE group_id = p_group) THEN
    IF EXISTS (SELECT 1 FROM holds WHERE id = p_group) THEN
      PERFORM fail('invalid_request', format('Reservation %s holds one counter: pass actual as a number.', p_group),
        jsonb_build_object('field', 'actual', 'reservationId', p_group));
    END IF;
    PERFORM fail('not_found', format('Unknown reservation %s.', p_group), jsonb_build_object('reservationId', p_group));
  END IF;
  FOR h IN SELECT * FROM holds WHERE group_id = p_group ORDER BY lock_key(user_id, counter_key) LOOP
    PERFORM enter(context(h.user_id, h.counter_key));
  END LOOP;
  PERFORM set_config('meterkit.resolving', p_group, true);
  FOR h IN SELECT * FROM holds WHERE group_id = p_group ORDER BY counter_key LOOP
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
