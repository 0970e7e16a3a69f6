/// The ledger's schema as ordered, numbered migrations; `PRAGMA user_version` records the last one applied.
///
/// Append new migrations at the end with the next version; never edit one that has shipped.
enum Schema {
    struct Migration {
        let version: Int32
        let name: String
        let sql: String
    }

    static var latestVersion: Int32 { migrations.last?.version ?? 0 }

    // STRICT tables make SQLite refuse a REAL in an INTEGER column, so an amount can never silently
    // become floating point (e.g. through an overflowing `used + ?`).
    static let migrations: [Migration] = [
        Migration(version: 1, name: "initial", sql: """
            CREATE TABLE clients (
                -- AUTOINCREMENT: a purged client's id is never handed out again, so events that name it stay unambiguous.
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                username TEXT NOT NULL UNIQUE,
                email TEXT NOT NULL DEFAULT '',
                first_name TEXT NOT NULL DEFAULT '',
                last_name TEXT NOT NULL DEFAULT '',
                phone TEXT NOT NULL DEFAULT '',
                country TEXT NOT NULL DEFAULT '',
                state TEXT NOT NULL DEFAULT '',
                city TEXT NOT NULL DEFAULT '',
                zip TEXT NOT NULL DEFAULT '',
                address1 TEXT NOT NULL DEFAULT '',
                address2 TEXT NOT NULL DEFAULT '',
                company TEXT NOT NULL DEFAULT '',
                role TEXT NOT NULL DEFAULT '',
                password_hash TEXT NOT NULL,
                status TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
                plan TEXT NOT NULL DEFAULT 'default',
                assigned INTEGER NOT NULL DEFAULT 0,
                used INTEGER NOT NULL DEFAULT 0,
                level TEXT NOT NULL CHECK (level IN ('ok', 'low', 'critical', 'exhausted')),
                created_at INTEGER NOT NULL,
                updated_at INTEGER NOT NULL,
                disabled_at INTEGER,
                CHECK ((status = 'disabled') = (disabled_at IS NOT NULL))
            ) STRICT;
            -- Empty emails are allowed and must not collide with each other.
            CREATE UNIQUE INDEX clients_email_nocase ON clients (lower(email)) WHERE email <> '';

            CREATE TABLE accounts (
                code TEXT PRIMARY KEY,
                client_id INTEGER NOT NULL REFERENCES clients (id) ON DELETE CASCADE
            ) STRICT;
            CREATE INDEX accounts_client ON accounts (client_id);

            CREATE TABLE recharges (
                id INTEGER PRIMARY KEY,
                client_id INTEGER NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
                amount INTEGER NOT NULL CHECK (amount > 0),
                idempotency_key TEXT UNIQUE,
                at INTEGER NOT NULL
            ) STRICT;
            CREATE INDEX recharges_client ON recharges (client_id);

            CREATE TABLE usage (
                id INTEGER PRIMARY KEY,
                identity TEXT NOT NULL UNIQUE,
                client_id INTEGER NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
                account TEXT NOT NULL,
                source TEXT NOT NULL,
                position INTEGER NOT NULL,
                line INTEGER NOT NULL,
                destination TEXT NOT NULL,
                prefix TEXT NOT NULL,
                billsec INTEGER NOT NULL,
                charged_seconds INTEGER NOT NULL,
                cost INTEGER NOT NULL,
                started_at INTEGER,
                charged_at INTEGER NOT NULL
            ) STRICT;
            CREATE INDEX usage_client ON usage (client_id);
            CREATE INDEX usage_charged_at ON usage (charged_at);

            CREATE TABLE quarantine (
                id INTEGER PRIMARY KEY,
                key TEXT NOT NULL UNIQUE,
                source TEXT NOT NULL,
                position INTEGER NOT NULL,
                line INTEGER NOT NULL,
                reason TEXT NOT NULL,
                message TEXT NOT NULL,
                raw BLOB NOT NULL,
                at INTEGER NOT NULL
            ) STRICT;

            CREATE TABLE source_positions (
                name TEXT PRIMARY KEY,
                device INTEGER NOT NULL,
                inode INTEGER NOT NULL,
                head_hash TEXT NOT NULL,
                "offset" INTEGER NOT NULL,
                tail_hash TEXT NOT NULL,
                line INTEGER NOT NULL,
                updated_at INTEGER NOT NULL
            ) STRICT;

            -- No foreign key on client_id: a client.purged event outlives its client.
            CREATE TABLE outbox (
                id INTEGER PRIMARY KEY,
                event_id TEXT NOT NULL UNIQUE,
                type TEXT NOT NULL,
                client_id INTEGER,
                username TEXT NOT NULL,
                body TEXT NOT NULL,
                created_at INTEGER NOT NULL,
                attempts INTEGER NOT NULL DEFAULT 0,
                next_attempt_at INTEGER NOT NULL,
                dead INTEGER NOT NULL DEFAULT 0
            ) STRICT;
            CREATE INDEX outbox_pending ON outbox (next_attempt_at) WHERE dead = 0;
            CREATE INDEX outbox_client ON outbox (client_id);

            CREATE TABLE balance_dirty (
                client_id INTEGER PRIMARY KEY REFERENCES clients (id) ON DELETE CASCADE,
                since INTEGER NOT NULL
            ) STRICT;
            """),
        // Per-endpoint delivery state (SPEC 6). The outbox is rebuilt with AUTOINCREMENT because fan-out
        // keeps a per-endpoint cursor on outbox ids: a plain INTEGER PRIMARY KEY hands the id of a deleted
        // newest row (a purge deletes a client's events) to the next event, which the cursor has passed.
        Migration(version: 2, name: "deliveries", sql: """
            CREATE TABLE outbox_v2 (
                id INTEGER PRIMARY KEY AUTOINCREMENT,
                event_id TEXT NOT NULL UNIQUE,
                type TEXT NOT NULL,
                client_id INTEGER,
                username TEXT NOT NULL,
                body TEXT NOT NULL,
                created_at INTEGER NOT NULL,
                -- Unused since version 2 (delivery state is per endpoint, in deliveries); kept for the writers.
                attempts INTEGER NOT NULL DEFAULT 0,
                next_attempt_at INTEGER NOT NULL,
                dead INTEGER NOT NULL DEFAULT 0
            ) STRICT;
            INSERT INTO outbox_v2 SELECT id, event_id, type, client_id, username, body, created_at, attempts,
                next_attempt_at, dead FROM outbox;
            DROP TABLE outbox;
            ALTER TABLE outbox_v2 RENAME TO outbox;
            CREATE INDEX outbox_client ON outbox (client_id);
            CREATE INDEX outbox_created ON outbox (created_at);

            -- One row per endpoint ever configured: how far fan-out has read the outbox, and the 410 pause.
            CREATE TABLE endpoint_state (
                endpoint TEXT PRIMARY KEY,
                cursor INTEGER NOT NULL DEFAULT 0,
                paused_at INTEGER,
                pause_reason TEXT NOT NULL DEFAULT '',
                delivered INTEGER NOT NULL DEFAULT 0,
                last_delivered_at INTEGER
            ) STRICT;

            -- One row per (event, endpoint) still to deliver or dead; a delivered row is deleted.
            -- Times are unix milliseconds so tests can run retries on a short clock.
            CREATE TABLE deliveries (
                event INTEGER NOT NULL REFERENCES outbox (id) ON DELETE CASCADE,
                endpoint TEXT NOT NULL,
                -- Copied from the event: the ordering key, and NULL orders nothing.
                client_id INTEGER,
                status TEXT NOT NULL CHECK (status IN ('pending', 'dead')),
                attempts INTEGER NOT NULL DEFAULT 0,
                next_attempt_ms INTEGER NOT NULL,
                -- Where max_age_hours counts from: the event's time, or the operator's re-queue.
                age_from_ms INTEGER NOT NULL,
                last_error TEXT NOT NULL DEFAULT '',
                updated_ms INTEGER NOT NULL,
                PRIMARY KEY (event, endpoint)
            ) STRICT, WITHOUT ROWID;
            CREATE INDEX deliveries_queue ON deliveries (endpoint, client_id, event) WHERE status = 'pending';
            CREATE INDEX deliveries_due ON deliveries (endpoint, next_attempt_ms) WHERE status = 'pending';
            CREATE INDEX deliveries_dead ON deliveries (endpoint, event) WHERE status = 'dead';

            -- When each client's last balance.updated was made, for the coalescing interval.
            CREATE TABLE balance_sent (
                client_id INTEGER PRIMARY KEY REFERENCES clients (id) ON DELETE CASCADE,
                at INTEGER NOT NULL
            ) STRICT;
            """),
        // The dedupe index leads with the CDR's start (wall-clock seconds, no zone: `Charge.startKey`). A
        // unique index on the identity alone takes each charge at a random place, since most identities are
        // hashes: on a store of millions of rows every charge then reads and dirties its own index page, and
        // a replay slows down as the store grows. Led by the start, a batch's charges land in the few pages
        // of the last hours. Rows charged before this version keep their identity-only index (start_key NULL),
        // which a charge is also checked against while such rows exist, so nothing charged then is charged again.
        Migration(version: 3, name: "usage_start_key", sql: """
            CREATE TABLE usage_v3 (
                id INTEGER PRIMARY KEY,
                identity TEXT NOT NULL,
                start_key INTEGER,
                client_id INTEGER NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
                account TEXT NOT NULL,
                source TEXT NOT NULL,
                position INTEGER NOT NULL,
                line INTEGER NOT NULL,
                destination TEXT NOT NULL,
                prefix TEXT NOT NULL,
                billsec INTEGER NOT NULL,
                charged_seconds INTEGER NOT NULL,
                cost INTEGER NOT NULL,
                started_at INTEGER,
                charged_at INTEGER NOT NULL
            ) STRICT;
            INSERT INTO usage_v3 (id, identity, start_key, client_id, account, source, position, line, destination,
                prefix, billsec, charged_seconds, cost, started_at, charged_at)
                SELECT id, identity, NULL, client_id, account, source, position, line, destination, prefix, billsec,
                    charged_seconds, cost, started_at, charged_at FROM usage;
            DROP TABLE usage;
            ALTER TABLE usage_v3 RENAME TO usage;
            CREATE UNIQUE INDEX usage_identity ON usage (start_key, identity) WHERE start_key IS NOT NULL;
            CREATE UNIQUE INDEX usage_identity_legacy ON usage (identity) WHERE start_key IS NULL;
            CREATE INDEX usage_client ON usage (client_id);
            -- No index on charged_at any more: only `status` reads it, in one scan, and every charge paid for it.
            -- A quarantined CDR's start key: the entry reads back as it was written, and a batch's charges
            -- find the entries they release by their span of starts.
            ALTER TABLE quarantine ADD COLUMN start_key INTEGER;
            CREATE INDEX quarantine_start ON quarantine (start_key) WHERE start_key IS NOT NULL;
            """),
        // A line longer than max_line_bytes keeps only its start
        // in `raw`; its full length and SHA-256 stay here (NULL for every other entry).
        Migration(version: 4, name: "quarantine_long_lines", sql: """
            ALTER TABLE quarantine ADD COLUMN length INTEGER;
            ALTER TABLE quarantine ADD COLUMN sha256 TEXT;
            """),
        // Rotated-away files a tailer gave up because no file with their identity was left.
        Migration(version: 5, name: "source_given_up", sql: """
            CREATE TABLE source_given_up (
                source TEXT PRIMARY KEY,
                files INTEGER NOT NULL,
                bytes INTEGER NOT NULL,
                last_at INTEGER NOT NULL
            ) STRICT;
            """),
        // Rating in time: the moment that chose each charge's rate row (its answer time) and the row or rows
        // that priced it, with their validity, as JSON; NULL for charges made before this version (a rerate
        // then takes started_at as the moment: the second index finds those). A rerate never updates a
        // charge: each change is a usage_adjustments row (old and new cost), and a charge's current cost is
        // its newest adjustment's new_cost. `adjustments` are the signed corrections of assigned.
        Migration(version: 6, name: "rating_in_time", sql: """
            ALTER TABLE usage ADD COLUMN answered_at INTEGER;
            ALTER TABLE usage ADD COLUMN priced_by TEXT;
            CREATE INDEX usage_answered ON usage (answered_at) WHERE answered_at IS NOT NULL;
            CREATE INDEX usage_unanswered ON usage (started_at) WHERE answered_at IS NULL;

            CREATE TABLE usage_adjustments (
                id INTEGER PRIMARY KEY,
                usage_id INTEGER NOT NULL REFERENCES usage (id) ON DELETE CASCADE,
                client_id INTEGER NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
                old_cost INTEGER NOT NULL,
                new_cost INTEGER NOT NULL CHECK (new_cost >= 0),
                priced_by TEXT,
                at INTEGER NOT NULL,
                CHECK (new_cost <> old_cost)
            ) STRICT;
            CREATE INDEX usage_adjustments_usage ON usage_adjustments (usage_id);
            CREATE INDEX usage_adjustments_client ON usage_adjustments (client_id);

            CREATE TABLE adjustments (
                id INTEGER PRIMARY KEY,
                client_id INTEGER NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
                amount INTEGER NOT NULL CHECK (amount <> 0),
                reason TEXT NOT NULL CHECK (reason <> ''),
                idempotency_key TEXT UNIQUE,
                at INTEGER NOT NULL
            ) STRICT;
            CREATE INDEX adjustments_client ON adjustments (client_id);
            """),
        // A slimmer charge, because every index and byte of a usage row is paid by every charge and by every
        // replay. The priced_by text (about 70 bytes, a third of a row) is the same for every call one deck
        // row prices whole, so each distinct text is kept once in `pricings` and a new charge names it by id
        // (no foreign key: pricings are never deleted, and the check would cost each charge a lookup). Charges
        // made before keep their text in priced_by, which new ones leave NULL: rewriting every row would take
        // an upgrade of a store of ten million charges a minute and more memory than the store. The three
        // indexes by client, by answer and by start of unanswered rows become one by client and moment,
        // which serves every per-client read in moment order, a rerate (client by client) and the ON DELETE
        // CASCADE of a purged client.
        Migration(version: 7, name: "slim_usage", sql: """
            CREATE TABLE pricings (
                id INTEGER PRIMARY KEY,
                text TEXT NOT NULL UNIQUE
            ) STRICT;
            ALTER TABLE usage ADD COLUMN pricing INTEGER;
            DROP INDEX usage_answered;
            DROP INDEX usage_unanswered;
            DROP INDEX usage_client;
            CREATE INDEX usage_client_moment ON usage (client_id, coalesce(answered_at, started_at));
            """),
        // Authorize's holds live in the store, not in one agent's memory: every agent sharing the file
        // sees every hold, and check-and-reserve is one write transaction, so agents taking holds at the
        // same moment for one client wait for each other instead of each spending the same credit. A hold
        // belongs to (client, call id); `expires_at` is unix milliseconds, a clock every agent shares.
        // The charge that releases a hold deletes it in its own batch's transaction. `hold_totals` keeps each
        // client's sum and count, kept by triggers on every insert, update and delete however it happens
        // (a check-and-reserve, a charge, a sweep, a purge's cascade): an answer reads that row and the
        // client's expired holds by index, never every hold the client has.
        Migration(version: 8, name: "holds", sql: """
            CREATE TABLE holds (
                client_id INTEGER NOT NULL REFERENCES clients (id) ON DELETE CASCADE,
                call TEXT NOT NULL,
                cost INTEGER NOT NULL CHECK (cost >= 0),
                expires_at INTEGER NOT NULL,
                PRIMARY KEY (client_id, call)
            ) STRICT, WITHOUT ROWID;
            CREATE INDEX holds_expiry ON holds (expires_at);
            CREATE INDEX holds_client_expiry ON holds (client_id, expires_at);
            CREATE TABLE hold_totals (
                client_id INTEGER PRIMARY KEY REFERENCES clients (id) ON DELETE CASCADE,
                cost INTEGER NOT NULL,
                calls INTEGER NOT NULL
            ) STRICT;
            CREATE TRIGGER holds_added AFTER INSERT ON holds BEGIN
                INSERT INTO hold_totals (client_id, cost, calls) VALUES (new.client_id, new.cost, 1)
                    ON CONFLICT (client_id) DO UPDATE SET cost = cost + excluded.cost, calls = calls + 1;
            END;
            CREATE TRIGGER holds_removed AFTER DELETE ON holds BEGIN
                UPDATE hold_totals SET cost = cost - old.cost, calls = calls - 1 WHERE client_id = old.client_id;
            END;
            CREATE TRIGGER holds_changed AFTER UPDATE OF cost ON holds BEGIN
                UPDATE hold_totals SET cost = cost - old.cost + new.cost WHERE client_id = new.client_id;
            END;
            """),
    ]
}
