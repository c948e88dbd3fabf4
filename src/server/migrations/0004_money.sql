-- Money rules of 0.2: debts collected exactly once, refunds capped by their reservation, one
-- resolution per hold, safe-integer bounds, and unlimited counters. Runs with search_path set to
-- the meter's schema, like 0001. Replaces functions of 0001 and 0002 with CREATE OR REPLACE
-- (same signatures), so a database migrated by 0.1 upgrades in place.

-- ---------------------------------------------------------------------------------------
-- Tables

-- Unlimited counters: a NULL quota. Usage is still recorded; nothing is ever refused.
ALTER TABLE limit_groups ALTER COLUMN quota DROP NOT NULL;

-- 'debt' records a debt created by a clawback; 'settle' records credits taken from a grant to
-- pay a debt (grant_id = the paying grant, metadata.debtId = the debt).
ALTER TABLE entries DROP CONSTRAINT entries_kind_check;
ALTER TABLE entries ADD CONSTRAINT entries_kind_check
  CHECK (kind IN ('reserve', 'commit', 'release', 'expire', 'track', 'refund', 'grant', 'adjust', 'clawback', 'debt', 'settle'));
-- Credits taken from a grant other than by spending (clawbacks and settlements), per grant.
CREATE INDEX entries_taken ON entries (grant_id) WHERE kind IN ('clawback', 'settle');

-- `refunded`: usage given back by refunds that name this hold (a projection of its refund
-- entries; audit() checks it). `request`: what the commit asked for ({actual, usage}), so a
-- repeated commit can be told from a different one.
ALTER TABLE holds ADD COLUMN refunded bigint NOT NULL DEFAULT 0;
ALTER TABLE holds ADD COLUMN request jsonb;
UPDATE holds h SET refunded = r.total
FROM (SELECT hold_id, -sum(amount) AS total FROM entries WHERE kind = 'refund' AND hold_id IS NOT NULL AND amount < 0 GROUP BY 1) r
WHERE r.hold_id = h.id;

-- What a user owes on a counter after a refunded or disputed pack whose credits were already
-- spent. `remaining` falls as credits pay it, once, to zero; it never counts against the
-- plan's allowance.
CREATE TABLE debts (
  id text PRIMARY KEY,
  user_id text NOT NULL,
  counter_key text NOT NULL,
  amount bigint NOT NULL CHECK (amount > 0),
  remaining bigint NOT NULL CHECK (remaining >= 0 AND remaining <= amount),
  payment_intent text,
  grant_id text,
  created_at timestamptz NOT NULL DEFAULT clock()
);
CREATE INDEX debts_open ON debts (user_id, counter_key, created_at) WHERE remaining > 0;

-- ---------------------------------------------------------------------------------------
-- Helpers

-- The largest amount JavaScript represents exactly (Number.MAX_SAFE_INTEGER).
CREATE FUNCTION max_safe() RETURNS bigint
LANGUAGE sql IMMUTABLE AS $$ SELECT 9007199254740991::bigint $$;

CREATE FUNCTION fail_unsafe(what text, field text) RETURNS void
LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
  PERFORM fail('invalid_request', format('Refused: %s would exceed 2^53 - 1 (Number.MAX_SAFE_INTEGER), the largest amount meterkit represents exactly.', what),
    jsonb_build_object('reason', 'max_safe_integer', 'limit', max_safe(), 'field', field));
END $$;

-- Pays the user's open debts on a counter, oldest first, from grants with credit left:
-- from `p_grant_id` only (a grant that just arrived), or from every unexpired grant in
-- spending order (soonest-expiring first) when NULL. Each credit taken is a 'settle' entry;
-- a debt's remaining never goes below zero, so no debt is collected twice. Returns the total.
CREATE FUNCTION collect_debts(p_user text, p_counter text, p_grant_id text) RETURNS bigint
LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
DECLARE
  d record;
  g record;
  owed bigint;
  take bigint;
  total bigint := 0;
BEGIN
  FOR d IN SELECT id, remaining FROM debts WHERE user_id = p_user AND counter_key = p_counter AND remaining > 0
           ORDER BY created_at, id LOOP
    owed := d.remaining;
    FOR g IN SELECT id, remaining FROM grants
             WHERE user_id = p_user AND counter_key = p_counter AND remaining > 0
               AND (expires_at IS NULL OR expires_at > clock()) AND (p_grant_id IS NULL OR id = p_grant_id)
             ORDER BY expires_at ASC NULLS LAST, created_at, id
    LOOP
      EXIT WHEN owed = 0;
      take := least(owed, g.remaining);
      UPDATE grants SET remaining = remaining - take WHERE id = g.id;
      INSERT INTO entries (user_id, counter_key, kind, amount, grant_id, metadata)
      VALUES (p_user, p_counter, 'settle', take, g.id, jsonb_build_object('debtId', d.id));
      owed := owed - take;
      total := total + take;
    END LOOP;
    IF owed < d.remaining THEN
      UPDATE debts SET remaining = owed WHERE id = d.id;
    END IF;
    EXIT WHEN owed > 0;   -- no credit left for younger debts
  END LOOP;
  RETURN total;
END $$;

-- Refuses a new grant of `p_amount` that would take the counter's credits, `granted` or
-- `remaining` past 2^53 - 1.
CREATE FUNCTION check_grant_bound(c ctx, p_amount bigint) RETURNS void
LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
DECLARE
  total numeric;
BEGIN
  SELECT coalesce(sum(remaining), 0) INTO total FROM grants WHERE user_id = c.user_id AND counter_key = c.counter_key AND remaining > 0;
  total := total + p_amount + coalesce(c.quota, 0)
         + coalesce((SELECT used_from_grants FROM balances WHERE user_id = c.user_id AND counter_key = c.counter_key AND period_start = c.period_start), 0);
  IF total > max_safe() THEN
    PERFORM fail_unsafe('the counter''s credits plus its allowance', 'amount');
  END IF;
END $$;

-- What is left to spend, as the API reports it: never negative; NULL on an unlimited counter.
CREATE FUNCTION remaining_of(c ctx, p_freed bigint DEFAULT 0) RETURNS bigint
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT AS $$
BEGIN
  IF c.quota IS NULL THEN RETURN NULL; END IF;
  RETURN greatest(available(c) + p_freed, 0);
END $$;

-- ---------------------------------------------------------------------------------------
-- Old debts (0.1 kept them as negative grants, which withheld the allowance every period):
-- move them to `debts` and collect them from the credits the user holds, exactly once.

INSERT INTO debts (id, user_id, counter_key, amount, remaining, payment_intent, grant_id, created_at)
SELECT id, user_id, counter_key, -amount, -amount, metadata ->> 'paymentIntent', metadata ->> 'grantId', created_at
FROM grants WHERE source = 'debt' AND amount < 0;
DELETE FROM grants WHERE source = 'debt' AND amount < 0;
DO $$
DECLARE
  k record;
BEGIN
  FOR k IN SELECT DISTINCT user_id, counter_key FROM debts WHERE remaining > 0 LOOP
    PERFORM pg_advisory_xact_lock(lock_key(k.user_id, k.counter_key));
    PERFORM collect_debts(k.user_id, k.counter_key, NULL);
  END LOOP;
END $$;

-- ---------------------------------------------------------------------------------------
-- The context: a custom quota may be null (unlimited) — present-and-null overrides the plan.

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
  c.quota := CASE WHEN custom -> p_counter ? 'quota' THEN (custom -> p_counter ->> 'quota')::bigint ELSE g_quota END;
  RETURN c;
END $$;

-- NULL on an unlimited counter (every comparison with it admits).
CREATE OR REPLACE FUNCTION available(c ctx, p_until timestamptz) RETURNS bigint
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT AS $$
DECLARE
  allowance bigint;
  grants_left bigint;
  held bigint;
BEGIN
  IF c.quota IS NULL THEN RETURN NULL; END IF;
  SELECT greatest(0, c.quota - (b.used - b.used_from_grants)) INTO allowance
  FROM balances b WHERE b.user_id = c.user_id AND b.counter_key = c.counter_key AND b.period_start = c.period_start;
  SELECT coalesce(sum(remaining), 0) INTO grants_left FROM grants
  WHERE user_id = c.user_id AND counter_key = c.counter_key AND (expires_at IS NULL OR expires_at > p_until);
  SELECT coalesce(sum(amount), 0) INTO held FROM holds
  WHERE user_id = c.user_id AND counter_key = c.counter_key AND status = 'open' AND expires_at > clock();
  RETURN coalesce(allowance, greatest(c.quota, 0)) + grants_left - held;
END $$;

-- As 0001, plus: an unlimited counter never draws on grants, and `used` stays a safe integer.
CREATE OR REPLACE FUNCTION draw(c ctx, p_amount bigint) RETURNS jsonb
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
  IF b.used::numeric + p_amount > max_safe() THEN
    PERFORM fail_unsafe('this period''s usage', 'amount');
  END IF;
  rest := CASE WHEN c.quota IS NULL THEN 0
               ELSE p_amount - least(p_amount, greatest(0, c.quota - (b.used - b.used_from_grants))) END;
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

-- As 0001, but credits taken by a settlement (paying a debt) were not spent there either.
CREATE OR REPLACE FUNCTION giveback(c ctx, p_amount bigint) RETURNS jsonb
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
    FOR g IN SELECT gr.id, gr.amount - gr.remaining - coalesce(cb.taken, 0) AS spent FROM grants gr
             LEFT JOIN LATERAL (SELECT sum(e.amount) AS taken FROM entries e
                                WHERE e.grant_id = gr.id AND e.kind IN ('clawback', 'settle')) cb ON true
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

-- As 0001, but an amount past 2^53 - 1 is refused rather than overflowing bigint.
CREATE OR REPLACE FUNCTION round_fine(c ctx, fine numeric) RETURNS bigint
LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
DECLARE
  total numeric;
  whole numeric;
BEGIN
  INSERT INTO counters (user_id, counter_key) VALUES (c.user_id, c.counter_key) ON CONFLICT DO NOTHING;
  SELECT carry + fine INTO total FROM counters WHERE user_id = c.user_id AND counter_key = c.counter_key;
  whole := floor(total / 1e16);
  IF abs(whole) > max_safe() THEN
    PERFORM fail_unsafe('the priced amount', 'amount');
  END IF;
  UPDATE counters SET carry = total - whole * 1e16 WHERE user_id = c.user_id AND counter_key = c.counter_key;
  RETURN whole::bigint;
END $$;

-- ---------------------------------------------------------------------------------------
-- The operations

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
  avail := available(c, exp);
  IF avail < p_amount THEN
    RETURN remember(p_user, p_key, p_fingerprint, jsonb_build_object(
      'allowed', false, 'reason', 'limit_reached', 'remaining', greatest(avail, 0),
      'required', p_amount, 'counter', p_counter));
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

-- Resolves a hold once. Repeating the same resolution returns the first result: a release
-- after a release, a commit with the same request ({actual, usage}, as normalised by the API)
-- after a commit. Anything else is a conflict carrying the first result.
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
    PERFORM fail('not_found', format('Unknown reservation %s.', p_hold_id), jsonb_build_object('reservationId', p_hold_id));
  END IF;
  c := context(h.user_id, h.counter_key);
  PERFORM enter(c);
  SELECT * INTO h FROM holds WHERE id = p_hold_id;   -- again, under the lock
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
    IF p_usage IS NOT NULL THEN
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

-- As 0001, plus: a refund that names a reservation must be one of this user's committed holds
-- on this counter, and gives back at most what it committed minus earlier refunds against it.
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
          jsonb_build_object('counter', p_counter, 'remaining', greatest(avail, 0), 'required', amt));
      END IF;
    END IF;
    draws := draw(c, amt);
  ELSIF amt < 0 THEN
    gb := giveback(c, -amt);
    amt := -(gb ->> 'applied')::bigint;
    draws := gb -> 'draws';
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

-- As 0001, plus: an expiry in the past is refused, the safe-integer bound is checked, and the
-- new grant pays the user's open debts on the counter first.
CREATE OR REPLACE FUNCTION op_grant(p_user text, p_counter text, p_amount bigint, p_key text, p_fingerprint text,
                         p_grant_id text, p_expires timestamptz, p_source text, p_metadata jsonb) RETURNS jsonb
LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
DECLARE
  c ctx := context(p_user, p_counter);
  prior jsonb;
  paid bigint;
  res jsonb;
BEGIN
  PERFORM enter(c);
  prior := replay(p_user, p_key, p_fingerprint);
  IF prior IS NOT NULL THEN RETURN prior; END IF;
  IF p_expires IS NOT NULL AND p_expires <= clock() THEN
    PERFORM fail('invalid_request', format('expiresAt %s is not in the future.', to_char(p_expires AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')),
      jsonb_build_object('field', 'expiresAt', 'reason', 'in_the_past'));
  END IF;
  PERFORM check_grant_bound(c, p_amount);
  INSERT INTO grants (id, user_id, counter_key, amount, remaining, expires_at, source, metadata)
  VALUES (p_grant_id, p_user, p_counter, p_amount, p_amount, p_expires, p_source, p_metadata);
  INSERT INTO entries (user_id, counter_key, kind, amount, grant_id, metadata)
  VALUES (p_user, p_counter, 'grant', p_amount, p_grant_id, jsonb_build_object('source', p_source));
  paid := collect_debts(p_user, p_counter, p_grant_id);
  res := jsonb_build_object('grantId', p_grant_id, 'amount', p_amount, 'counter', p_counter, 'remaining', remaining_of(c));
  IF paid > 0 THEN res := res || jsonb_build_object('debtPaid', paid); END IF;
  RETURN remember(p_user, p_key, p_fingerprint, res);
END $$;

CREATE OR REPLACE FUNCTION op_adjust(p_user text, p_counter text, p_delta bigint, p_reason text, p_key text,
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
    PERFORM check_grant_bound(c, excess);
    INSERT INTO grants (id, user_id, counter_key, amount, remaining, source, metadata)
    VALUES (p_grant_id, p_user, p_counter, excess, excess, 'adjust', jsonb_build_object('reason', p_reason));
    INSERT INTO entries (user_id, counter_key, kind, amount, grant_id, metadata)
    VALUES (p_user, p_counter, 'grant', excess, p_grant_id, jsonb_build_object('source', 'adjust', 'reason', p_reason));
    PERFORM collect_debts(p_user, p_counter, p_grant_id);
  END IF;
  RETURN remember(p_user, p_key, p_fingerprint,
    jsonb_build_object('amount', p_delta, 'counter', p_counter, 'remaining', remaining_of(c)));
END $$;

-- As 0001, plus: `quota` and `remaining` are null on an unlimited counter, and `debt` (what the
-- user still owes from a refunded pack) appears when there is any.
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
        coalesce((SELECT sum(amount) FROM holds h WHERE h.user_id = p_user AND h.counter_key = g.key
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
        'granted', grants_left + ufg, 'used', used, 'held', held, 'debt', debt))
        || jsonb_build_object(
        'quota', q,
        'remaining', CASE WHEN q IS NOT NULL THEN greatest(0, greatest(0, q - (used - ufg)) + grants_left - held) END,
        'periodStart', CASE WHEN isfinite(period_start) THEN to_char(period_start AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') END,
        'periodEnd', CASE WHEN isfinite(period_end) THEN to_char(period_end AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"') END)
        ORDER BY key), '[]'::jsonb))
    FROM rows
  );
END $$;

-- As 0001, plus: a custom quota that would take a counter's remaining past 2^53 - 1 is refused.
CREATE OR REPLACE FUNCTION op_subscribe(p_user text, p_plan text, p_custom jsonb, p_started timestamptz) RETURNS jsonb
LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
DECLARE
  s subscriptions;
  k record;
BEGIN
  FOR k IN SELECT key, (value ->> 'quota')::numeric AS q FROM jsonb_each(coalesce(p_custom, '{}')) LOOP
    IF k.q IS NOT NULL AND k.q + (SELECT coalesce(sum(remaining), 0) FROM grants
                                  WHERE user_id = p_user AND counter_key = k.key AND remaining > 0) > max_safe() THEN
      PERFORM fail_unsafe(format('customLimits.%s.quota plus the counter''s credits', k.key), format('customLimits.%s.quota', k.key));
    END IF;
  END LOOP;
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

-- ---------------------------------------------------------------------------------------
-- Stripe (0002): the spent part of a refunded pack is a debt, collected exactly once.

-- Takes back what refunds and disputes of a payment call for and was not yet taken: the
-- unspent part from the pack's grant (clawback), the spent part as a debt, which is paid at
-- once from the user's other credits on the counter (soonest-expiring first) and the rest
-- from the next grants. Returns {clawedBack, debt, debtPaid}.
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
  SELECT * INTO g FROM grants WHERE id = p.grant_id;
  take := least(greatest(g.remaining, 0), delta);
  debt := delta - take;
  IF take > 0 THEN
    UPDATE grants SET remaining = remaining - take WHERE id = g.id;
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

CREATE OR REPLACE FUNCTION op_stripe_grant(p_event_id text, p_event_type text, p_user text, p_counter text, p_amount bigint,
                                p_session_id text, p_payment_intent text, p_paid bigint, p_currency text,
                                p_fingerprint text, p_grant_id text, p_debt_id text, p_metadata jsonb) RETURNS jsonb
LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
DECLARE
  c ctx;
  prior jsonb;
  res jsonb;
  cb jsonb := '{}';
  paid bigint;
BEGIN
  IF stripe_seen(p_event_id, p_event_type) THEN
    RETURN jsonb_build_object('duplicate', true);
  END IF;
  IF p_payment_intent IS NOT NULL THEN
    INSERT INTO stripe_payments (payment_intent) VALUES (p_payment_intent) ON CONFLICT DO NOTHING;
    PERFORM 1 FROM stripe_payments WHERE payment_intent = p_payment_intent FOR UPDATE;
  END IF;
  c := context(p_user, p_counter);
  PERFORM enter(c);
  SELECT result INTO prior FROM idempotency WHERE user_id = p_user AND key = p_session_id;
  IF FOUND THEN
    UPDATE stripe_events SET outcome = jsonb_build_object('alreadyGranted', p_session_id) WHERE id = p_event_id;
    RETURN prior || jsonb_build_object('duplicate', true);
  END IF;
  PERFORM check_grant_bound(c, p_amount);
  INSERT INTO grants (id, user_id, counter_key, amount, remaining, source, metadata)
  VALUES (p_grant_id, p_user, p_counter, p_amount, p_amount, 'stripe', p_metadata);
  INSERT INTO entries (user_id, counter_key, kind, amount, grant_id, metadata)
  VALUES (p_user, p_counter, 'grant', p_amount, p_grant_id,
          jsonb_build_object('source', 'stripe', 'sessionId', p_session_id, 'eventId', p_event_id));
  IF p_payment_intent IS NOT NULL THEN
    UPDATE stripe_payments SET session_id = p_session_id, grant_id = p_grant_id, user_id = p_user,
      counter_key = p_counter, credits = p_amount, paid = p_paid, currency = p_currency, updated_at = now()
    WHERE payment_intent = p_payment_intent;
    -- A refund or dispute that arrived first is applied now, before the pack pays older debts.
    cb := stripe_apply_clawback(c, p_payment_intent, p_debt_id);
  END IF;
  paid := collect_debts(p_user, p_counter, p_grant_id);
  res := jsonb_build_object('grantId', p_grant_id, 'amount', p_amount, 'counter', p_counter,
    'remaining', remaining_of(c)) || cb;
  IF paid > 0 THEN res := res || jsonb_build_object('debtPaid', paid + coalesce((cb ->> 'debtPaid')::bigint, 0)); END IF;
  UPDATE stripe_events SET outcome = res WHERE id = p_event_id;
  RETURN remember(p_user, p_session_id, p_fingerprint, res);
END $$;

CREATE OR REPLACE FUNCTION op_clawback(p_event_id text, p_event_type text, p_payment_intent text,
                            p_refunded bigint, p_disputed bigint, p_debt_id text) RETURNS jsonb
LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
DECLARE
  p stripe_payments;
  c ctx;
  res jsonb;
BEGIN
  IF stripe_seen(p_event_id, p_event_type) THEN
    RETURN jsonb_build_object('duplicate', true);
  END IF;
  INSERT INTO stripe_payments AS t (payment_intent, refunded, disputed)
  VALUES (p_payment_intent, coalesce(p_refunded, 0), coalesce(p_disputed, 0))
  ON CONFLICT (payment_intent) DO UPDATE SET
    refunded = greatest(t.refunded, excluded.refunded),
    disputed = greatest(t.disputed, excluded.disputed),
    updated_at = now()
  RETURNING * INTO p;
  IF p.grant_id IS NULL THEN
    res := jsonb_build_object('pending', true, 'clawedBack', 0, 'debt', 0);
  ELSE
    c := context(p.user_id, p.counter_key);
    PERFORM enter(c);
    res := stripe_apply_clawback(c, p_payment_intent, p_debt_id);
    res := res || jsonb_build_object('userId', p.user_id, 'counter', p.counter_key, 'remaining', remaining_of(c));
  END IF;
  UPDATE stripe_events SET outcome = res WHERE id = p_event_id;
  RETURN res;
END $$;
