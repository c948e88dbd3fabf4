-- Stripe: processed webhook events, user ↔ customer links, pack payments (for refunds and
-- disputes), and the outbox of post-paid meter events. Runs with search_path set to the
-- meter's schema, like 0001.
--
-- Lock order, everywhere: the event row, then the payment row, then the (user, counter)
-- advisory lock (enter). Ledger operations of 0001 take only the last, so no cycle exists.

-- Every Stripe event that changed something, recorded in the same transaction as the change:
-- a second delivery finds its id here and changes nothing.
CREATE TABLE stripe_events (
  id text PRIMARY KEY,
  type text NOT NULL,
  outcome jsonb,
  processed_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE stripe_customers (
  user_id text PRIMARY KEY,
  customer_id text NOT NULL UNIQUE,
  created_at timestamptz NOT NULL DEFAULT now()
);

-- One row per pack payment (Stripe PaymentIntent). A refund or dispute can arrive before the
-- grant it takes back (Stripe does not order events): it is recorded here and applied when the
-- grant is made.
CREATE TABLE stripe_payments (
  payment_intent text PRIMARY KEY,
  session_id text,
  grant_id text,
  user_id text,
  counter_key text,
  credits bigint,           -- credits the pack granted
  paid bigint,              -- what was paid, in the currency's minor unit
  currency text,
  refunded bigint NOT NULL DEFAULT 0,   -- cumulative, as Stripe reports it
  disputed bigint NOT NULL DEFAULT 0,
  clawed bigint NOT NULL DEFAULT 0,     -- credits taken back so far (from the grant and as debt)
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);

-- Post-paid: one row per closed (user, counter, period) to push to a Stripe Meter.
CREATE TABLE stripe_meter_outbox (
  user_id text NOT NULL,
  counter_key text NOT NULL,
  period_start timestamptz NOT NULL,
  period_end timestamptz NOT NULL,
  event_name text NOT NULL,
  value bigint NOT NULL CHECK (value > 0),
  identifier text NOT NULL UNIQUE,
  status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sending', 'sent', 'failed', 'too_old')),
  attempts int NOT NULL DEFAULT 0,
  claim uuid,
  lease_until timestamptz,
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  last_error text,
  created_at timestamptz NOT NULL DEFAULT now(),
  sent_at timestamptz,
  PRIMARY KEY (user_id, counter_key, period_start)
);
CREATE INDEX stripe_meter_outbox_due ON stripe_meter_outbox (next_attempt_at) WHERE status IN ('pending', 'sending');

-- ---------------------------------------------------------------------------------------

-- Records an event id; false when it was already recorded (a duplicate delivery). A second
-- concurrent delivery waits here on the primary key until the first commits or rolls back.
CREATE FUNCTION stripe_seen(p_event_id text, p_type text) RETURNS boolean
LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
DECLARE
  n int;
BEGIN
  INSERT INTO stripe_events (id, type) VALUES (p_event_id, p_type) ON CONFLICT (id) DO NOTHING;
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n = 0;
END $$;

-- Takes back what refunds and disputes of a payment call for and was not yet taken. The caller
-- holds the payment row and the (user, counter) lock. Returns {clawedBack, debt}.
CREATE FUNCTION stripe_apply_clawback(c ctx, p_payment_intent text, p_debt_id text) RETURNS jsonb
LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
DECLARE
  p stripe_payments;
  g grants;
  target bigint;
  delta bigint;
  take bigint;
  debt bigint;
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
  -- The spent part becomes a negative grant: available() drops below what the user had.
  IF debt > 0 THEN
    INSERT INTO grants (id, user_id, counter_key, amount, remaining, source, metadata)
    VALUES (p_debt_id, c.user_id, c.counter_key, -debt, -debt, 'debt',
            jsonb_build_object('paymentIntent', p_payment_intent, 'grantId', g.id));
    INSERT INTO entries (user_id, counter_key, kind, amount, grant_id, metadata)
    VALUES (c.user_id, c.counter_key, 'grant', -debt, p_debt_id,
            jsonb_build_object('source', 'debt', 'paymentIntent', p_payment_intent, 'grantId', g.id));
  END IF;
  UPDATE stripe_payments SET clawed = target, updated_at = now() WHERE payment_intent = p_payment_intent;
  RETURN jsonb_build_object('clawedBack', take, 'debt', debt);
END $$;

-- Grants a paid pack exactly once: the event id is recorded in this transaction, and the grant
-- is idempotent by the Checkout Session id (the completed and the async-succeeded events of one
-- session credit once). Returns {duplicate} or the grant result.
CREATE FUNCTION op_stripe_grant(p_event_id text, p_event_type text, p_user text, p_counter text, p_amount bigint,
                                p_session_id text, p_payment_intent text, p_paid bigint, p_currency text,
                                p_fingerprint text, p_grant_id text, p_debt_id text, p_metadata jsonb) RETURNS jsonb
LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
DECLARE
  c ctx;
  prior jsonb;
  res jsonb;
  cb jsonb := '{}';
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
  -- Any grant under this key counts, whatever its fingerprint: a host that granted the session
  -- by hand (the seed's `grant(…, { idempotencyKey: "cs_…" })`) is not credited twice.
  SELECT result INTO prior FROM idempotency WHERE user_id = p_user AND key = p_session_id;
  IF FOUND THEN
    UPDATE stripe_events SET outcome = jsonb_build_object('alreadyGranted', p_session_id) WHERE id = p_event_id;
    RETURN prior || jsonb_build_object('duplicate', true);
  END IF;
  INSERT INTO grants (id, user_id, counter_key, amount, remaining, source, metadata)
  VALUES (p_grant_id, p_user, p_counter, p_amount, p_amount, 'stripe', p_metadata);
  INSERT INTO entries (user_id, counter_key, kind, amount, grant_id, metadata)
  VALUES (p_user, p_counter, 'grant', p_amount, p_grant_id,
          jsonb_build_object('source', 'stripe', 'sessionId', p_session_id, 'eventId', p_event_id));
  IF p_payment_intent IS NOT NULL THEN
    UPDATE stripe_payments SET session_id = p_session_id, grant_id = p_grant_id, user_id = p_user,
      counter_key = p_counter, credits = p_amount, paid = p_paid, currency = p_currency, updated_at = now()
    WHERE payment_intent = p_payment_intent;
    -- A refund or dispute that arrived first is applied now.
    cb := stripe_apply_clawback(c, p_payment_intent, p_debt_id);
  END IF;
  res := jsonb_build_object('grantId', p_grant_id, 'amount', p_amount, 'counter', p_counter,
    'remaining', greatest(available(c), 0)) || cb;
  UPDATE stripe_events SET outcome = res WHERE id = p_event_id;
  RETURN remember(p_user, p_session_id, p_fingerprint, res);
END $$;

-- Records a refund (cumulative amount refunded) or a dispute (amount disputed) of a pack
-- payment, exactly once per event, and takes the credits back when the grant exists.
CREATE FUNCTION op_clawback(p_event_id text, p_event_type text, p_payment_intent text,
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
    res := res || jsonb_build_object('userId', p.user_id, 'counter', p.counter_key, 'remaining', greatest(available(c), 0));
  END IF;
  UPDATE stripe_events SET outcome = res WHERE id = p_event_id;
  RETURN res;
END $$;

-- Enqueues every closed period of the mapped counters that has usage and is not yet queued.
-- p_counters: {"counter": "event_name"}. Periods must have ended p_settle_ms ago, so that a
-- commit that began before the period's end has finished. Returns how many were queued.
CREATE FUNCTION stripe_enqueue_meter_periods(p_counters jsonb, p_settle_ms bigint) RETURNS int
LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
DECLARE
  n int;
BEGIN
  INSERT INTO stripe_meter_outbox (user_id, counter_key, period_start, period_end, event_name, value, identifier)
  SELECT b.user_id, b.counter_key, b.period_start, b.period_end, m.value, b.used,
         -- Deterministic per (schema, user, counter, period), at most 100 characters (Stripe's limit).
         'mk_' || encode(sha256(convert_to(concat_ws(chr(31), current_schema(), b.user_id, b.counter_key,
           to_char(b.period_start AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')), 'UTF8')), 'hex')
  FROM balances b
  JOIN jsonb_each_text(p_counters) m ON m.key = b.counter_key
  WHERE isfinite(b.period_end) AND b.period_end <= now() - p_settle_ms * interval '1 millisecond' AND b.used > 0
    AND NOT EXISTS (SELECT 1 FROM stripe_meter_outbox o
                    WHERE o.user_id = b.user_id AND o.counter_key = b.counter_key AND o.period_start = b.period_start)
  ON CONFLICT DO NOTHING;
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END $$;

-- Claims up to p_limit due rows for one sync run (a lease of p_lease_ms): rows another run
-- holds are skipped; rows whose lease ran out (a crashed run) are taken over.
CREATE FUNCTION stripe_claim_meter_events(p_claim uuid, p_limit int, p_lease_ms bigint)
RETURNS SETOF stripe_meter_outbox
LANGUAGE sql
SET search_path FROM CURRENT AS $$
  UPDATE stripe_meter_outbox o SET status = 'sending', claim = p_claim, attempts = o.attempts + 1,
    lease_until = now() + p_lease_ms * interval '1 millisecond'
  WHERE (o.user_id, o.counter_key, o.period_start) IN (
    SELECT user_id, counter_key, period_start FROM stripe_meter_outbox
    WHERE (status = 'pending' AND next_attempt_at <= now()) OR (status = 'sending' AND lease_until <= now())
    ORDER BY period_end, user_id, counter_key
    LIMIT p_limit
    FOR UPDATE SKIP LOCKED)
  RETURNING o.*
$$;
