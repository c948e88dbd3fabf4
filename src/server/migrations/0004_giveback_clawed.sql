-- A usage refund gives credits back to the grants the usage drew from. Credits taken back from
-- a grant by a clawback (a refunded or disputed pack) were never spent: they must not count as
-- room to give back to, or a refund would refill a pack the user was already repaid for.

CREATE INDEX entries_clawback ON entries (grant_id) WHERE kind = 'clawback';

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
