-- Lean writes (issue 16): fewer index entries written per ledger operation, same rows, same
-- rules. Every index below was written by every reserve (or every entry) but served a read
-- that another index answers as well. Runs with search_path set to the meter's schema.

-- ---------------------------------------------------------------------------------------
-- holds_open_expiry (expires_at) WHERE status = 'open' served op_sweep alone ("expired holds
-- of every user, soonest first"). holds_open (user_id, counter_key, expires_at) WHERE status =
-- 'open' holds exactly the same rows (the open holds, few at any time: they resolve within
-- their TTL), so the sweeper reads all of it and sorts the expired ones instead (its query is
-- unchanged, and still global by nature): one index entry less per reserve, which its commit
-- used to leave dead.
DROP INDEX holds_open_expiry;

-- ---------------------------------------------------------------------------------------
-- entries had two keys per row: entries_pkey (id) and entries_user (user_id, id). Every read
-- of entries names the user (history, usage by day, the version, refunds, audit scans the
-- table), none finds an entry by id alone, so one unique key (user_id, id) serves them all:
-- one index insert less per entry, i.e. per operation. id stays unique (the sequence);
-- (user_id, id) is also the key a table partitioned or distributed by user must have
-- (test/helpers/partitionByUser.ts gave it that key already). On an existing database this
-- builds the new key under the table's lock: one pass over entries, once.
ALTER TABLE entries DROP CONSTRAINT entries_pkey;
ALTER TABLE entries ADD CONSTRAINT entries_pkey PRIMARY KEY (user_id, id);
DROP INDEX entries_user;

-- ---------------------------------------------------------------------------------------
-- Room on the page for the new version of an updated row (applies to pages written from now
-- on). A commit and a track update the balance row in place (no index column changes, so
-- HOT), which needs free space on the row's page; fillfactor 100 leaves some only after
-- pruning. A commit or release also rewrites its hold, to a longer row (request and result):
-- on a full page the new version goes to another page, which costs a tuple-lock WAL record,
-- a free-space lookup and a second page in the update (tools/ledgerCost.ts: 0.75 such records
-- per commit at fillfactor 100, 0.50 at 60). A hold is written once and rewritten once, about
-- 2.5 times longer, so the room it needs is most of the page; it costs no space in the end
-- (the new versions fill it instead of other pages).
-- A table already partitioned by user (docs/scale.md) takes no storage parameters itself:
-- its leaf partitions get them (a partition added later starts at the default).
DO $$
DECLARE
  t record;
  leaf regclass;
BEGIN
  FOR t IN SELECT * FROM (VALUES ('balances', 80), ('holds', 30)) v(name, ff) LOOP
    FOR leaf IN SELECT relid FROM pg_catalog.pg_partition_tree(format('%I.%I', current_schema(), t.name)::regclass) WHERE isleaf LOOP
      EXECUTE format('ALTER TABLE %s SET (fillfactor = %s)', leaf, t.ff);
    END LOOP;
  END LOOP;
END $$;

-- ---------------------------------------------------------------------------------------
-- As 0030 (every rule of 0004 and 0020: a hold resolves once; repeating the same resolution
-- returns the first result, anything else is a conflict carrying it; a part of a multi-counter
-- reservation resolves only with the others; a commit on a concurrency group records no usage;
-- every read names the user of a routed id), with one statement less: the re-read of the hold
-- under the lock is part of the read of step 3. Same signature (op_batch calls it).
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
  -- 3. Under the lock: grants valid now (available(c) of 0020), and the hold again (another
  --    call may have resolved it before we got the lock): only the columns a resolution
  --    changes, in the same statement (0030 read the whole row in a statement of its own).
  SELECT b.used, b.used_from_grants,
         (SELECT coalesce(sum(g.remaining), 0) FROM grants g
          WHERE g.user_id = c.user_id AND g.counter_key = c.counter_key AND (g.expires_at IS NULL OR g.expires_at > now_)),
         o.held, o.n, o.stale, cur.id, cur.status, cur.resolved_at, cur.request, cur.result, cur.refunded
    INTO b_used, b_ufg, grants_left, held, n_open, stale, h.id, h.status, h.resolved_at, h.request, h.result, h.refunded
  FROM (SELECT coalesce(sum(x.amount) FILTER (WHERE x.expires_at > now_), 0) AS held,
               count(*) FILTER (WHERE x.expires_at > now_) AS n,
               coalesce(bool_or(x.expires_at <= now_), false) AS stale
        FROM holds x WHERE x.user_id = c.user_id AND x.counter_key = c.counter_key AND x.status = 'open') o
  LEFT JOIN balances b ON b.user_id = c.user_id AND b.counter_key = c.counter_key AND b.period_start = c.period_start
  LEFT JOIN holds cur ON cur.id = h.id AND cur.user_id = h.user_id;
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
    -- This hold may be one of them: read what the expiry wrote.
    SELECT * INTO h FROM holds WHERE id = h.id AND user_id = h.user_id;
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

