-- The server's own cost of a batch, with no client library: 5,000 rows made by the server itself into
-- the same schema, ON CONFLICT DO NOTHING RETURNING, then the clients locked in id order and charged.
-- In a database made by pg_commit's schema (see README): pgbench -n -f floor.sql -t 60 -c 1 URL
BEGIN;
WITH ins AS (
  INSERT INTO usage (node, identity, start_key, client_id, account, source, position, line, destination, prefix, billsec, charged_seconds, cost, started_at, charged_at, answered_at, pricing)
  SELECT 'pbx-a', 'h:' || md5(random()::text), 1780000000 + (random()*1e7)::int8, c, 'acct-' || c, '1042', g, g, '44201234567', '4420', 300, 300, 3000, 1780000000, 1780000301, 1780000003, 3
  FROM generate_series(1, 5000) g, LATERAL (SELECT 1 + (g % 100)::int8 AS c) cc
  ON CONFLICT DO NOTHING RETURNING client_id, cost)
SELECT count(*) FROM ins;
UPDATE clients SET used = used + 1 WHERE id IN (SELECT id FROM clients ORDER BY id FOR UPDATE);
COMMIT;
