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
        // Authorize's holds, shared by every agent on every host: a hold belongs to (client, call id) and
        // expires at unix milliseconds; `node` is the host that took it (for status, never for lookups).
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
            """),
    ]
}
