-- Lean writes (issue 16): fewer index entries written per ledger operation, same rows, same
-- rules. Every index below was written by every reserve (or every entry) but served a read
-- that another index answers as well. Runs with search_path set to the meter's schema.

-- ---------------------------------------------------------------------------------------
-- holds_open_expiry (expires_at) WHERE status = 'open' served op_sweep alone ("expired holds
-- of every user, soonest first"). holds_open (user_id, counter_key, expires_at) WHERE status =
-- 'open' holds exactly the same rows (the open holds, few at any time: they resolve within
-- their TTL), so the sweeper reads all of it and sorts the expired ones instead: one index
-- insert less per reserve, and an index of random user keys no longer gets a new entry that
-- a commit then leaves dead.
DROP INDEX holds_open_expiry;

-- ---------------------------------------------------------------------------------------
-- entries had two keys per row: entries_pkey (id) and entries_user (user_id, id). Every read
-- of entries names the user (history, usage by day, the version, refunds, audit scans the
-- table), none finds an entry by id alone, so one unique key (user_id, id) serves them all:
-- one index insert less per entry, i.e. per operation. id stays unique (the sequence);
-- (user_id, id) is also the key a table partitioned or distributed by user must have
-- (test/helpers/partitionByUser.ts gave it that key already).
ALTER TABLE entries DROP CONSTRAINT entries_pkey;
ALTER TABLE entries ADD CONSTRAINT entries_pkey PRIMARY KEY (user_id, id);
DROP INDEX entries_user;

-- ---------------------------------------------------------------------------------------
-- A commit and a track update the balance row in place (no index column changes, so HOT):
-- that needs free space on the row's page, which fillfactor 100 leaves only after pruning.
-- Room for new versions keeps them on the page (applies to pages written from now on).
ALTER TABLE balances SET (fillfactor = 80);
