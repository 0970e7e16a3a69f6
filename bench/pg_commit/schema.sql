-- pg_commit's schema (the same as SQL.schema in Sources/pg_commit/LibPQ.swift), for floor.sql.
CREATE TABLE usage (id bigserial primary key, node text not null, identity text not null,
          start_key bigint not null, client_id bigint not null, account text not null, source text not null,
          position bigint not null, line bigint not null, destination text not null, prefix text not null,
          billsec bigint not null, charged_seconds bigint not null, cost bigint not null, started_at bigint,
          charged_at bigint not null, answered_at bigint, pricing bigint, unique (node, start_key, identity));
CREATE INDEX usage_client_moment ON usage (client_id, coalesce(answered_at, started_at));
CREATE TABLE clients (id bigint primary key, used bigint not null);
INSERT INTO clients SELECT g, 0 FROM generate_series(1, 100) AS g;
