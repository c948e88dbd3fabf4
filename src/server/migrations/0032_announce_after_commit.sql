-- Every ledger path announces after commit. op_sweep (0001) and op_subscribe (0004) still
-- called pg_notify inside their transactions: a notifying transaction takes Postgres's
-- database-wide notify lock at commit and holds it through the WAL flush, so those two
-- serialised every other notifying commit behind them (docs/server.md: the ledger never
-- NOTIFYs in its transaction). They now return the users to announce, and the caller
-- announces through the meter's notifier after commit (src/server/notifier.ts).

-- As 0001, minus the pg_notify: returns {expired, userIds} (how many holds got their expiry
-- entry, and every user whose balances changed) instead of the count alone.
DROP FUNCTION op_sweep(int);
CREATE FUNCTION op_sweep(p_limit int) RETURNS jsonb
LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
DECLARE
  k record;
  n int := 0;
  users text[] := '{}';
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
    IF NOT k.user_id = ANY (users) THEN
      users := users || k.user_id;
    END IF;
  END LOOP;
  RETURN jsonb_build_object('expired', n, 'userIds', to_jsonb(users));
END $$;

-- As 0004 (a custom quota that would take a counter's remaining past 2^53 - 1 is refused),
-- minus the pg_notify: the caller announces the returned userId after commit.
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
  RETURN jsonb_build_object('userId', s.user_id, 'planId', s.plan_id, 'customLimits', s.custom_limits,
    'startedAt', to_char(s.started_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'));
END $$;
