-- SPDX-License-Identifier: MIT
-- notifyq's delivery log, schema version 1. Applied by `notifyqd --migrate`
-- in one transaction with the other pending migrations; safe to read, and
-- to apply by hand with psql -1 on an empty database.
CREATE SCHEMA IF NOT EXISTS notifyq;

CREATE TABLE notifyq.schema_version (
    version integer PRIMARY KEY,
    applied_at timestamptz NOT NULL DEFAULT now()
);

-- One row per job. The status only moves forward (notifyq.record_events).
-- recipient is the job's address as given, or its keyed hash
-- (postgres.recipients: hash). body holds the job's data only with
-- postgres.store_bodies: true.
CREATE TABLE notifyq.notifications (
    id bigserial PRIMARY KEY,
    queue text NOT NULL,
    job_id text NOT NULL,
    channel text,
    tenant_id text,
    user_id text,
    recipient text,
    template text,
    body jsonb,
    status text NOT NULL CHECK (status IN ('queued', 'active', 'retrying', 'sent', 'failed')),
    attempts integer NOT NULL DEFAULT 0,
    provider text,
    provider_message_id text,
    last_error text,
    created_at timestamptz NOT NULL DEFAULT now(),
    queued_at timestamptz,
    active_at timestamptz,
    sent_at timestamptz,
    failed_at timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now(),
    -- Room for the providers' status webhooks (delivered, bounced,
    -- complained): their own column, apart from our delivery status.
    provider_status text,
    provider_status_at timestamptz,
    UNIQUE (queue, job_id)
);
CREATE INDEX notifications_tenant_user ON notifyq.notifications (tenant_id, user_id);
CREATE INDEX notifications_status_time ON notifyq.notifications (status, updated_at);
CREATE INDEX notifications_provider_message ON notifyq.notifications (provider, provider_message_id)
    WHERE provider_message_id IS NOT NULL;

-- Every status a notification went through, in order: the history
-- `notifyqctl notification` prints. attempt is the attempt the event is
-- about (1 for the first run).
CREATE TABLE notifyq.notification_events (
    notification_id bigint NOT NULL REFERENCES notifyq.notifications (id) ON DELETE CASCADE,
    attempt integer NOT NULL,
    status text NOT NULL,
    at timestamptz NOT NULL,
    error text,
    PRIMARY KEY (notification_id, attempt, status)
);

-- One row per attempt and recipient.
CREATE TABLE notifyq.delivery_attempts (
    notification_id bigint NOT NULL REFERENCES notifyq.notifications (id) ON DELETE CASCADE,
    attempt integer NOT NULL,
    recipient text NOT NULL DEFAULT '',
    started_at timestamptz,
    duration_ms bigint,
    outcome text CHECK (outcome IN ('sent', 'retryable', 'permanent', 'invalid')),
    provider_reply_code text,
    provider_message_id text,
    error text,
    PRIMARY KEY (notification_id, attempt, recipient)
);

-- In-app notifications (handler inapp): one row per queue + job.
CREATE TABLE notifyq.inapp_notifications (
    id bigserial PRIMARY KEY,
    queue text NOT NULL,
    job_id text NOT NULL,
    tenant_id text,
    user_id text NOT NULL,
    title text NOT NULL,
    body text NOT NULL,
    type text NOT NULL DEFAULT 'info' CHECK (type IN ('info', 'warning', 'error', 'success')),
    metadata jsonb,
    created_at timestamptz NOT NULL DEFAULT now(),
    read_at timestamptz,
    published_at timestamptz,
    UNIQUE (queue, job_id)
);
CREATE INDEX inapp_notifications_user ON notifyq.inapp_notifications (tenant_id, user_id, created_at);

-- Where an event stands among a job's events: (attempt, phase). A later
-- event for the same job never loses to an earlier one that arrives late.
CREATE FUNCTION notifyq.status_phase(status text) RETURNS integer
    LANGUAGE sql IMMUTABLE STRICT AS $$
    SELECT CASE status WHEN 'queued' THEN 0 WHEN 'active' THEN 1 WHEN 'retrying' THEN 2
                       ELSE 3 END
$$;

-- Applies a batch of events (a JSON array, in the order they happened), as
-- the workers send them. Replaying a batch changes nothing: an event seen
-- before (same queue, job, attempt and status) is skipped whole.
-- Event keys: queue, job_id, attempt, status, at (ms since the epoch);
-- optional channel, tenant_id, user_id, recipient, template, body,
-- created (ms), provider, provider_message_id, error, started (ms),
-- duration_ms, outcome, reply_code.
CREATE FUNCTION notifyq.record_events(events jsonb) RETURNS integer
    LANGUAGE plpgsql AS $$
DECLARE
    e jsonb;
    n bigint;
    cur record;
    at timestamptz;
    att integer;
    st text;
    applied integer := 0;
BEGIN
    FOR e IN SELECT value FROM jsonb_array_elements(events) LOOP
        at := to_timestamp((e->>'at')::double precision / 1000);
        att := (e->>'attempt')::integer;
        st := e->>'status';
        INSERT INTO notifyq.notifications AS t
            (queue, job_id, channel, tenant_id, user_id, recipient, template, body, status,
             attempts, created_at, queued_at, updated_at)
        VALUES (e->>'queue', e->>'job_id', e->>'channel', e->>'tenant_id', e->>'user_id',
                e->>'recipient', e->>'template', e->'body', 'queued', 0,
                COALESCE(to_timestamp((e->>'created')::double precision / 1000), at),
                COALESCE(to_timestamp((e->>'created')::double precision / 1000), at), at)
        ON CONFLICT (queue, job_id) DO NOTHING;
        SELECT * INTO cur FROM notifyq.notifications
            WHERE queue = e->>'queue' AND job_id = e->>'job_id' FOR UPDATE;
        n := cur.id;
        INSERT INTO notifyq.notification_events (notification_id, attempt, status, at, error)
            VALUES (n, att, st, at, e->>'error')
            ON CONFLICT DO NOTHING;
        IF NOT FOUND THEN
            CONTINUE; -- seen before: a replay
        END IF;
        applied := applied + 1;
        -- Fields known at any event fill what is missing; the status and
        -- what goes with it move only forward.
        UPDATE notifyq.notifications SET
            channel = COALESCE(channel, e->>'channel'),
            tenant_id = COALESCE(tenant_id, e->>'tenant_id'),
            user_id = COALESCE(user_id, e->>'user_id'),
            recipient = COALESCE(recipient, e->>'recipient'),
            template = COALESCE(template, e->>'template'),
            body = COALESCE(body, e->'body'),
            active_at = CASE WHEN st = 'active' THEN COALESCE(active_at, at) ELSE active_at END
            WHERE id = n;
        IF st <> 'queued' THEN
            INSERT INTO notifyq.delivery_attempts AS a
                (notification_id, attempt, recipient, started_at, duration_ms, outcome,
                 provider_reply_code, provider_message_id, error)
            VALUES (n, att, COALESCE(e->>'recipient', (SELECT recipient FROM notifyq.notifications
                                                  WHERE id = n), ''),
                    to_timestamp((e->>'started')::double precision / 1000),
                    (e->>'duration_ms')::bigint, e->>'outcome', e->>'reply_code',
                    e->>'provider_message_id', e->>'error')
            -- An attempt has one outcome: the first reported stays.
            ON CONFLICT (notification_id, attempt, recipient) DO UPDATE SET
                started_at = COALESCE(a.started_at, excluded.started_at),
                duration_ms = CASE WHEN a.outcome IS NULL THEN excluded.duration_ms
                                   ELSE a.duration_ms END,
                outcome = COALESCE(a.outcome, excluded.outcome),
                provider_reply_code = CASE WHEN a.outcome IS NULL THEN excluded.provider_reply_code
                                           ELSE a.provider_reply_code END,
                provider_message_id = CASE WHEN a.outcome IS NULL THEN excluded.provider_message_id
                                           ELSE a.provider_message_id END,
                error = CASE WHEN a.outcome IS NULL THEN excluded.error ELSE a.error END;
        END IF;
        IF (att, notifyq.status_phase(st)) > (cur.attempts, notifyq.status_phase(cur.status)) THEN
            UPDATE notifyq.notifications SET
                status = st,
                attempts = att,
                provider = COALESCE(e->>'provider', provider),
                provider_message_id = COALESCE(e->>'provider_message_id', provider_message_id),
                last_error = CASE WHEN st IN ('retrying', 'failed') THEN e->>'error'
                                  ELSE last_error END,
                sent_at = CASE WHEN st = 'sent' THEN at ELSE sent_at END,
                failed_at = CASE WHEN st = 'failed' THEN at ELSE failed_at END,
                updated_at = at
                WHERE id = n;
        END IF;
    END LOOP;
    RETURN applied;
END
$$;

INSERT INTO notifyq.schema_version (version) VALUES (1);
