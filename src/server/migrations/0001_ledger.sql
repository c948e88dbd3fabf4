-- The ledger. Runs with search_path set to the meter's schema; functions keep that schema
-- through `SET search_path FROM CURRENT`, so the SQL names no schema itself.

-- The database clock. The session setting `meterkit.clock` (a timestamp; never set in
-- production) freezes it for tests; being per session, it cannot leak to other connections.
CREATE FUNCTION clock() RETURNS timestamptz
LANGUAGE sql STABLE AS $$
  SELECT coalesce(nullif(pg_catalog.current_setting('meterkit.clock', true), '')::timestamptz, pg_catalog.now())
$$;

CREATE TABLE plans (
  id text PRIMARY KEY,
  label text NOT NULL
);

CREATE TABLE limit_groups (
  plan_id text NOT NULL REFERENCES plans (id),
  key text NOT NULL,
  label text NOT NULL,
  unit text NOT NULL,
  currency text,
  quota bigint NOT NULL CHECK (quota >= 0),
  period text NOT NULL CHECK (period IN ('month', 'week', 'day', 'none')),
  anchor text NOT NULL CHECK (anchor IN ('calendar', 'subscription_start')),
  overage text NOT NULL CHECK (overage IN ('record', 'reject')),
  PRIMARY KEY (plan_id, key)
);

CREATE TABLE settings (
  key text PRIMARY KEY,
  value text
);

CREATE TABLE subscriptions (
  user_id text PRIMARY KEY,
  plan_id text NOT NULL REFERENCES plans (id),
  custom_limits jsonb NOT NULL DEFAULT '{}',
  started_at timestamptz NOT NULL,
  version bigint NOT NULL DEFAULT 0,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- One row per (user, counter) of a cents counter: the rounding carry.
CREATE TABLE counters (
  user_id text NOT NULL,
  counter_key text NOT NULL,
  carry numeric NOT NULL DEFAULT 0,   -- fine units (10^-16 of the base unit), 0 <= carry < 10^16
  PRIMARY KEY (user_id, counter_key)
);

-- Usage per period: a projection of the entries (audit() recomputes it).
CREATE TABLE balances (
  user_id text NOT NULL,
  counter_key text NOT NULL,
  period_start timestamptz NOT NULL,  -- '-infinity' for period 'none'
  period_end timestamptz NOT NULL,    -- 'infinity' for period 'none'
  used bigint NOT NULL DEFAULT 0,
  used_from_grants bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (user_id, counter_key, period_start)
);

CREATE TABLE grants (
  id text PRIMARY KEY,
  user_id text NOT NULL,
  counter_key text NOT NULL,
  amount bigint NOT NULL,
  remaining bigint NOT NULL,
  expires_at timestamptz,
  source text NOT NULL,
  metadata jsonb,
  created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX grants_user ON grants (user_id, counter_key);

CREATE TABLE holds (
  id text PRIMARY KEY,
  user_id text NOT NULL,
  counter_key text NOT NULL,
  meter_key text NOT NULL,
  amount bigint NOT NULL CHECK (amount > 0),
  status text NOT NULL CHECK (status IN ('open', 'committed', 'released', 'expired')),
  expires_at timestamptz NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  resolved_at timestamptz,
  model text,
  -- Fine units per token for converting a commit's token counts to money: {"unit", "input", "cachedInput", "output"}.
  token_prices jsonb,
  metadata jsonb,
  result jsonb
);
CREATE INDEX holds_open ON holds (user_id, counter_key, expires_at) WHERE status = 'open';
CREATE INDEX holds_open_expiry ON holds (expires_at) WHERE status = 'open';

-- Append-only: every change to a balance, grant or hold.
CREATE TABLE entries (
  id bigserial PRIMARY KEY,
  user_id text NOT NULL,
  counter_key text NOT NULL,
  kind text NOT NULL CHECK (kind IN ('reserve', 'commit', 'release', 'expire', 'track', 'refund', 'grant', 'adjust', 'clawback')),
  amount bigint NOT NULL,
  -- For usage entries: the period charged, and how the amount split between allowance and grants.
  period_start timestamptz,
  from_grants jsonb,
  hold_id text,
  grant_id text,
  meter_key text,
  model text,
  metadata jsonb,
  created_at timestamptz NOT NULL DEFAULT clock()
);
CREATE INDEX entries_user ON entries (user_id, id);
CREATE INDEX entries_clawback ON entries (grant_id) WHERE kind = 'clawback';

CREATE TABLE idempotency (
  user_id text NOT NULL,
  key text NOT NULL,
  fingerprint text NOT NULL,
  result jsonb NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, key)
);

-- ---------------------------------------------------------------------------------------
-- Errors: RAISE with MESSAGE = text, DETAIL = meterkit error code, HINT = JSON details.

CREATE FUNCTION fail(code text, message text, details jsonb DEFAULT '{}') RETURNS void
LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
  RAISE EXCEPTION USING ERRCODE = 'P0001', MESSAGE = message, DETAIL = 'meterkit:' || code, HINT = details::text;
END $$;

-- ---------------------------------------------------------------------------------------
-- Periods (mirrors src/core/periods.ts; the tests check both agree).

CREATE FUNCTION month_anchor(a timestamptz, k int) RETURNS timestamptz
LANGUAGE sql IMMUTABLE
SET search_path FROM CURRENT AS $$
  SELECT (
    date_trunc('month', a AT TIME ZONE 'UTC') + make_interval(months => k)
    + make_interval(days => least(
        extract(day FROM a AT TIME ZONE 'UTC')::int,
        extract(day FROM date_trunc('month', a AT TIME ZONE 'UTC') + make_interval(months => k + 1) - interval '1 day')::int
      ) - 1)
    + ((a AT TIME ZONE 'UTC') - date_trunc('day', a AT TIME ZONE 'UTC'))
  ) AT TIME ZONE 'UTC'
$$;

CREATE FUNCTION period_bounds(p_period text, p_anchor text, p_started timestamptz, p_now timestamptz,
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
  IF p_period IN ('day', 'week') THEN
    len := CASE p_period WHEN 'day' THEN interval '1 day' ELSE interval '7 days' END;
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
-- The context of one (user, counter): its limits and current period. Unknown user → the
-- default plan when one is configured, else not_found.

CREATE TYPE ctx AS (
  user_id text, counter_key text, plan_id text, unit text, quota bigint, overage text,
  period_start timestamptz, period_end timestamptz
);

CREATE FUNCTION context(p_user text, p_counter text) RETURNS ctx
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
  -- One read for the subscription and its limit group.
  SELECT sub.plan_id, sub.started_at, sub.custom_limits, lg.key, lg.unit, lg.quota, lg.period, lg.anchor, lg.overage
    INTO c.plan_id, started, custom, g_key, c.unit, g_quota, g_period, g_anchor, c.overage
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
    SELECT sub.plan_id, sub.started_at, sub.custom_limits, lg.key, lg.unit, lg.quota, lg.period, lg.anchor, lg.overage
      INTO c.plan_id, started, custom, g_key, c.unit, g_quota, g_period, g_anchor, c.overage
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
  c.quota := coalesce((custom -> p_counter ->> 'quota')::bigint, g_quota);
  RETURN c;
END $$;

-- 64-bit advisory lock key for (schema, user, counter): not the 32-bit hashtext.
CREATE FUNCTION lock_key(p_user text, p_counter text) RETURNS bigint
LANGUAGE plpgsql IMMUTABLE
SET search_path FROM CURRENT AS $$
BEGIN
  RETURN ('x' || left(md5(current_schema() || chr(31) || p_user || chr(31) || p_counter), 16))::bit(64)::bigint;
END $$;

-- Takes the (user, counter) lock, records the expiry of holds that ran out, and makes sure the
-- current balance row exists. Call first in every write.
CREATE FUNCTION enter(c ctx) RETURNS void
LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
  PERFORM set_config('lock_timeout', coalesce(current_setting('meterkit.lock_timeout', true), '5s'), true);
  PERFORM pg_advisory_xact_lock(lock_key(c.user_id, c.counter_key));
  IF EXISTS (SELECT 1 FROM holds WHERE user_id = c.user_id AND counter_key = c.counter_key
             AND status = 'open' AND expires_at <= clock()) THEN
    WITH ex AS (
      UPDATE holds SET status = 'expired', resolved_at = expires_at,
        result = jsonb_build_object('reservationId', id, 'userId', user_id, 'status', 'expired', 'expired', amount)
      WHERE user_id = c.user_id AND counter_key = c.counter_key AND status = 'open' AND expires_at <= clock()
      RETURNING id, amount, meter_key
    )
    INSERT INTO entries (user_id, counter_key, kind, amount, hold_id, meter_key)
    SELECT c.user_id, c.counter_key, 'expire', amount, id, meter_key FROM ex;
  END IF;
  PERFORM 1 FROM balances WHERE user_id = c.user_id AND counter_key = c.counter_key AND period_start = c.period_start;
  IF NOT FOUND THEN
    INSERT INTO balances (user_id, counter_key, period_start, period_end)
    VALUES (c.user_id, c.counter_key, c.period_start, c.period_end) ON CONFLICT DO NOTHING;
  END IF;
END $$;

-- What the user can still spend on this counter (may be negative with overage or debt),
-- counting only grants that are still valid at `p_until`: a hold is admitted only against
-- credits that outlive it, so a grant expiring under an open hold cannot leave it uncovered.
CREATE FUNCTION available(c ctx, p_until timestamptz) RETURNS bigint
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT AS $$
-- plpgsql rather than sql: its plans are cached per session (a non-inlined SQL function is
-- planned again on every call before PostgreSQL 18).
DECLARE
  allowance bigint;
  grants_left bigint;
  held bigint;
BEGIN
  SELECT greatest(0, c.quota - (b.used - b.used_from_grants)) INTO allowance
  FROM balances b WHERE b.user_id = c.user_id AND b.counter_key = c.counter_key AND b.period_start = c.period_start;
  SELECT coalesce(sum(remaining), 0) INTO grants_left FROM grants
  WHERE user_id = c.user_id AND counter_key = c.counter_key AND (expires_at IS NULL OR expires_at > p_until);
  SELECT coalesce(sum(amount), 0) INTO held FROM holds
  WHERE user_id = c.user_id AND counter_key = c.counter_key AND status = 'open' AND expires_at > clock();
  RETURN coalesce(allowance, greatest(c.quota, 0)) + grants_left - held;
END $$;

CREATE FUNCTION available(c ctx) RETURNS bigint
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT AS $$
BEGIN
  RETURN available(c, clock());
END $$;

-- Charges `amount` (> 0) as usage: allowance first, then grants soonest-expiring first, then
-- overage. Returns the grant draws as [{grantId, amount}].
CREATE FUNCTION draw(c ctx, p_amount bigint) RETURNS jsonb
LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
DECLARE
  b balances;
  rest bigint;
  take bigint;
  g record;
  draws jsonb := '[]';
  from_grants bigint := 0;
BEGIN
  SELECT * INTO b FROM balances WHERE user_id = c.user_id AND counter_key = c.counter_key AND period_start = c.period_start;
  rest := p_amount - least(p_amount, greatest(0, c.quota - (b.used - b.used_from_grants)));
  IF rest > 0 THEN
    FOR g IN SELECT id, remaining FROM grants
             WHERE user_id = c.user_id AND counter_key = c.counter_key AND remaining > 0
               AND (expires_at IS NULL OR expires_at > clock())
             ORDER BY expires_at ASC NULLS LAST, created_at, id
    LOOP
      EXIT WHEN rest = 0;
      take := least(rest, g.remaining);
      UPDATE grants SET remaining = remaining - take WHERE id = g.id;
      draws := draws || jsonb_build_object('grantId', g.id, 'amount', take);
      from_grants := from_grants + take;
      rest := rest - take;
    END LOOP;
  END IF;
  UPDATE balances SET used = used + p_amount, used_from_grants = used_from_grants + from_grants
  WHERE user_id = c.user_id AND counter_key = c.counter_key AND period_start = c.period_start;
  RETURN draws;
END $$;

-- Gives back up to `amount` (> 0) of this period's usage: to the grants it drew from first
-- (latest-expiring first), then to the allowance. Credits a clawback took from a grant (a
-- refunded pack) were never spent there, so they are no room to give back to. Returns
-- {"applied", "draws"} where draws are negative amounts put back on grants.
CREATE FUNCTION giveback(c ctx, p_amount bigint) RETURNS jsonb
LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
DECLARE
  b balances;
  rest bigint;
  take bigint;
  g record;
  draws jsonb := '[]';
  to_grants bigint := 0;
  applied bigint;
BEGIN
  SELECT * INTO b FROM balances WHERE user_id = c.user_id AND counter_key = c.counter_key AND period_start = c.period_start;
  applied := least(p_amount, b.used);
  rest := least(applied, b.used_from_grants);
  IF rest > 0 THEN
    FOR g IN SELECT gr.id, gr.amount - gr.remaining - coalesce(cb.clawed, 0) AS spent FROM grants gr
             LEFT JOIN LATERAL (SELECT sum(e.amount) AS clawed FROM entries e
                                WHERE e.grant_id = gr.id AND e.kind = 'clawback') cb ON true
             WHERE gr.user_id = c.user_id AND gr.counter_key = c.counter_key AND gr.remaining < gr.amount
               AND (gr.expires_at IS NULL OR gr.expires_at > clock())
             ORDER BY gr.expires_at DESC NULLS FIRST, gr.created_at DESC, gr.id DESC
    LOOP
      EXIT WHEN rest = 0;
      CONTINUE WHEN g.spent <= 0;
      take := least(rest, g.spent);
      UPDATE grants SET remaining = remaining + take WHERE id = g.id;
      draws := draws || jsonb_build_object('grantId', g.id, 'amount', -take);
      to_grants := to_grants + take;
      rest := rest - take;
    END LOOP;
  END IF;
  UPDATE balances SET used = used - applied, used_from_grants = used_from_grants - to_grants
  WHERE user_id = c.user_id AND counter_key = c.counter_key AND period_start = c.period_start;
  RETURN jsonb_build_object('applied', applied, 'draws', draws);
END $$;

-- Rounds a fine amount (10^-16 base units, may be negative) to whole units with the counter's carry.
CREATE FUNCTION round_fine(c ctx, fine numeric) RETURNS bigint
LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
DECLARE
  total numeric;
  whole numeric;
BEGIN
  INSERT INTO counters (user_id, counter_key) VALUES (c.user_id, c.counter_key) ON CONFLICT DO NOTHING;
  SELECT carry + fine INTO total FROM counters WHERE user_id = c.user_id AND counter_key = c.counter_key;
  whole := floor(total / 1e16);
  UPDATE counters SET carry = total - whole * 1e16 WHERE user_id = c.user_id AND counter_key = c.counter_key;
  RETURN whole::bigint;
END $$;

-- Idempotency: the stored result for (user, key), or NULL. A different fingerprint is a conflict.
CREATE FUNCTION replay(p_user text, p_key text, p_fingerprint text) RETURNS jsonb
LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
DECLARE
  r idempotency;
BEGIN
  IF p_key IS NULL THEN RETURN NULL; END IF;
  SELECT * INTO r FROM idempotency WHERE user_id = p_user AND key = p_key;
  IF NOT FOUND THEN RETURN NULL; END IF;
  IF r.fingerprint <> p_fingerprint THEN
    PERFORM fail('conflict', format('Idempotency key %s was already used with different arguments.', p_key), jsonb_build_object('idempotencyKey', p_key));
  END IF;
  RETURN r.result;
END $$;

CREATE FUNCTION remember(p_user text, p_key text, p_fingerprint text, p_result jsonb) RETURNS jsonb
LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
  IF p_key IS NOT NULL THEN
    INSERT INTO idempotency (user_id, key, fingerprint, result) VALUES (p_user, p_key, p_fingerprint, p_result);
  END IF;
  RETURN p_result;
END $$;

-- ---------------------------------------------------------------------------------------
-- The operations. Each is one statement from the application: one round trip, the lock taken
-- and released inside Postgres.

CREATE FUNCTION op_reserve(p_user text, p_counter text, p_meter text, p_amount bigint, p_ttl_ms bigint,
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
  avail := available(c, exp);
  IF avail < p_amount THEN
    RETURN remember(p_user, p_key, p_fingerprint, jsonb_build_object(
      'allowed', false, 'reason', 'limit_reached', 'remaining', greatest(avail, 0),
      'required', p_amount, 'counter', p_counter));
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

-- Resolves a hold. p_actual NULL = the whole hold (commit) ; p_usage converts token counts
-- with the hold's token prices; p_release true = give it all back.
CREATE FUNCTION op_resolve(p_hold_id text, p_release boolean, p_actual bigint, p_usage jsonb) RETURNS jsonb
LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
DECLARE
  h holds;
  c ctx;
  charge bigint;
  fine numeric;
  draws jsonb;
  res jsonb;
BEGIN
  SELECT * INTO h FROM holds WHERE id = p_hold_id;
  IF NOT FOUND THEN
    PERFORM fail('not_found', format('Unknown reservation %s.', p_hold_id), jsonb_build_object('reservationId', p_hold_id));
  END IF;
  c := context(h.user_id, h.counter_key);
  PERFORM enter(c);
  SELECT * INTO h FROM holds WHERE id = p_hold_id;   -- again, under the lock
  IF h.status = 'committed' AND NOT p_release OR h.status = 'released' AND p_release THEN
    RETURN h.result;
  END IF;
  IF h.status <> 'open' THEN
    PERFORM fail('conflict', format('Reservation %s is already %s.', p_hold_id, h.status),
      jsonb_build_object('reservationId', p_hold_id, 'reason', h.status, 'expiresAt',
        to_char(h.expires_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')));
  END IF;
  IF p_release THEN
    -- The hold is still open here, so what is left once it is resolved is available + its amount.
    UPDATE holds SET status = 'released', resolved_at = clock(),
      result = jsonb_build_object('reservationId', h.id, 'userId', h.user_id, 'status', 'released', 'released', h.amount,
                                  'remaining', greatest(available(c) + h.amount, 0))
    WHERE id = h.id RETURNING result INTO res;
    INSERT INTO entries (user_id, counter_key, kind, amount, hold_id, meter_key, model)
    VALUES (h.user_id, h.counter_key, 'release', h.amount, h.id, h.meter_key, h.model);
  ELSE
    IF p_usage IS NOT NULL THEN
      IF h.token_prices IS NULL THEN
        IF c.unit = 'cents' THEN
          PERFORM fail('invalid_request', format('Reservation %s has no model prices to convert token usage to %s; commit { actual } instead.', h.id, c.unit),
            jsonb_build_object('reservationId', h.id));
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
    UPDATE holds SET status = 'committed', resolved_at = clock(),
      result = jsonb_build_object('reservationId', h.id, 'userId', h.user_id, 'status', 'committed', 'held', h.amount,
        'committed', charge, 'refunded', greatest(h.amount - charge, 0), 'overage', greatest(charge - h.amount, 0),
        'remaining', greatest(available(c) + h.amount, 0))
    WHERE id = h.id RETURNING result INTO res;
    INSERT INTO entries (user_id, counter_key, kind, amount, period_start, from_grants, hold_id, meter_key, model, metadata)
    VALUES (h.user_id, h.counter_key, 'commit', charge, c.period_start, draws, h.id, h.meter_key, h.model,
      jsonb_build_object('held', h.amount, 'refunded', greatest(h.amount - charge, 0), 'overage', greatest(charge - h.amount, 0)));
  END IF;
  RETURN res;
END $$;

-- Usage without a hold (p_amount > 0), or a refund (p_amount < 0). p_fine, when given, is the
-- exact amount in fine units and p_amount is ignored.
CREATE FUNCTION op_track(p_user text, p_counter text, p_meter text, p_amount bigint, p_fine numeric,
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
BEGIN
  PERFORM enter(c);
  prior := replay(p_user, p_key, p_fingerprint);
  IF prior IS NOT NULL THEN RETURN prior; END IF;
  IF p_fine IS NOT NULL THEN amt := round_fine(c, p_fine); END IF;
  IF amt > 0 THEN
    IF c.overage = 'reject' THEN
      avail := available(c);
      IF avail < amt THEN
        PERFORM fail('limit_reached', format('Limit reached on %s: %s required, %s left.', p_counter, amt, greatest(avail, 0)),
          jsonb_build_object('counter', p_counter, 'remaining', greatest(avail, 0), 'required', amt));
      END IF;
    END IF;
    draws := draw(c, amt);
  ELSIF amt < 0 THEN
    gb := giveback(c, -amt);
    amt := -(gb ->> 'applied')::bigint;
    draws := gb -> 'draws';
  END IF;
  INSERT INTO entries (user_id, counter_key, kind, amount, period_start, from_grants, hold_id, meter_key, model, metadata)
  VALUES (p_user, p_counter, CASE WHEN amt < 0 OR p_meter LIKE '%.refund' THEN 'refund' ELSE 'track' END,
          amt, c.period_start, draws, p_hold_id, p_meter, p_model, p_metadata);
  RETURN remember(p_user, p_key, p_fingerprint,
    jsonb_build_object('amount', amt, 'counter', p_counter, 'remaining', greatest(available(c), 0)));
END $$;

CREATE FUNCTION op_grant(p_user text, p_counter text, p_amount bigint, p_key text, p_fingerprint text,
                         p_grant_id text, p_expires timestamptz, p_source text, p_metadata jsonb) RETURNS jsonb
LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
DECLARE
  c ctx := context(p_user, p_counter);
  prior jsonb;
BEGIN
  PERFORM enter(c);
  prior := replay(p_user, p_key, p_fingerprint);
  IF prior IS NOT NULL THEN RETURN prior; END IF;
  INSERT INTO grants (id, user_id, counter_key, amount, remaining, expires_at, source, metadata)
  VALUES (p_grant_id, p_user, p_counter, p_amount, p_amount, p_expires, p_source, p_metadata);
  INSERT INTO entries (user_id, counter_key, kind, amount, grant_id, metadata)
  VALUES (p_user, p_counter, 'grant', p_amount, p_grant_id, jsonb_build_object('source', p_source));
  RETURN remember(p_user, p_key, p_fingerprint,
    jsonb_build_object('grantId', p_grant_id, 'amount', p_amount, 'counter', p_counter, 'remaining', greatest(available(c), 0)));
END $$;

-- A support correction of the balance: delta > 0 gives back usage (any excess becomes a
-- non-expiring grant), delta < 0 charges usage.
CREATE FUNCTION op_adjust(p_user text, p_counter text, p_delta bigint, p_reason text, p_key text,
                          p_fingerprint text, p_grant_id text) RETURNS jsonb
LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
DECLARE
  c ctx := context(p_user, p_counter);
  prior jsonb;
  draws jsonb := '[]';
  gb jsonb;
  excess bigint := 0;
BEGIN
  PERFORM enter(c);
  prior := replay(p_user, p_key, p_fingerprint);
  IF prior IS NOT NULL THEN RETURN prior; END IF;
  IF p_delta < 0 THEN
    draws := draw(c, -p_delta);
  ELSE
    gb := giveback(c, p_delta);
    draws := gb -> 'draws';
    excess := p_delta - (gb ->> 'applied')::bigint;
  END IF;
  INSERT INTO entries (user_id, counter_key, kind, amount, period_start, from_grants, metadata)
  VALUES (p_user, p_counter, 'adjust', -(p_delta - excess), c.period_start, draws, jsonb_build_object('reason', p_reason));
  IF excess > 0 THEN
    INSERT INTO grants (id, user_id, counter_key, amount, remaining, source, metadata)
    VALUES (p_grant_id, p_user, p_counter, excess, excess, 'adjust', jsonb_build_object('reason', p_reason));
    INSERT INTO entries (user_id, counter_key, kind, amount, grant_id, metadata)
    VALUES (p_user, p_counter, 'grant', excess, p_grant_id, jsonb_build_object('source', 'adjust', 'reason', p_reason));
  END IF;
  RETURN remember(p_user, p_key, p_fingerprint,
    jsonb_build_object('amount', p_delta, 'counter', p_counter, 'remaining', greatest(available(c), 0)));
END $$;

-- Records expiry entries for holds that ran out (they already stopped counting at expires_at).
CREATE FUNCTION op_sweep(p_limit int) RETURNS int
LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
DECLARE
  k record;
  n int := 0;
BEGIN
  FOR k IN SELECT DISTINCT user_id, counter_key, lock_key(user_id, counter_key) AS lk FROM (
             SELECT user_id, counter_key FROM holds WHERE status = 'open' AND expires_at <= clock()
             ORDER BY expires_at LIMIT p_limit) x ORDER BY lk
  LOOP
    PERFORM pg_advisory_xact_lock(k.lk);
    WITH ex AS (
      UPDATE holds SET status = 'expired', resolved_at = expires_at,
        result = jsonb_build_object('reservationId', id, 'userId', user_id, 'status', 'expired', 'expired', amount)
      WHERE user_id = k.user_id AND counter_key = k.counter_key AND status = 'open' AND expires_at <= clock()
      RETURNING id, amount, meter_key
    ), ins AS (
      INSERT INTO entries (user_id, counter_key, kind, amount, hold_id, meter_key)
      SELECT k.user_id, k.counter_key, 'expire', amount, id, meter_key FROM ex RETURNING 1
    )
    SELECT n + count(*) INTO n FROM ins;
    PERFORM pg_notify('meterkit:' || current_schema(), k.user_id);
  END LOOP;
  RETURN n;
END $$;

-- The Usage JSON of one user: one indexed read per counter, no scan over entries.
CREATE FUNCTION op_usage(p_user text) RETURNS jsonb
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
      SELECT lg.*, coalesce((s.custom_limits -> lg.key ->> 'quota')::bigint, lg.quota) AS q,
             (period_bounds(lg.period, lg.anchor, s.started_at, clock())).*
      FROM limit_groups lg WHERE lg.plan_id = s.plan_id
    ), rows AS (
      SELECT g.*, coalesce(b.used, 0) AS used, coalesce(b.used_from_grants, 0) AS ufg,
        coalesce((SELECT sum(remaining) FROM grants gr WHERE gr.user_id = p_user AND gr.counter_key = g.key
                  AND (gr.expires_at IS NULL OR gr.expires_at > clock())), 0)::bigint AS grants_left,
        coalesce((SELECT sum(amount) FROM holds h WHERE h.user_id = p_user AND h.counter_key = g.key
                  AND h.status = 'open' AND h.expires_at > clock()), 0)::bigint AS held
      FROM g
      LEFT JOIN balances b ON b.user_id = p_user AND b.counter_key = g.key AND b.period_start = g.period_start
    ), newest AS (
      -- Every change appends an entry, so the newest entry id is the user's version.
      SELECT id, created_at FROM entries WHERE user_id = p_user ORDER BY id DESC LIMIT 1
    )
    SELECT jsonb_build_object(
      'userId', p_user, 'planId', s.plan_id,
      'version', greatest(coalesce((SELECT id FROM newest), 0), coalesce(s.version, 0)),
      'updatedAt', to_char(coalesce(greatest((SELECT created_at FROM newest), s.updated_at), clock()) AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
      'counters', coalesce(jsonb_agg(jsonb_strip_nulls(jsonb_build_object(
        'key', key, 'label', label, 'unit', unit, 'currency', currency, 'quota', q,
        'granted', grants_left + ufg, 'used', used, 'held', held,
        'remaining', greatest(0, greatest(0, q - (used - ufg)) + grants_left - held)))
        || jsonb_build_object(
        'periodStart', CASE WHEN isfinite(period_start) THEN to_char(period_start AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') END,
        'periodEnd', CASE WHEN isfinite(period_end) THEN to_char(period_end AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') END)
        ORDER BY key), '[]'::jsonb))
    FROM rows
  );
END $$;

CREATE FUNCTION op_subscribe(p_user text, p_plan text, p_custom jsonb, p_started timestamptz) RETURNS jsonb
LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
DECLARE
  s subscriptions;
BEGIN
  INSERT INTO subscriptions AS t (user_id, plan_id, custom_limits, started_at, version)
  VALUES (p_user, p_plan, coalesce(p_custom, '{}'), coalesce(p_started, clock()), nextval('entries_id_seq'))
  ON CONFLICT (user_id) DO UPDATE SET
    plan_id = excluded.plan_id,
    custom_limits = coalesce(p_custom, t.custom_limits),
    started_at = coalesce(p_started, t.started_at),
    version = excluded.version,
    updated_at = clock()
  RETURNING * INTO s;
  PERFORM pg_notify('meterkit:' || current_schema(), p_user);
  RETURN jsonb_build_object('userId', s.user_id, 'planId', s.plan_id, 'customLimits', s.custom_limits,
    'startedAt', to_char(s.started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'));
END $$;

-- Replaces the configured plans (called by migrate() and on first use). Plans no longer
-- configured stay, so subscriptions to them keep working during a rollout.
CREATE FUNCTION sync_config(p_plans jsonb, p_default_plan text) RETURNS void
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
      INSERT INTO limit_groups (plan_id, key, label, unit, currency, quota, period, anchor, overage)
      VALUES (p.key, g.key, g.value ->> 'label', g.value ->> 'unit', g.value ->> 'currency', (g.value ->> 'quota')::bigint,
              g.value ->> 'period', g.value ->> 'anchor', g.value ->> 'overage')
      ON CONFLICT (plan_id, key) DO UPDATE SET label = excluded.label, unit = excluded.unit, currency = excluded.currency,
        quota = excluded.quota, period = excluded.period, anchor = excluded.anchor, overage = excluded.overage;
    END LOOP;
  END LOOP;
  INSERT INTO settings (key, value) VALUES ('default_plan', p_default_plan)
    ON CONFLICT (key) DO UPDATE SET value = excluded.value;
END $$;
