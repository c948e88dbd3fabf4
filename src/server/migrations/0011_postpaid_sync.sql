-- Post-paid meter sync only for post-paid plans. 0002 queued every user with usage on a
-- counter mapped to a Stripe Meter, including pre-paid users of plans sharing the counter
-- (they sat "pending: no linked customer" and were pushed once they bought a pack). Now only
-- users whose plan is post-paid (`postpaid: true`, passed in by the sync) are queued; rows
-- already queued for others are marked 'skipped' (kept, never sent) by the next sync run,
-- since which plans are post-paid is configuration, not data. Runs with search_path set to
-- the meter's schema.

ALTER TABLE stripe_meter_outbox DROP CONSTRAINT stripe_meter_outbox_status_check;
ALTER TABLE stripe_meter_outbox ADD CONSTRAINT stripe_meter_outbox_status_check
  CHECK (status IN ('pending', 'sending', 'sent', 'failed', 'too_old', 'skipped'));

-- The plan a user is billed on now: their subscription's, else the default plan.
CREATE FUNCTION plan_of(p_user text) RETURNS text
LANGUAGE sql STABLE
SET search_path FROM CURRENT AS $$
  SELECT coalesce((SELECT plan_id FROM subscriptions WHERE user_id = p_user),
                  (SELECT value FROM settings WHERE key = 'default_plan'))
$$;

-- p_counters: {"counter": {"event": "event_name", "plans": ["postpaid plan", …]}}.
-- Like stripe_enqueue_meter_periods, for the users of the listed plans only.
CREATE FUNCTION stripe_enqueue_postpaid_periods(p_counters jsonb, p_settle_ms bigint) RETURNS int
LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
DECLARE
  n int;
BEGIN
  INSERT INTO stripe_meter_outbox (user_id, counter_key, period_start, period_end, event_name, value, identifier)
  SELECT b.user_id, b.counter_key, b.period_start, b.period_end, m.value ->> 'event', b.used,
         'mk_' || encode(sha256(convert_to(concat_ws(chr(31), current_schema(), b.user_id, b.counter_key,
           to_char(b.period_start AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')), 'UTF8')), 'hex')
  FROM balances b
  JOIN jsonb_each(p_counters) m ON m.key = b.counter_key
  WHERE isfinite(b.period_end) AND b.period_end <= now() - p_settle_ms * interval '1 millisecond' AND b.used > 0
    AND (m.value -> 'plans') ? plan_of(b.user_id)
    AND NOT EXISTS (SELECT 1 FROM stripe_meter_outbox o
                    WHERE o.user_id = b.user_id AND o.counter_key = b.counter_key AND o.period_start = b.period_start)
  ON CONFLICT DO NOTHING;
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END $$;

-- Marks 'skipped' the rows waiting to be sent (pending, or sending with a lapsed lease) of
-- users whose plan is not post-paid for that counter. Returns how many.
CREATE FUNCTION stripe_skip_prepaid_periods(p_counters jsonb) RETURNS int
LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
DECLARE
  n int;
BEGIN
  UPDATE stripe_meter_outbox o SET status = 'skipped', claim = NULL, lease_until = NULL,
    last_error = 'Not post-paid: the user''s plan is pre-paid for this counter.'
  WHERE (o.status = 'pending' OR (o.status = 'sending' AND o.lease_until <= now()))
    AND NOT coalesce((p_counters -> o.counter_key -> 'plans') ? plan_of(o.user_id), false);
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END $$;
