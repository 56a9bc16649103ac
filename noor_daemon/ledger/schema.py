"""The ledger's schema, as forward-only migrations applied at start.

A usage row holds model, token counts, latency, status and time (plus ids) and nothing
else about a request: that is a promise of the privacy policy, so keep it that way.
"""

from __future__ import annotations

import aiosqlite

MIGRATIONS: list[str] = [
    # 1: accounts, keys, usage events and hourly rollups.
    """
    CREATE TABLE accounts (
        id          TEXT PRIMARY KEY,
        email       TEXT NOT NULL UNIQUE COLLATE NOCASE,
        plan        TEXT NOT NULL,
        status      TEXT NOT NULL DEFAULT 'active',
        created_at  INTEGER NOT NULL
    );
    CREATE TABLE api_keys (
        id              TEXT PRIMARY KEY,
        account_id      TEXT NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
        key_hash        TEXT NOT NULL UNIQUE,
        prefix          TEXT NOT NULL,
        name            TEXT,
        allowed_models  TEXT,
        limits          TEXT,
        status          TEXT NOT NULL DEFAULT 'active',
        created_at      INTEGER NOT NULL,
        expires_at      INTEGER,
        revoked_at      INTEGER,
        last_used_at    INTEGER
    );
    CREATE INDEX api_keys_account ON api_keys(account_id);
    CREATE TABLE usage_events (
        id                 INTEGER PRIMARY KEY,
        ts                 INTEGER NOT NULL,
        account_id         TEXT,
        key_id             TEXT,
        model              TEXT NOT NULL,
        provider           TEXT,
        endpoint           TEXT NOT NULL,
        status             INTEGER NOT NULL,
        prompt_tokens      INTEGER NOT NULL DEFAULT 0,
        completion_tokens  INTEGER NOT NULL DEFAULT 0,
        latency_ms         REAL NOT NULL,
        ttft_ms            REAL,
        stream             INTEGER NOT NULL DEFAULT 0,
        estimated          INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX usage_events_ts ON usage_events(ts);
    CREATE INDEX usage_events_account_ts ON usage_events(account_id, ts);
    CREATE TABLE usage_hourly (
        hour               INTEGER NOT NULL,
        account_id         TEXT NOT NULL,
        key_id             TEXT NOT NULL,
        model              TEXT NOT NULL,
        requests           INTEGER NOT NULL,
        errors             INTEGER NOT NULL,
        prompt_tokens      INTEGER NOT NULL,
        completion_tokens  INTEGER NOT NULL,
        latency_ms_sum     REAL NOT NULL,
        PRIMARY KEY (hour, account_id, key_id, model)
    ) WITHOUT ROWID;
    CREATE INDEX usage_hourly_account ON usage_hourly(account_id, hour);
    CREATE TABLE route_hourly (
        hour               INTEGER NOT NULL,
        provider           TEXT NOT NULL,
        model              TEXT NOT NULL,
        requests           INTEGER NOT NULL,
        errors             INTEGER NOT NULL,
        prompt_tokens      INTEGER NOT NULL,
        completion_tokens  INTEGER NOT NULL,
        latency_ms_sum     REAL NOT NULL,
        ttft_ms_sum        REAL NOT NULL,
        ttft_count         INTEGER NOT NULL,
        PRIMARY KEY (hour, provider, model)
    ) WITHOUT ROWID;
    """,
    # 2: the audit log. Admin actions and abuse flags, with time and actor; never content,
    # never an email (a deleted account is named by a salted hash of its email only).
    """
    CREATE TABLE audit_log (
        id          INTEGER PRIMARY KEY,
        ts          INTEGER NOT NULL,
        actor       TEXT NOT NULL,
        action      TEXT NOT NULL,
        target_type TEXT,
        target_id   TEXT,
        account_id  TEXT,
        details     TEXT
    );
    CREATE INDEX audit_log_ts ON audit_log(ts);
    CREATE INDEX audit_log_account ON audit_log(account_id, ts);
    """,
    # 3: privacy. Data-rights requests with their 30-day due dates (an erased account is named
    # by its pseudonym), one-off values (the pseudonym salt, the last retention run), policy
    # versions, and the mail outbox. An outbox row holds its recipient and message only until
    # the message is sent or given up; a `forget` row (the deletion notice) is removed whole.
    """
    CREATE TABLE privacy_requests (
        id                  INTEGER PRIMARY KEY,
        kind                TEXT NOT NULL,
        account_id          TEXT NOT NULL,
        source              TEXT NOT NULL,
        status              TEXT NOT NULL DEFAULT 'open',
        received_at         INTEGER NOT NULL,
        due_at              INTEGER NOT NULL,
        completed_at        INTEGER,
        confirm_hash        TEXT UNIQUE,
        confirm_expires_at  INTEGER,
        note                TEXT
    );
    CREATE INDEX privacy_requests_account ON privacy_requests(account_id);
    CREATE INDEX privacy_requests_status ON privacy_requests(status, due_at);
    CREATE TABLE privacy_state (
        key    TEXT PRIMARY KEY,
        value  TEXT NOT NULL
    );
    CREATE TABLE policy_versions (
        version       INTEGER PRIMARY KEY,
        published_at  INTEGER NOT NULL,
        effective_at  INTEGER NOT NULL,
        summary       TEXT NOT NULL,
        material      INTEGER NOT NULL,
        url           TEXT,
        notices       INTEGER NOT NULL DEFAULT 0
    );
    CREATE TABLE mail_outbox (
        id               INTEGER PRIMARY KEY,
        kind             TEXT NOT NULL,
        account_id       TEXT,
        recipient        TEXT,
        message          BLOB,
        status           TEXT NOT NULL DEFAULT 'pending',
        attempts         INTEGER NOT NULL DEFAULT 0,
        next_attempt_at  INTEGER NOT NULL,
        created_at       INTEGER NOT NULL,
        sent_at          INTEGER,
        last_error       TEXT,
        maildir_key      TEXT,
        forget           INTEGER NOT NULL DEFAULT 0
    );
    CREATE INDEX mail_outbox_due ON mail_outbox(status, next_attempt_at);
    CREATE INDEX mail_outbox_account ON mail_outbox(account_id);
    """,
    # 4: billing through Stripe: Stripe ids only, never card data. `billing_meter_outbox` holds one
    # row per (account, closed hour, seq) with a stable identifier, so a retry never bills twice;
    # `billing_deletions` names Stripe ids only, so an erased account leaves no id of ours behind;
    # `billing_webhook_events` makes a replayed event a no-op.
    """
    CREATE TABLE billing_customers (
        account_id            TEXT PRIMARY KEY,
        customer_id           TEXT NOT NULL UNIQUE,
        email_synced          INTEGER NOT NULL DEFAULT 1,
        subscription_id       TEXT,
        subscription_status   TEXT,
        subscription_plan     TEXT,
        period_start          INTEGER,
        period_end            INTEGER,
        subscription_event_at INTEGER,
        past_due_since        INTEGER,
        grace_until           INTEGER,
        downgraded_at         INTEGER,
        created_at            INTEGER NOT NULL,
        updated_at            INTEGER NOT NULL
    );
    CREATE INDEX billing_customers_grace ON billing_customers(grace_until);
    CREATE TABLE billing_meter_outbox (
        id               INTEGER PRIMARY KEY,
        account_id       TEXT NOT NULL,
        window_start     INTEGER NOT NULL,
        seq              INTEGER NOT NULL,
        identifier       TEXT NOT NULL UNIQUE,
        value            INTEGER NOT NULL,
        status           TEXT NOT NULL DEFAULT 'pending',
        attempts         INTEGER NOT NULL DEFAULT 0,
        next_attempt_at  INTEGER NOT NULL,
        created_at       INTEGER NOT NULL,
        sent_at          INTEGER,
        last_error       TEXT,
        UNIQUE (account_id, window_start, seq)
    );
    CREATE INDEX billing_meter_due ON billing_meter_outbox(status, next_attempt_at);
    CREATE INDEX billing_meter_window ON billing_meter_outbox(window_start);
    CREATE TABLE billing_deletions (
        id               INTEGER PRIMARY KEY,
        customer_id      TEXT NOT NULL,
        subscription_id  TEXT,
        attempts         INTEGER NOT NULL DEFAULT 0,
        next_attempt_at  INTEGER NOT NULL,
        created_at       INTEGER NOT NULL,
        last_error       TEXT
    );
    CREATE TABLE billing_webhook_events (
        event_id     TEXT PRIMARY KEY,
        type         TEXT NOT NULL,
        created      INTEGER,
        received_at  INTEGER NOT NULL,
        outcome      TEXT NOT NULL
    );
    CREATE INDEX billing_webhook_events_received ON billing_webhook_events(received_at);
    CREATE TABLE billing_state (
        key    TEXT PRIMARY KEY,
        value  TEXT NOT NULL
    );
    """,
    # 5: daily usage rollups: `usage_hourly` summed per UTC day, kept by the batch commit beside it, so
    # the dashboard's week- and month-long totals read a row per day instead of 24 (filled here from the
    # hourly rows a ledger already holds).
    """
    CREATE TABLE usage_daily (
        day                INTEGER NOT NULL,
        account_id         TEXT NOT NULL,
        key_id             TEXT NOT NULL,
        model              TEXT NOT NULL,
        requests           INTEGER NOT NULL,
        errors             INTEGER NOT NULL,
        prompt_tokens      INTEGER NOT NULL,
        completion_tokens  INTEGER NOT NULL,
        latency_ms_sum     REAL NOT NULL,
        PRIMARY KEY (day, account_id, key_id, model)
    );
    CREATE INDEX usage_daily_account ON usage_daily(account_id, day);
    INSERT INTO usage_daily (day, account_id, key_id, model, requests, errors, prompt_tokens,
        completion_tokens, latency_ms_sum)
    SELECT hour - hour % 86400000, account_id, key_id, model, sum(requests), sum(errors),
        sum(prompt_tokens), sum(completion_tokens), sum(latency_ms_sum)
    FROM usage_hourly GROUP BY hour - hour % 86400000, account_id, key_id, model;
    """,
    # 6: failed upstream attempts as facts of their own (`route_attempts`: time, provider, model, status,
    # latency; no account), so every derived table is a fold of facts and `noor ledger verify` can check it.
    # The derived tables are recomputed from the facts once: ledgers from before this version could hold
    # rollup hours whose events retention had removed, and failed attempts counted nowhere else.
    """
    CREATE TABLE route_attempts (
        id          INTEGER PRIMARY KEY,
        ts          INTEGER NOT NULL,
        provider    TEXT NOT NULL,
        model       TEXT NOT NULL,
        status      INTEGER NOT NULL,
        latency_ms  REAL NOT NULL
    );
    CREATE INDEX route_attempts_ts ON route_attempts(ts);
    DELETE FROM usage_hourly;
INSERT INTO usage_hourly (hour, account_id, key_id, model, requests, errors, prompt_tokens, completion_tokens, latency_ms_sum) SELECT hour, account_id, key_id, model, requests, errors, prompt_tokens, completion_tokens, latency_ms_sum FROM (SELECT ts - ts % 3600000 AS hour, coalesce(account_id, '') AS account_id, coalesce(key_id, '') AS key_id, model,
               count(*) AS requests, sum(CASE WHEN status >= 400 THEN 1 ELSE 0 END) AS errors,
               sum(prompt_tokens) AS prompt_tokens, sum(completion_tokens) AS completion_tokens,
               sum(latency_ms) AS latency_ms_sum
            FROM usage_events WHERE 1 = 1
            GROUP BY ts - ts % 3600000, coalesce(account_id, ''), coalesce(key_id, ''), model) AS expected;
DELETE FROM usage_daily;
INSERT INTO usage_daily (day, account_id, key_id, model, requests, errors, prompt_tokens, completion_tokens, latency_ms_sum) SELECT day, account_id, key_id, model, requests, errors, prompt_tokens, completion_tokens, latency_ms_sum FROM (SELECT ts - ts % 86400000 AS day, coalesce(account_id, '') AS account_id, coalesce(key_id, '') AS key_id, model,
               count(*) AS requests, sum(CASE WHEN status >= 400 THEN 1 ELSE 0 END) AS errors,
               sum(prompt_tokens) AS prompt_tokens, sum(completion_tokens) AS completion_tokens,
               sum(latency_ms) AS latency_ms_sum
            FROM usage_events WHERE 1 = 1
            GROUP BY ts - ts % 86400000, coalesce(account_id, ''), coalesce(key_id, ''), model) AS expected;
DELETE FROM route_hourly;
INSERT INTO route_hourly (hour, provider, model, requests, errors, prompt_tokens, completion_tokens, latency_ms_sum, ttft_ms_sum, ttft_count) SELECT hour, provider, model, requests, errors, prompt_tokens, completion_tokens, latency_ms_sum, ttft_ms_sum, ttft_count FROM (SELECT hour, provider, model, sum(requests) AS requests, sum(errors) AS errors, sum(prompt_tokens) AS prompt_tokens,
               sum(completion_tokens) AS completion_tokens, sum(latency_ms_sum) AS latency_ms_sum,
               sum(ttft_ms_sum) AS ttft_ms_sum, sum(ttft_count) AS ttft_count
            FROM (
              SELECT ts - ts % 3600000 AS hour, provider, model, 1 AS requests,
                     CASE WHEN status >= 400 THEN 1 ELSE 0 END AS errors, prompt_tokens, completion_tokens,
                     latency_ms AS latency_ms_sum, coalesce(ttft_ms, 0) AS ttft_ms_sum,
                     CASE WHEN ttft_ms IS NULL THEN 0 ELSE 1 END AS ttft_count
                FROM usage_events WHERE provider IS NOT NULL AND provider != '' AND 1 = 1
              UNION ALL
              SELECT ts - ts % 3600000, provider, model, 1, 1, 0, 0, latency_ms, 0, 0
                FROM route_attempts WHERE 1 = 1
            ) AS facts
            GROUP BY hour, provider, model) AS expected;""",
    # 7: money. Each call's cost, computed when it is metered from the tokens the provider reported (cached
    # and cache-written prompt tokens priced as such) at the prices then in effect, as an exact integer of
    # picounits (10^-12 of the currency; NULL: nobody priced the model); the rollups sum it, and count the
    # calls that used tokens without a price (all the calls metered before this version). Budget alerts
    # sent, once per scope, period and threshold.
    """
    ALTER TABLE usage_events ADD COLUMN cached_tokens INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE usage_events ADD COLUMN cache_write_tokens INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE usage_events ADD COLUMN cost INTEGER;
    ALTER TABLE usage_hourly ADD COLUMN cost INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE usage_hourly ADD COLUMN unpriced INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE usage_daily ADD COLUMN cost INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE usage_daily ADD COLUMN unpriced INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE route_hourly ADD COLUMN cost INTEGER NOT NULL DEFAULT 0;
    DELETE FROM usage_hourly;
    INSERT INTO usage_hourly (hour, account_id, key_id, model, requests, errors, prompt_tokens, completion_tokens, latency_ms_sum, cost, unpriced)
    SELECT hour, account_id, key_id, model, requests, errors, prompt_tokens, completion_tokens, latency_ms_sum, cost, unpriced FROM (SELECT ts - ts % 3600000 AS hour, coalesce(account_id, '') AS account_id, coalesce(key_id, '') AS key_id, model,
    count(*) AS requests, sum(CASE WHEN status >= 400 THEN 1 ELSE 0 END) AS errors,
    sum(prompt_tokens) AS prompt_tokens, sum(completion_tokens) AS completion_tokens,
    sum(latency_ms) AS latency_ms_sum, coalesce(sum(cost), 0) AS cost,
    sum(CASE WHEN cost IS NULL AND prompt_tokens + completion_tokens > 0 THEN 1 ELSE 0 END) AS unpriced
    FROM usage_events WHERE 1 = 1
    GROUP BY ts - ts % 3600000, coalesce(account_id, ''), coalesce(key_id, ''), model) AS expected;
    DELETE FROM usage_daily;
    INSERT INTO usage_daily (day, account_id, key_id, model, requests, errors, prompt_tokens, completion_tokens, latency_ms_sum, cost, unpriced)
    SELECT day, account_id, key_id, model, requests, errors, prompt_tokens, completion_tokens, latency_ms_sum, cost, unpriced FROM (SELECT ts - ts % 86400000 AS day, coalesce(account_id, '') AS account_id, coalesce(key_id, '') AS key_id, model,
    count(*) AS requests, sum(CASE WHEN status >= 400 THEN 1 ELSE 0 END) AS errors,
    sum(prompt_tokens) AS prompt_tokens, sum(completion_tokens) AS completion_tokens,
    sum(latency_ms) AS latency_ms_sum, coalesce(sum(cost), 0) AS cost,
    sum(CASE WHEN cost IS NULL AND prompt_tokens + completion_tokens > 0 THEN 1 ELSE 0 END) AS unpriced
    FROM usage_events WHERE 1 = 1
    GROUP BY ts - ts % 86400000, coalesce(account_id, ''), coalesce(key_id, ''), model) AS expected;
    CREATE TABLE budget_alerts (
        scope       TEXT NOT NULL,
        ident       TEXT NOT NULL,
        period      TEXT NOT NULL,
        start       INTEGER NOT NULL,
        threshold   INTEGER NOT NULL,
        sent_at     INTEGER NOT NULL,
        PRIMARY KEY (scope, ident, period, start, threshold)
    );
    """,
    # 8: an account's own limits and budgets (overriding its plan's; NULL: the plan's), and the budget
    # alerts' webhook: its body (ids and amounts, no email) and delivery state, retried until delivered.
    """
    ALTER TABLE accounts ADD COLUMN limits TEXT;
    ALTER TABLE budget_alerts ADD COLUMN webhook TEXT NOT NULL DEFAULT 'none';
    ALTER TABLE budget_alerts ADD COLUMN webhook_body TEXT;
    ALTER TABLE budget_alerts ADD COLUMN webhook_tries INTEGER NOT NULL DEFAULT 0;
    """,
    # 9: how far the rollups have folded each table of facts. On SQLite a small batch commits its facts
    # alone and its rollups follow within a fraction of a second (or at once, before anything reads or
    # deletes them); a row with an id above its table's mark is a fact the rollups do not hold yet, and
    # the next fold (at the latest when the ledger opens, after a crash) adds it. Every fact so far is in.
    """
    CREATE TABLE rollup_watermark (
        facts           TEXT PRIMARY KEY,
        folded_through  INTEGER NOT NULL
    );
    INSERT INTO rollup_watermark (facts, folded_through) SELECT 'usage_events', coalesce(max(id), 0) FROM usage_events;
    INSERT INTO rollup_watermark (facts, folded_through) SELECT 'route_attempts', coalesce(max(id), 0) FROM route_attempts;
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)


async def migrate(db: aiosqlite.Connection) -> int:
    """Bring `db` up to `SCHEMA_VERSION`; returns the version it started at."""
    async with db.execute("PRAGMA user_version") as cursor:
        (current,) = await cursor.fetchone()
    if current > SCHEMA_VERSION:
        raise RuntimeError(
            f"the ledger has schema version {current}, newer than this NoorAPI understands ({SCHEMA_VERSION})"
        )
    for version in range(current, SCHEMA_VERSION):
        await db.executescript(f"BEGIN;\n{MIGRATIONS[version]}\nPRAGMA user_version = {version + 1};\nCOMMIT;")
    return current
