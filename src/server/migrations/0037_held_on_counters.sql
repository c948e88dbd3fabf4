-- Held on the counter row (issue 16): a reserve no longer sums the open holds, and a commit's
-- or release's rewrite of its hold is a HOT update. Runs with search_path set to the meter's
-- schema.
--
-- Until 0036 the check read the open holds' sum (an aggregate over the partial index
-- holds_open, WHERE status = 'open') under the lock, and a resolution changed `status`, a
-- column of that predicate, so its hold update could never be HOT (a new index entry per
-- commit, and the old one left dead). Now the (user, counter) row of `counters`, which the
-- operation already reaches under its lock, keeps:
--   held                  Σ amount of the open holds (expired ones included until their expiry
--                         entry is written);
--   open_count            how many holds are open (a concurrency group's slots in flight);
--   earliest_open_expiry  a lower bound: no open hold expires before it (NULL: none is open).
-- Expiry stays on the database clock: whoever reads held looks for expired open holds only
-- when earliest_open_expiry <= clock(), in [earliest_open_expiry, clock()] of the index
-- holds_expiry (user_id, counter_key, expires_at), whose key a resolution never changes.
-- audit() checks the three against the holds (and the holds against the entries, as before).

-- ---------------------------------------------------------------------------------------
-- Tables. Dropping holds_open first takes holds' exclusive lock, so no write of a server still
-- running older functions slips between the sums below and the new functions.
DROP INDEX holds_open;
CREATE INDEX holds_expiry ON holds (user_id, counter_key, expires_at);
ALTER TABLE counters ADD COLUMN held bigint NOT NULL DEFAULT 0,
  ADD COLUMN open_count bigint NOT NULL DEFAULT 0,
  ADD COLUMN earliest_open_expiry timestamptz;
-- Holds open at the upgrade, expired ones included (the first operation or the sweeper writes
-- their expiry entries, as before).
INSERT INTO counters (user_id, counter_key, held, open_count, earliest_open_expiry)
SELECT user_id, counter_key, sum(amount), count(*), min(expires_at) FROM holds WHERE status = 'open' GROUP BY 1, 2
ON CONFLICT (user_id, counter_key) DO UPDATE SET held = excluded.held, open_count = excluded.open_count,
  earliest_open_expiry = excluded.earliest_open_expiry;
-- The row is updated by every reserve and resolution: room for its new version on its page.
DO $$
DECLARE
  leaf regclass;
BEGIN
  FOR leaf IN SELECT relid FROM pg_catalog.pg_partition_tree(format('%I.counters', current_schema())::regclass) WHERE isleaf LOOP
    EXECUTE format('ALTER TABLE %s SET (fillfactor = 80)', leaf);
  END LOOP;
END $$;

-- ---------------------------------------------------------------------------------------
-- Expiry. Call under the (user, counter) lock. When the bound says a hold may have run out:
-- writes the expiry of every open hold past p_now (entries as before), takes them off the
-- row, and moves the bound to the first open hold after p_now (looking at most 64 holds ahead,
-- so a busy counter skips each resolved hold once; past that, the 64th hold's expiry is still
-- a lower bound). Returns the row as it is after that, and how many holds it expired.
CREATE FUNCTION expire_due(p_user text, p_counter text, p_now timestamptz,
                           OUT o_held bigint, OUT o_open bigint, OUT o_earliest timestamptz, OUT o_expired bigint)
LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
DECLARE
  since timestamptz;
  gone bigint;
  next_ timestamptz;
BEGIN
  SELECT held, open_count, earliest_open_expiry INTO o_held, o_open, since
  FROM counters WHERE user_id = p_user AND counter_key = p_counter;
  o_earliest := since;
  o_expired := 0;
  IF since IS NULL OR since > p_now THEN RETURN; END IF;
  WITH ex AS (
    UPDATE holds SET status = 'expired', resolved_at = expires_at,
      result = jsonb_build_object('reservationId', id, 'userId', user_id, 'status', 'expired', 'expired', amount)
    WHERE user_id = p_user AND counter_key = p_counter AND expires_at >= since AND expires_at <= p_now AND status = 'open'
    RETURNING id, amount, meter_key
  ), ins AS (
    INSERT INTO entries (user_id, counter_key, kind, amount, hold_id, meter_key)
    SELECT p_user, p_counter, 'expire', amount, id, meter_key FROM ex
  )
  SELECT coalesce(sum(amount), 0), count(*) INTO gone, o_expired FROM ex;
  SELECT coalesce(min(x.expires_at) FILTER (WHERE x.status = 'open'), max(x.expires_at)) INTO next_
  FROM (SELECT expires_at, status FROM holds WHERE user_id = p_user AND counter_key = p_counter AND expires_at > p_now
        ORDER BY expires_at LIMIT 64) x;
  UPDATE counters SET held = held - gone, open_count = open_count - o_expired,
    earliest_open_expiry = CASE WHEN open_count - o_expired = 0 THEN NULL ELSE coalesce(next_, p_now) END
  WHERE user_id = p_user AND counter_key = p_counter
  RETURNING held, open_count, earliest_open_expiry INTO o_held, o_open, o_earliest;
END $$;

-- What is held now without writing anything (reads: usage, available): the row less the open
-- holds that ran out and have no expiry entry yet.
CREATE FUNCTION held_now(p_user text, p_counter text, p_now timestamptz, OUT o_held bigint, OUT o_open bigint)
LANGUAGE sql STABLE
SET search_path FROM CURRENT AS $$
  SELECT coalesce(k.held, 0) - coalesce(x.amount, 0), coalesce(k.open_count, 0) - coalesce(x.n, 0)
  FROM (SELECT) one
  LEFT JOIN counters k ON k.user_id = p_user AND k.counter_key = p_counter
  LEFT JOIN LATERAL (SELECT sum(h.amount) AS amount, count(*) AS n FROM holds h
                     WHERE k.earliest_open_expiry <= p_now AND h.user_id = p_user AND h.counter_key = p_counter
                       AND h.expires_at >= k.earliest_open_expiry AND h.expires_at <= p_now AND h.status = 'open') x ON true
$$;

-- ---------------------------------------------------------------------------------------
-- As 0030 (every rule of 0004 and 0020), with the open holds read from the counter row and
-- the row kept: a reserve adds its hold to it.
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
  earliest timestamptz;
  has_row boolean;
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
  -- 3. Under the lock: grants that outlive the hold (available(c, exp) of 0020), and the
  --    open holds from the counter row.
  SELECT b.used, b.used_from_grants,
         (SELECT coalesce(sum(g.remaining), 0) FROM grants g
          WHERE g.user_id = p_user AND g.counter_key = p_counter AND (g.expires_at IS NULL OR g.expires_at > exp)),
         k.held, k.open_count, k.earliest_open_expiry
    INTO b_used, b_ufg, grants_left, held, n_open, earliest
  FROM (SELECT) one
  LEFT JOIN counters k ON k.user_id = p_user AND k.counter_key = p_counter
  LEFT JOIN balances b ON b.user_id = p_user AND b.counter_key = p_counter AND b.period_start = c.period_start;
  has_row := held IS NOT NULL;
  held := coalesce(held, 0);
  n_open := coalesce(n_open, 0);
  -- 4. As enter() of 0001: only when a hold may have run out.
  IF earliest <= now_ THEN
    SELECT x.o_held, x.o_open INTO held, n_open FROM expire_due(p_user, p_counter, now_) x;
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
  IF NOT has_row THEN
    -- The counter's first hold (its row may exist since, for the carry of round_fine).
    INSERT INTO counters (user_id, counter_key, held, open_count, earliest_open_expiry)
    VALUES (p_user, p_counter, amt, 1, exp)
    ON CONFLICT (user_id, counter_key) DO UPDATE SET held = counters.held + excluded.held,
      open_count = counters.open_count + 1, earliest_open_expiry = least(counters.earliest_open_expiry, excluded.earliest_open_expiry);
  ELSE
    UPDATE counters SET held = counters.held + amt, open_count = counters.open_count + 1,
      earliest_open_expiry = CASE WHEN open_count = 0 THEN exp ELSE least(earliest_open_expiry, exp) END
    WHERE user_id = p_user AND counter_key = p_counter;
  END IF;
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

-- As 0036 (every rule of 0004 and 0020), with the open holds read from the counter row and
-- the row kept: a resolution takes its hold off it. The hold's own update changes no indexed
-- column now, so it is a HOT update.
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
  earliest timestamptz;
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
  -- 3. Under the lock: grants valid now (available(c) of 0020), and the hold again (another
  --    call may have resolved it before we got the lock): only the columns a resolution
  --    changes, in the same statement (0030 read the whole row in a statement of its own).
  SELECT b.used, b.used_from_grants,
         (SELECT coalesce(sum(g.remaining), 0) FROM grants g
          WHERE g.user_id = c.user_id AND g.counter_key = c.counter_key AND (g.expires_at IS NULL OR g.expires_at > now_)),
         coalesce(k.held, 0), coalesce(k.open_count, 0), k.earliest_open_expiry,
         cur.id, cur.status, cur.resolved_at, cur.request, cur.result, cur.refunded
    INTO b_used, b_ufg, grants_left, held, n_open, earliest, h.id, h.status, h.resolved_at, h.request, h.result, h.refunded
  FROM (SELECT) one
  LEFT JOIN counters k ON k.user_id = c.user_id AND k.counter_key = c.counter_key
  LEFT JOIN balances b ON b.user_id = c.user_id AND b.counter_key = c.counter_key AND b.period_start = c.period_start
  LEFT JOIN holds cur ON cur.id = h.id AND cur.user_id = h.user_id;
  -- 4. As enter() of 0001.
  IF earliest <= now_ THEN
    SELECT x.o_held, x.o_open INTO held, n_open FROM expire_due(c.user_id, c.counter_key, now_) x;
    -- This hold may be one of them: read what the expiry wrote.
    IF h.status = 'open' AND h.expires_at <= now_ THEN
      SELECT * INTO h FROM holds WHERE id = h.id AND user_id = h.user_id;
    END IF;
  END IF;
  IF b_used IS NULL THEN
    INSERT INTO balances (user_id, counter_key, period_start, period_end)
    VALUES (c.user_id, c.counter_key, c.period_start, c.period_end) ON CONFLICT DO NOTHING;
    b_used := 0; b_ufg := 0;
  END IF;
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
    UPDATE counters SET held = counters.held - h.amount, open_count = counters.open_count - 1,
      earliest_open_expiry = CASE WHEN open_count = 1 THEN NULL ELSE earliest_open_expiry END
    WHERE user_id = h.user_id AND counter_key = h.counter_key;
    INSERT INTO entries (user_id, counter_key, kind, amount, hold_id, meter_key, model)
    VALUES (h.user_id, h.counter_key, 'release', h.amount, h.id, h.meter_key, h.model);
  ELSE
    res := jsonb_build_object('reservationId', h.id, 'userId', h.user_id, 'status', 'committed', 'held', h.amount,
      'committed', charge, 'refunded', greatest(h.amount - charge, 0), 'overage', greatest(charge - h.amount, 0),
      'remaining', remaining);
    UPDATE holds SET status = 'committed', resolved_at = now_, request = req, result = res WHERE id = h.id AND user_id = h.user_id;
    UPDATE counters SET held = counters.held - h.amount, open_count = counters.open_count - 1,
      earliest_open_expiry = CASE WHEN open_count = 1 THEN NULL ELSE earliest_open_expiry END
    WHERE user_id = h.user_id AND counter_key = h.counter_key;
    INSERT INTO entries (user_id, counter_key, kind, amount, period_start, from_grants, hold_id, meter_key, model, metadata)
    VALUES (h.user_id, h.counter_key, 'commit', charge, c.period_start, draws, h.id, h.meter_key, h.model,
      jsonb_build_object('held', h.amount, 'refunded', greatest(h.amount - charge, 0), 'overage', greatest(charge - h.amount, 0)));
  END IF;
  RETURN res;
END $$;


-- As 0030 (every rule of 0020 and 0004), with the open holds read from the counter row.
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
  earliest timestamptz;
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
         coalesce(k.held, 0), coalesce(k.open_count, 0), k.earliest_open_expiry
    INTO b_used, b_ufg, grants_left, held, n_open, earliest
  FROM (SELECT) one
  LEFT JOIN counters k ON k.user_id = p_user AND k.counter_key = p_counter
  LEFT JOIN balances b ON b.user_id = p_user AND b.counter_key = p_counter AND b.period_start = c.period_start;
  -- 4. As enter() of 0001.
  IF earliest <= now_ THEN
    SELECT x.o_held, x.o_open INTO held, n_open FROM expire_due(p_user, p_counter, now_) x;
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

-- As 0001: the lock, the expiry of holds that ran out (now found from the counter row), the
-- balance row. Called by the slow paths (grants, adjustments, multi-counter reservations).
CREATE OR REPLACE FUNCTION enter(c ctx) RETURNS void
LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
BEGIN
  PERFORM set_config('lock_timeout', coalesce(current_setting('meterkit.lock_timeout', true), '5s'), true);
  PERFORM pg_advisory_xact_lock(lock_key(c.user_id, c.counter_key));
  IF EXISTS (SELECT 1 FROM counters WHERE user_id = c.user_id AND counter_key = c.counter_key
             AND earliest_open_expiry <= clock()) THEN
    PERFORM expire_due(c.user_id, c.counter_key, clock());
  END IF;
  PERFORM 1 FROM balances WHERE user_id = c.user_id AND counter_key = c.counter_key AND period_start = c.period_start;
  IF NOT FOUND THEN
    INSERT INTO balances (user_id, counter_key, period_start, period_end)
    VALUES (c.user_id, c.counter_key, c.period_start, c.period_end) ON CONFLICT DO NOTHING;
  END IF;
END $$;

-- As 0020: quota less usage plus grants valid at p_until less what is held now (a concurrency
-- group: quota less the holds in flight), held read from the counter row.
CREATE OR REPLACE FUNCTION available(c ctx, p_until timestamptz) RETURNS bigint
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT AS $$
DECLARE
  allowance bigint;
  grants_left bigint;
  held bigint;
  n_open bigint;
BEGIN
  IF c.quota IS NULL THEN RETURN NULL; END IF;
  SELECT x.o_held, x.o_open INTO held, n_open FROM held_now(c.user_id, c.counter_key, clock()) x;
  IF c.kind = 'concurrency' THEN
    RETURN c.quota - n_open;
  END IF;
  SELECT greatest(0, c.quota - (b.used - b.used_from_grants)) INTO allowance
  FROM balances b WHERE b.user_id = c.user_id AND b.counter_key = c.counter_key AND b.period_start = c.period_start;
  SELECT coalesce(sum(remaining), 0) INTO grants_left FROM grants
  WHERE user_id = c.user_id AND counter_key = c.counter_key AND (expires_at IS NULL OR expires_at > p_until);
  RETURN coalesce(allowance, greatest(c.quota, 0)) + grants_left - held;
END $$;

-- As 0020. On a concurrency group, the earliest open hold that has not run out is found from
-- the counter row's bound on (user, counter, expires_at).
CREATE OR REPLACE FUNCTION retry_after(c ctx, p_required bigint) RETURNS int
LANGUAGE plpgsql STABLE
SET search_path FROM CURRENT AS $$
DECLARE
  later bigint;
BEGIN
  IF c.kind = 'concurrency' THEN
    IF c.quota IS NULL OR c.quota < 1 THEN RETURN NULL; END IF;
    RETURN (SELECT greatest(1, ceil(extract(epoch FROM h.expires_at - clock())))::int
            FROM counters k JOIN holds h ON h.user_id = k.user_id AND h.counter_key = k.counter_key
              AND h.expires_at >= k.earliest_open_expiry AND h.expires_at > clock() AND h.status = 'open'
            WHERE k.user_id = c.user_id AND k.counter_key = c.counter_key
            ORDER BY h.expires_at LIMIT 1);
  END IF;
  IF c.quota IS NULL OR NOT isfinite(c.period_end) THEN RETURN NULL; END IF;
  SELECT coalesce(sum(remaining), 0) INTO later FROM grants
  WHERE user_id = c.user_id AND counter_key = c.counter_key AND (expires_at IS NULL OR expires_at > c.period_end);
  IF c.quota + later < p_required THEN RETURN NULL; END IF;
  RETURN greatest(1, ceil(extract(epoch FROM c.period_end - clock())))::int;
END $$;

-- As 0020, with what is held read from the counter rows.
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
        (SELECT CASE WHEN g.kind = 'concurrency' THEN x.o_open ELSE x.o_held END FROM held_now(p_user, g.key, clock()) x) AS held,
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

-- As 0020, with what is held read from, and each part's hold added to, the counter rows.
CREATE OR REPLACE FUNCTION op_reserve_multi(p_user text, p_parts jsonb, p_ttl_ms bigint, p_key text, p_fingerprint text,
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
    IF c.quota IS NULL AND (SELECT x.o_held FROM held_now(p_user, c.counter_key, clock()) x) + amt > max_safe() THEN
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
    INSERT INTO counters (user_id, counter_key, held, open_count, earliest_open_expiry)
    VALUES (p_user, c.counter_key, amt, 1, exp)
    ON CONFLICT (user_id, counter_key) DO UPDATE SET held = counters.held + excluded.held,
      open_count = counters.open_count + 1,
      earliest_open_expiry = CASE WHEN counters.open_count = 0 THEN excluded.earliest_open_expiry
                                  ELSE least(counters.earliest_open_expiry, excluded.earliest_open_expiry) END;
    INSERT INTO entries (user_id, counter_key, kind, amount, hold_id, meter_key, model, metadata)
    VALUES (p_user, c.counter_key, 'reserve', amt, p_hold_id || '.' || c.counter_key, part.meter, p_model, p_metadata);
    parts := parts || jsonb_build_object(c.counter_key, jsonb_build_object('amount', amt, 'meterKey', part.meter,
      'remaining', CASE WHEN c.quota IS NULL THEN NULL ELSE available(c) END));
  END LOOP;
  RETURN remember(p_user, p_key, p_fingerprint, jsonb_build_object('allowed', true, 'reservationId', p_hold_id,
    'expiresAt', to_char(exp AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'), 'parts', parts));
END $$;

-- As 0032 ({expired, userIds}; the caller announces after commit), finding its work from the
-- counter rows: those whose bound says a hold may have run out (global by nature, like
-- before; without an index, since an index on the bound would make every reserve's and
-- resolution's row update non-HOT: a scan of counters, one row per user and counter, off the
-- hot path). Each is then expired under its lock by expire_due, until p_limit holds expired.
CREATE OR REPLACE FUNCTION op_sweep(p_limit int) RETURNS jsonb
LANGUAGE plpgsql
SET search_path FROM CURRENT AS $$
DECLARE
  k record;
  n bigint := 0;
  e bigint;
  users text[] := '{}';
BEGIN
  FOR k IN SELECT user_id, counter_key, lock_key(user_id, counter_key) AS lk
           FROM counters WHERE earliest_open_expiry <= clock() ORDER BY lk
  LOOP
    EXIT WHEN n >= p_limit;
    PERFORM pg_advisory_xact_lock(k.lk);
    SELECT x.o_expired INTO e FROM expire_due(k.user_id, k.counter_key, clock()) x;
    n := n + e;
    IF e > 0 AND NOT k.user_id = ANY (users) THEN
      users := users || k.user_id;
    END IF;
  END LOOP;
  RETURN jsonb_build_object('expired', n, 'userIds', to_jsonb(users));
END $$;
