/// The PostgreSQL store's schema as ordered, numbered migrations, recorded in `schema_migrations`.
///
/// The tables mean what SQLite's do (`Schema` in Ledger), with the differences several hosts sharing one
/// store need: a charge's identity, a read position and a quarantine entry belong to the node (host) that
/// read the CDR. Money is bigint, never floating point. Append new migrations at the end; never edit
/// one that has shipped.
enum PostgresSchema {
    struct Migration {
        let version: Int32
        let sql: String
    }

    static var latestVersion: Int32 { migrations.last?.version ?? 0 }

    /// The advisory lock every agent takes before it looks at `schema_migrations`: ten agents starting at
    /// once migrate once, the others waiting and then finding nothing to do. ("crmeter" in ASCII.)
    static let migrationLock: Int64 = 0x63_72_6d_65_74_65_72

    static let migrations: [Migration] = [
        Migration(version: 1, sql: """
            CREATE TABLE clients (
                -- A sequence never hands out a purged client's id again, as SQLite's AUTOINCREMENT.
                id bigserial PRIMARY KEY,
                username text NOT NULL UNIQUE,
                email text NOT NULL DEFAULT '',
                first_name text NOT NULL DEFAULT '',
                last_name text NOT NULL DEFAULT '',
                phone text NOT NULL DEFAULT '',
                country text NOT NULL DEFAULT '',
                state text NOT NULL DEFAULT '',
                city text NOT NULL DEFAULT '',
                zip text NOT NULL DEFAULT '',
                address1 text NOT NULL DEFAULT '',
                address2 text NOT NULL DEFAULT '',
                company text NOT NULL DEFAULT '',
                role text NOT NULL DEFAULT '',
                password_hash text NOT NULL,
                status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
                plan text NOT NULL DEFAULT 'default',
                assigned bigint NOT NULL DEFAULT 0,
                used bigint NOT NULL DEFAULT 0,
                level text NOT NULL CHECK (level IN ('ok', 'low', 'critical', 'exhausted')),
                created_at bigint NOT NULL,
                updated_at bigint NOT NULL,
                disabled_at bigint,
                CHECK ((status = 'disabled') = (disabled_at IS NOT NULL))
            );
            -- Empty emails are allowed and must not collide with each other. Folded as SQLite's lower() folds,
            -- ASCII letters only (PostgreSQL's lower() follows the locale): the same two emails collide on both.
            CREATE UNIQUE INDEX clients_email_nocase
                ON clients (translate(email, 'ABCDEFGHIJKLMNOPQRSTUVWXYZ', 'abcdefghijklmnopqrstuvwxyz')) WHERE email <> '';

            CREATE TABLE accounts (
                code text PRIMARY KEY,
                client_id bigint NOT NULL REFERENCES clients (id) ON DELETE CASCADE
            );
            CREATE INDEX accounts_client ON accounts (client_id);

            CREATE TABLE recharges (
                id bigserial PRIMARY KEY,
                client_id bigint NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
                amount bigint NOT NULL CHECK (amount > 0),
                idempotency_key text UNIQUE,
                at bigint NOT NULL
            );
            CREATE INDEX recharges_client ON recharges (client_id);

            -- Each distinct priced_by text once, as in SQLite's version 7; a charge names it by id.
            CREATE TABLE pricings (
                id bigserial PRIMARY KEY,
                text text NOT NULL UNIQUE
            );

            -- The dedupe key is (node, start_key, identity): two hosts' colliding identities are two calls,
            -- one host's file read twice is charged once. Led by node and start, as SQLite's, so a batch's
            -- charges land in the index pages of the last hours.
            CREATE TABLE usage (
                id bigserial PRIMARY KEY,
                node text NOT NULL,
                identity text NOT NULL,
                start_key bigint NOT NULL,
                client_id bigint NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
                account text NOT NULL,
                source text NOT NULL,
                position bigint NOT NULL,
                line bigint NOT NULL,
                destination text NOT NULL,
                prefix text NOT NULL,
                billsec bigint NOT NULL,
                charged_seconds bigint NOT NULL,
                cost bigint NOT NULL,
                started_at bigint,
                charged_at bigint NOT NULL,
                answered_at bigint,
                pricing bigint,
                UNIQUE (node, start_key, identity)
            );
            CREATE INDEX usage_client_moment ON usage (client_id, coalesce(answered_at, started_at));

            CREATE TABLE quarantine (
                id bigserial PRIMARY KEY,
                node text NOT NULL,
                key text NOT NULL,
                source text NOT NULL,
                position bigint NOT NULL,
                line bigint NOT NULL,
                reason text NOT NULL,
                message text NOT NULL,
                raw bytea NOT NULL,
                at bigint NOT NULL,
                start_key bigint,
                length bigint,
                sha256 text,
                UNIQUE (node, key)
            );
            CREATE INDEX quarantine_start ON quarantine (node, start_key) WHERE start_key IS NOT NULL;

            CREATE TABLE source_positions (
                node text NOT NULL,
                name text NOT NULL,
                device bigint NOT NULL,
                inode bigint NOT NULL,
                head_hash text NOT NULL,
                "offset" bigint NOT NULL,
                tail_hash text NOT NULL,
                line bigint NOT NULL,
                updated_at bigint NOT NULL,
                PRIMARY KEY (node, name)
            );

            -- No foreign key on client_id: a client.purged event outlives its client.
            CREATE TABLE outbox (
                id bigserial PRIMARY KEY,
                event_id text NOT NULL UNIQUE,
                type text NOT NULL,
                client_id bigint,
                username text NOT NULL,
                body text NOT NULL,
                created_at bigint NOT NULL,
                attempts integer NOT NULL DEFAULT 0,
                next_attempt_at bigint NOT NULL,
                dead integer NOT NULL DEFAULT 0
            );
            CREATE INDEX outbox_client ON outbox (client_id);
            CREATE INDEX outbox_created ON outbox (created_at);

            CREATE TABLE balance_dirty (
                client_id bigint PRIMARY KEY REFERENCES clients (id) ON DELETE CASCADE,
                since bigint NOT NULL
            );
            """),
        // What a SQLite ledger holds that version 1 had no table for, so `store copy` loses nothing of it:
        // rating-in-time corrections (SQLite's version 6), per-endpoint delivery state and the coalescing
        // times of balance pushes (SQLite's version 2), and the given-up tally (version 5), which is a host's
        // own files and so per node. Deliveries and endpoint state are not per node: the outbox they read
        // is the store's, and an event is delivered once to an endpoint, not once per host.
        //
        // SQLite charges made before its version 3 have no start key; PostgreSQL's key needs one. They are
        // copied with the smallest bigint, a start no CDR has, and `usage_legacy_duplicate` refuses a new
        // charge whose identity such a row of its node holds, as SQLite checks them (and its quarantine twin
        // a line quarantined under one). The triggers that call them are created by the copy, and only when
        // it copies such rows: every other store pays nothing.
        Migration(version: 2, sql: """
            CREATE TABLE adjustments (
                id bigserial PRIMARY KEY,
                client_id bigint NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
                amount bigint NOT NULL CHECK (amount <> 0),
                reason text NOT NULL CHECK (reason <> ''),
                idempotency_key text UNIQUE,
                at bigint NOT NULL
            );
            CREATE INDEX adjustments_client ON adjustments (client_id);

            -- A rerate never updates a charge: a charge's current cost is its newest adjustment's new_cost.
            CREATE TABLE usage_adjustments (
                id bigserial PRIMARY KEY,
                usage_id bigint NOT NULL REFERENCES usage (id) ON DELETE CASCADE,
                client_id bigint NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
                old_cost bigint NOT NULL,
                new_cost bigint NOT NULL CHECK (new_cost >= 0),
                priced_by text,
                at bigint NOT NULL,
                CHECK (new_cost <> old_cost)
            );
            CREATE INDEX usage_adjustments_usage ON usage_adjustments (usage_id);
            CREATE INDEX usage_adjustments_client ON usage_adjustments (client_id);

            CREATE TABLE endpoint_state (
                endpoint text PRIMARY KEY,
                "cursor" bigint NOT NULL DEFAULT 0,
                paused_at bigint,
                pause_reason text NOT NULL DEFAULT '',
                delivered bigint NOT NULL DEFAULT 0,
                last_delivered_at bigint
            );

            -- Times in unix milliseconds, as SQLite's.
            CREATE TABLE deliveries (
                event bigint NOT NULL REFERENCES outbox (id) ON DELETE CASCADE,
                endpoint text NOT NULL,
                client_id bigint,
                status text NOT NULL CHECK (status IN ('pending', 'dead')),
                attempts bigint NOT NULL DEFAULT 0,
                next_attempt_ms bigint NOT NULL,
                age_from_ms bigint NOT NULL,
                last_error text NOT NULL DEFAULT '',
                updated_ms bigint NOT NULL,
                PRIMARY KEY (event, endpoint)
            );
            CREATE INDEX deliveries_queue ON deliveries (endpoint, client_id, event) WHERE status = 'pending';
            CREATE INDEX deliveries_due ON deliveries (endpoint, next_attempt_ms) WHERE status = 'pending';
            CREATE INDEX deliveries_dead ON deliveries (endpoint, event) WHERE status = 'dead';

            CREATE TABLE balance_sent (
                client_id bigint PRIMARY KEY REFERENCES clients (id) ON DELETE CASCADE,
                at bigint NOT NULL
            );

            CREATE TABLE source_given_up (
                node text NOT NULL,
                source text NOT NULL,
                files bigint NOT NULL,
                bytes bigint NOT NULL,
                last_at bigint NOT NULL,
                PRIMARY KEY (node, source)
            );

            CREATE FUNCTION usage_legacy_duplicate() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF EXISTS (SELECT 1 FROM usage u WHERE u.node = NEW.node AND u.start_key = '-9223372036854775808'::int8
                                                   AND u.identity = NEW.identity) THEN
                    RETURN NULL;
                END IF;
                RETURN NEW;
            END
            $$;
            -- And, as SQLite does, a line is not quarantined under an identity such a charge holds.
            CREATE FUNCTION quarantine_legacy_duplicate() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF EXISTS (SELECT 1 FROM usage u WHERE u.node = NEW.node AND u.start_key = '-9223372036854775808'::int8
                                                   AND u.identity = NEW.key) THEN
                    RETURN NULL;
                END IF;
                RETURN NEW;
            END
            $$;
            """),
        // Authorize's holds, shared by every agent on every host: a hold belongs to (client, call id) and
        // expires at unix milliseconds; `node` is the host that took it (for status, never for lookups).
        // `hold_totals` is each client's sum and count, kept by a trigger on every change however it happens,
        // so an answer reads one row and the client's expired holds, never every hold the client has.
        Migration(version: 3, sql: """
            CREATE TABLE holds (
                client_id bigint NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
                call text NOT NULL,
                cost bigint NOT NULL CHECK (cost >= 0),
                expires_at bigint NOT NULL,
                node text NOT NULL,
                PRIMARY KEY (client_id, call)
            );
            CREATE INDEX holds_expiry ON holds (expires_at);
            CREATE INDEX holds_client_expiry ON holds (client_id, expires_at);
            CREATE TABLE hold_totals (
                client_id bigint PRIMARY KEY REFERENCES clients (id) ON DELETE CASCADE,
                cost bigint NOT NULL,
                calls bigint NOT NULL
            );
            CREATE FUNCTION hold_totals_keep() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                IF TG_OP IN ('DELETE', 'UPDATE') THEN
                    UPDATE hold_totals SET cost = cost - OLD.cost, calls = calls - 1 WHERE client_id = OLD.client_id;
                END IF;
                IF TG_OP IN ('INSERT', 'UPDATE') THEN
                    INSERT INTO hold_totals AS t (client_id, cost, calls) VALUES (NEW.client_id, NEW.cost, 1)
                        ON CONFLICT (client_id) DO UPDATE SET cost = t.cost + excluded.cost, calls = t.calls + 1;
                END IF;
                RETURN NULL;
            END
            $$;
            CREATE TRIGGER holds_totals AFTER INSERT OR UPDATE OR DELETE ON holds
                FOR EACH ROW EXECUTE FUNCTION hold_totals_keep();
            """),
        // Webhook delivery from a store several agents write (PostgresLedger+Delivery.swift). Ids from a
        // sequence do not commit in order, so fan-out cannot keep a cursor on them: a trigger puts every event
        // in `outbox_fanout` in the transaction that inserts it, so its row appears exactly when the event
        // commits, and fan-out takes rows from there. `backfill_from` is an endpoint's catch-up on events
        // fanned out before it was configured (NULL: caught up); endpoints a copy or an older version left
        // with a cursor catch up from it, so what SQLite had already fanned out is not queued twice.
        // `delivery_leases` holds which agent sends to each endpoint and which one coordinates, until when
        // (unix ms by the server's clock, which every agent shares).
        Migration(version: 4, sql: """
            CREATE TABLE outbox_fanout (
                event bigint PRIMARY KEY REFERENCES outbox (id) ON DELETE CASCADE
            );
            CREATE FUNCTION outbox_fanout_queue() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                INSERT INTO outbox_fanout (event) SELECT id FROM new_events;
                RETURN NULL;
            END
            $$;
            CREATE TRIGGER outbox_fanout AFTER INSERT ON outbox REFERENCING NEW TABLE AS new_events
                FOR EACH STATEMENT EXECUTE FUNCTION outbox_fanout_queue();

            ALTER TABLE endpoint_state ADD COLUMN backfill_from bigint;
            UPDATE endpoint_state SET backfill_from = "cursor";

            CREATE TABLE delivery_leases (
                name text PRIMARY KEY,
                holder text NOT NULL,
                expires_ms bigint NOT NULL
            );
            """),
        // Every change to clients or accounts, made by any agent or by hand in psql, notifies the agents at
        // its commit (NOTIFY is transactional and folds repeats within one transaction): they reload their
        // account directory and cached balances when told, rather than polling the tables.
        Migration(version: 5, sql: """
            CREATE FUNCTION notify_changes() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                PERFORM pg_notify('creditmeter_changes', '');
                RETURN NULL;
            END
            $$;
            CREATE TRIGGER clients_changed AFTER INSERT OR UPDATE OR DELETE ON clients
                FOR EACH STATEMENT EXECUTE FUNCTION notify_changes();
            CREATE TRIGGER accounts_changed AFTER INSERT OR UPDATE OR DELETE ON accounts
                FOR EACH STATEMENT EXECUTE FUNCTION notify_changes();
            """),
    ]

    /// The start key of a copied charge SQLite made before it had start keys (its version 3).
    static let legacyStartKey = Int64.min
}
