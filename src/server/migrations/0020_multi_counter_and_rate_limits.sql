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

-- Seconds until waiting can help a request of `p_required` that was just refused: the end of
-- the current period, when the counter renews there and its next allowance plus the grants
-- still valid then would cover the request. NULL when waiting would not help (period 'none',
-- an amount beyond the allowance, an unlimited counter).
CREATE FUNCTION retry_after(c ctx, p_required bigint) RETURNS int
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT AS $$
DECLARE
  later bigint;
BEGIN
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
