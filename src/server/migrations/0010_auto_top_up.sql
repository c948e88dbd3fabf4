-- Auto top-up: saved payment methods, per-(user, counter) settings and trigger state, and the
-- outbox of off-session charges. Runs with search_path set to the meter's schema, like 0001.
--
-- Concurrency is decided here, not in application memory: observers lock the user's settings
-- rows (FOR UPDATE) before reading usage, so they run one after another and each sees the
-- state the previous one left; a partial unique index allows one charge in flight per
-- (user, counter); the ceiling is summed under the same row lock.

-- The card (or other method) a user saved for off-session charges: one per user, the newest.
CREATE TABLE payment_methods (
  user_id text PRIMARY KEY,
  customer_id text NOT NULL,
  payment_method text NOT NULL,
  -- `created` of the Stripe event that saved it: an older event delivered late never
  -- replaces a newer card.
  saved_by_event_at bigint NOT NULL DEFAULT 0,
  updated_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE auto_top_up (
  user_id text NOT NULL,
  counter_key text NOT NULL,
  enabled boolean NOT NULL DEFAULT false,
  pack_id text NOT NULL,
  threshold bigint NOT NULL CHECK (threshold > 0),
  -- Most money charged automatically per window (the counter's period; a calendar month for
  -- counters that never renew), in the pack currency's minor unit.
  max_per_period bigint NOT NULL CHECK (max_per_period > 0),
  status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'paused')),
  paused_reason text,
  paused_message text,
  -- Trigger state: whether the last observation saw `remaining` below the threshold, in
  -- which period. A new period starts "not below".
  below boolean NOT NULL DEFAULT false,
  seen_period text,
  updated_at timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (user_id, counter_key)
);
CREATE INDEX auto_top_up_enabled ON auto_top_up (user_id) WHERE enabled;

-- One row per trigger: the outbox of off-session charges. The id is the idempotency key of
-- the PaymentIntent, so a retry after a crash replays the same charge at Stripe.
CREATE TABLE auto_top_up_charges (
  id text PRIMARY KEY,
  user_id text NOT NULL,
  counter_key text NOT NULL,
  pack_id text NOT NULL,
  credits bigint NOT NULL CHECK (credits > 0),
  amount bigint NOT NULL CHECK (amount >= 0),
  currency text NOT NULL,
  window_key text NOT NULL,
  status text NOT NULL DEFAULT 'pending'
    CHECK (status IN ('pending', 'sending', 'processing', 'succeeded', 'failed')),
  payment_intent text,
  failure_reason text,
  attempts int NOT NULL DEFAULT 0,
  claim uuid,
  lease_until timestamptz,
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  last_error text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
-- At most one charge in flight per (user, counter), whatever the number of observers.
CREATE UNIQUE INDEX auto_top_up_one_in_flight ON auto_top_up_charges (user_id, counter_key)
  WHERE status IN ('pending', 'sending', 'processing');
CREATE INDEX auto_top_up_charges_due ON auto_top_up_charges (next_attempt_at) WHERE status IN ('pending', 'sending');
CREATE INDEX auto_top_up_charges_window ON auto_top_up_charges (user_id, counter_key, window_key);

-- ---------------------------------------------------------------------------------------

-- Observes one user after a change committed: re-reads usage under the settings' row locks
-- and arms one charge per counter whose `remaining` went from at/above its threshold to below
-- it. p_packs: {"packId": {"credits", "amount", "currency", "counter"}} (the configured packs).
-- p_force: the counters just enabled (their previous state counts as "not below", so enabling
-- while below fires at once). Returns the charges armed as [{id, counter}] plus the counters
-- that hit their ceiling as [{counter, window, ceiling: true}].
CREATE FUNCTION auto_top_up_observe(p_user text, p_packs jsonb, p_force text[] DEFAULT '{}') RETURNS jsonb
LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
DECLARE
  r auto_top_up;
  u jsonb;
  c jsonb;
  rem bigint;
  per text;
  was_below boolean;
  now_below boolean;
  pk jsonb;
  win text;
  spent bigint;
  new_id text;
  out jsonb := '[]';
BEGIN
  -- Lock first, read second: the usage read then sees every change committed before the
  -- previous observer released the lock.
  PERFORM 1 FROM auto_top_up WHERE user_id = p_user AND enabled ORDER BY counter_key FOR UPDATE;
  IF NOT FOUND THEN
    RETURN out;
  END IF;
  u := op_usage(p_user);
  FOR r IN SELECT * FROM auto_top_up WHERE user_id = p_user AND enabled ORDER BY counter_key LOOP
    SELECT e INTO c FROM jsonb_array_elements(u -> 'counters') e WHERE e ->> 'key' = r.counter_key;
    -- Unlimited (remaining null) or a counter the plan lacks: never below.
    rem := (c ->> 'remaining')::bigint;
    per := coalesce(c ->> 'periodStart', 'none');
    was_below := r.below AND r.seen_period IS NOT DISTINCT FROM per AND NOT (r.counter_key = ANY (p_force));
    now_below := rem IS NOT NULL AND rem < r.threshold;
    IF r.below IS DISTINCT FROM now_below OR r.seen_period IS DISTINCT FROM per THEN
      UPDATE auto_top_up SET below = now_below, seen_period = per WHERE user_id = p_user AND counter_key = r.counter_key;
    END IF;
    CONTINUE WHEN NOT now_below OR was_below OR r.status <> 'active';
    pk := p_packs -> r.pack_id;
    IF pk IS NULL OR pk ->> 'counter' IS DISTINCT FROM r.counter_key THEN
      UPDATE auto_top_up SET status = 'paused', paused_reason = 'pack_unavailable',
        paused_message = format('Pack %s is no longer on sale for this counter.', r.pack_id), updated_at = now()
      WHERE user_id = p_user AND counter_key = r.counter_key;
      out := out || jsonb_build_array(jsonb_build_object('counter', r.counter_key, 'paused', 'pack_unavailable'));
      CONTINUE;
    END IF;
    -- The ceiling's window: the counter's period, or the calendar month (UTC) when it never renews.
    win := CASE WHEN c ->> 'periodStart' IS NOT NULL THEN c ->> 'periodStart'
                ELSE to_char(date_trunc('month', clock() AT TIME ZONE 'UTC'), 'YYYY-MM-DD"T"00:00:00.000"Z"') END;
    SELECT coalesce(sum(amount), 0) INTO spent FROM auto_top_up_charges
    WHERE user_id = p_user AND counter_key = r.counter_key AND window_key = win AND status <> 'failed';
    IF spent + (pk ->> 'amount')::bigint > r.max_per_period THEN
      out := out || jsonb_build_array(jsonb_build_object('counter', r.counter_key, 'ceiling', true, 'window', win));
      CONTINUE;
    END IF;
    new_id := 'atu_' || replace(gen_random_uuid()::text, '-', '');
    INSERT INTO auto_top_up_charges (id, user_id, counter_key, pack_id, credits, amount, currency, window_key)
    VALUES (new_id, p_user, r.counter_key, r.pack_id, (pk ->> 'credits')::bigint, (pk ->> 'amount')::bigint, pk ->> 'currency', win)
    ON CONFLICT DO NOTHING;
    IF FOUND THEN
      out := out || jsonb_build_array(jsonb_build_object('id', new_id, 'counter', r.counter_key));
    END IF;
  END LOOP;
  RETURN out;
END $$;

-- ---------------------------------------------------------------------------------------
-- Alerts (balance thresholds, auto top-up outcomes): one row per alert, with a stable id, in
-- an outbox delivered to the host's callback and signed webhook. Rows are written in the same
-- statement as the change they report, so a crash cannot lose or double one.

CREATE TABLE alert_outbox (
  id text PRIMARY KEY,
  type text NOT NULL,
  user_id text NOT NULL,
  counter_key text NOT NULL,
  data jsonb NOT NULL,
  status text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sending', 'sent', 'failed')),
  attempts int NOT NULL DEFAULT 0,
  claim uuid,
  lease_until timestamptz,
  next_attempt_at timestamptz NOT NULL DEFAULT now(),
  last_error text,
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX alert_outbox_due ON alert_outbox (next_attempt_at) WHERE status IN ('pending', 'sending');

-- Queues an alert once (its id is derived from what it reports). Returns whether it is new.
CREATE FUNCTION alert_enqueue(p_id text, p_type text, p_user text, p_counter text, p_data jsonb) RETURNS boolean
LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
  INSERT INTO alert_outbox (id, type, user_id, counter_key, data) VALUES (p_id, p_type, p_user, p_counter, p_data)
  ON CONFLICT (id) DO NOTHING;
  RETURN FOUND;
END $$;

-- A charge succeeded (the worker saw it, or the webhook did): marks it once, and queues the
-- `auto_top_up.succeeded` alert once. Returns the charge as jsonb, or null when already final.
CREATE FUNCTION auto_top_up_succeed(p_id text, p_payment_intent text, p_alerts boolean) RETURNS jsonb
LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
DECLARE
  ch auto_top_up_charges;
BEGIN
  UPDATE auto_top_up_charges SET status = 'succeeded', payment_intent = coalesce(p_payment_intent, payment_intent),
    last_error = NULL, claim = NULL, lease_until = NULL, updated_at = now()
  WHERE id = p_id AND status IN ('pending', 'sending', 'processing')
  RETURNING * INTO ch;
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  IF p_alerts THEN
    PERFORM alert_enqueue('evt_' || ch.id || '_succeeded', 'auto_top_up.succeeded', ch.user_id, ch.counter_key,
      jsonb_build_object('chargeId', ch.id, 'packId', ch.pack_id, 'credits', ch.credits, 'amount', ch.amount,
                         'currency', ch.currency, 'paymentIntent', ch.payment_intent));
  END IF;
  RETURN to_jsonb(ch);
END $$;

-- A charge failed for good (declined, needs 3-D Secure, no card…): marks it, pauses the
-- counter's auto top-up with the reason (no blind retry), and queues `auto_top_up.failed` and
-- `auto_top_up.paused` once. Returns the charge, or null when it was already final.
CREATE FUNCTION auto_top_up_fail(p_id text, p_reason text, p_message text, p_payment_intent text, p_alerts boolean) RETURNS jsonb
LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
DECLARE
  ch auto_top_up_charges;
  d jsonb;
BEGIN
  UPDATE auto_top_up_charges SET status = 'failed', failure_reason = p_reason, last_error = p_message,
    payment_intent = coalesce(p_payment_intent, payment_intent), claim = NULL, lease_until = NULL, updated_at = now()
  WHERE id = p_id AND status IN ('pending', 'sending', 'processing')
  RETURNING * INTO ch;
  IF NOT FOUND THEN
    RETURN NULL;
  END IF;
  UPDATE auto_top_up SET status = 'paused', paused_reason = p_reason, paused_message = p_message, updated_at = now()
  WHERE user_id = ch.user_id AND counter_key = ch.counter_key;
  IF p_alerts THEN
    d := jsonb_build_object('chargeId', ch.id, 'packId', ch.pack_id, 'credits', ch.credits, 'amount', ch.amount,
                            'currency', ch.currency, 'paymentIntent', ch.payment_intent, 'reason', p_reason, 'message', p_message);
    PERFORM alert_enqueue('evt_' || ch.id || '_failed', 'auto_top_up.failed', ch.user_id, ch.counter_key, d);
    PERFORM alert_enqueue('evt_' || ch.id || '_paused', 'auto_top_up.paused', ch.user_id, ch.counter_key, d);
  END IF;
  RETURN to_jsonb(ch);
END $$;

-- ---------------------------------------------------------------------------------------
-- Balance threshold alerts: the last state of each (user, counter, rule), so that a rule
-- fires once per crossing per period, across restarts and processes.

CREATE TABLE alert_state (
  user_id text NOT NULL,
  counter_key text NOT NULL,
  rule_id text NOT NULL,
  period text NOT NULL,
  crossed boolean NOT NULL DEFAULT false,
  seq int NOT NULL DEFAULT 0,
  PRIMARY KEY (user_id, counter_key, rule_id)
);

-- p_rules: [{"id", "counter", "usedPercent"?, "remainingBelow"?}]. Re-reads the user's usage
-- under the rules' row locks and queues a `balance.threshold` alert for each rule that went
-- from not crossed to crossed (a new period starts not crossed). Returns how many were queued.
CREATE FUNCTION alerts_observe(p_user text, p_rules jsonb) RETURNS int
LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
DECLARE
  rule jsonb;
  u jsonb;
  c jsonb;
  st alert_state;
  per text;
  is_crossed boolean;
  v_quota bigint;
  v_used bigint;
  v_rem bigint;
  n int := 0;
BEGIN
  IF jsonb_array_length(p_rules) = 0 THEN
    RETURN 0;
  END IF;
  INSERT INTO alert_state (user_id, counter_key, rule_id, period)
  SELECT p_user, r ->> 'counter', r ->> 'id', '' FROM jsonb_array_elements(p_rules) r
  ON CONFLICT DO NOTHING;
  PERFORM 1 FROM alert_state WHERE user_id = p_user ORDER BY counter_key, rule_id FOR UPDATE;
  u := op_usage(p_user);
  FOR rule IN SELECT * FROM jsonb_array_elements(p_rules) LOOP
    SELECT e INTO c FROM jsonb_array_elements(u -> 'counters') e WHERE e ->> 'key' = rule ->> 'counter';
    CONTINUE WHEN c IS NULL;
    per := coalesce(c ->> 'periodStart', 'none');
    v_quota := (c ->> 'quota')::bigint;
    v_used := (c ->> 'used')::bigint;
    v_rem := (c ->> 'remaining')::bigint;
    IF rule ? 'usedPercent' THEN
      is_crossed := v_quota IS NOT NULL AND v_quota > 0 AND v_used * 100 >= (rule ->> 'usedPercent')::numeric * v_quota;
    ELSE
      is_crossed := v_rem IS NOT NULL AND v_rem < (rule ->> 'remainingBelow')::bigint;
    END IF;
    SELECT * INTO st FROM alert_state WHERE user_id = p_user AND counter_key = rule ->> 'counter' AND rule_id = rule ->> 'id';
    IF is_crossed AND NOT (st.crossed AND st.period = per) THEN
      UPDATE alert_state SET period = per, crossed = true, seq = seq + 1
      WHERE user_id = p_user AND counter_key = rule ->> 'counter' AND rule_id = rule ->> 'id';
      PERFORM alert_enqueue(
        'evt_' || left(encode(sha256(convert_to(concat_ws(chr(31), current_schema(), p_user, rule ->> 'counter', rule ->> 'id', per, st.seq + 1), 'UTF8')), 'hex'), 32),
        'balance.threshold', p_user, rule ->> 'counter',
        jsonb_build_object('rule', rule ->> 'id', 'usedPercent', (rule ->> 'usedPercent')::numeric, 'remainingBelow', (rule ->> 'remainingBelow')::bigint,
                           'quota', v_quota, 'used', v_used, 'remaining', v_rem, 'periodStart', c ->> 'periodStart', 'periodEnd', c ->> 'periodEnd'));
      n := n + 1;
    ELSIF st.crossed IS DISTINCT FROM is_crossed OR st.period IS DISTINCT FROM per THEN
      UPDATE alert_state SET period = per, crossed = is_crossed
      WHERE user_id = p_user AND counter_key = rule ->> 'counter' AND rule_id = rule ->> 'id';
    END IF;
  END LOOP;
  RETURN n;
END $$;
