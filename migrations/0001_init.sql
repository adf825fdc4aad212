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

-- Applies a batch of events of one queue and channel (a JSON array, in the
-- order they happened), as the workers send them: a few set-based
-- statements per batch, not per event. Replaying a batch changes nothing:
-- an event seen before (same queue, job, attempt and status) is skipped
-- whole. Returns the number of events applied.
-- Event keys: job_id, attempt, status, at (ms since the epoch); optional
-- tenant_id, user_id, recipient, template, body, created (ms), provider,
-- provider_message_id, error, started (ms), duration_ms, outcome,
-- reply_code. A job's first `active` event with `created` stands for its
-- `queued` event too (attempt 0, at created): one event less per job.
CREATE FUNCTION notifyq.record_events(events jsonb, p_queue text, p_channel text) RETURNS integer
    LANGUAGE plpgsql AS $$
DECLARE
    fresh jsonb;
BEGIN
    -- Every job has its row.
    INSERT INTO notifyq.notifications AS t
        (queue, job_id, status, attempts, created_at, queued_at, updated_at)
    SELECT DISTINCT ON (e->>'job_id') p_queue, e->>'job_id', 'queued', 0,
           to_timestamp(coalesce(e->>'created', e->>'at')::double precision / 1000),
           to_timestamp(coalesce(e->>'created', e->>'at')::double precision / 1000),
           to_timestamp((e->>'at')::double precision / 1000)
      FROM jsonb_array_elements(events) WITH ORDINALITY AS x(e, ord)
     ORDER BY e->>'job_id', ord
    ON CONFLICT (queue, job_id) DO NOTHING;

    -- The history; what it already holds is a replay, left out of the rest.
    WITH ev AS (
        -- A scalar subquery: one index lookup per event, whatever the
        -- planner thinks of the table's size (a join scanned the queue).
        SELECT (SELECT n.id FROM notifyq.notifications n
                 WHERE n.queue = p_queue AND n.job_id = x.e->>'job_id') AS nid,
               x.ord, x.e, (x.e->>'attempt')::integer AS att, x.e->>'status' AS st
          FROM jsonb_array_elements(events) WITH ORDINALITY AS x(e, ord)
    ), ins AS (
        INSERT INTO notifyq.notification_events (notification_id, attempt, status, at, error)
        SELECT nid, att, st, at, err FROM (
            SELECT nid, att, st, to_timestamp((e->>'at')::double precision / 1000) AS at,
                   e->>'error' AS err, ord, 1 AS k
              FROM ev
            UNION ALL
            SELECT nid, 0, 'queued', to_timestamp((e->>'created')::double precision / 1000),
                   NULL, ord, 0
              FROM ev WHERE st = 'active' AND att = 1 AND e ? 'created') all_ev
         ORDER BY ord, k
        ON CONFLICT DO NOTHING
        RETURNING notification_id, attempt, status
    )
    SELECT coalesce(jsonb_agg(ev.e || jsonb_build_object('nid', ev.nid, 'ord', ev.ord)
                              ORDER BY ev.ord), '[]')
      INTO fresh
      FROM ins JOIN ev ON ev.nid = ins.notification_id AND ev.att = ins.attempt
                      AND ev.st = ins.status;

    -- One update per row: fields known at any event fill what is missing;
    -- the status, and what goes with it, move only forward.
    WITH agg AS (
        SELECT (e->>'nid')::bigint AS nid, p_channel AS channel,
               max(e->>'tenant_id') AS tenant_id, max(e->>'user_id') AS user_id,
               max(e->>'recipient') AS recipient, max(e->>'template') AS template,
               (array_agg(e->'body') FILTER (WHERE e ? 'body'))[1] AS body,
               min(to_timestamp((e->>'at')::double precision / 1000))
                   FILTER (WHERE e->>'status' = 'active') AS active_at
          FROM jsonb_array_elements(fresh) AS e GROUP BY 1
    ), top AS (
        SELECT DISTINCT ON (nid) nid, att, st, e,
               to_timestamp((e->>'at')::double precision / 1000) AS at
          FROM (SELECT (e->>'nid')::bigint AS nid, (e->>'attempt')::integer AS att,
                       e->>'status' AS st, (e->>'ord')::bigint AS ord, e
                  FROM jsonb_array_elements(fresh) AS e) y
         ORDER BY nid, att DESC, notifyq.status_phase(st) DESC, ord DESC
    ), f AS (
        SELECT agg.*, top.att, top.st, top.e, top.at,
               (SELECT (top.att, notifyq.status_phase(top.st))
                           > (o.attempts, notifyq.status_phase(o.status))
                  FROM notifyq.notifications o WHERE o.id = agg.nid) AS newer
          FROM agg JOIN top USING (nid)
    )
    UPDATE notifyq.notifications n SET
        channel = coalesce(n.channel, f.channel),
        tenant_id = coalesce(n.tenant_id, f.tenant_id),
        user_id = coalesce(n.user_id, f.user_id),
        recipient = coalesce(n.recipient, f.recipient),
        template = coalesce(n.template, f.template),
        body = coalesce(n.body, f.body),
        active_at = coalesce(n.active_at, f.active_at),
        status = CASE WHEN f.newer THEN f.st ELSE n.status END,
        attempts = CASE WHEN f.newer THEN f.att ELSE n.attempts END,
        provider = CASE WHEN f.newer THEN coalesce(f.e->>'provider', n.provider)
                        ELSE n.provider END,
        provider_message_id = CASE WHEN f.newer
                                   THEN coalesce(f.e->>'provider_message_id',
                                                 n.provider_message_id)
                                   ELSE n.provider_message_id END,
        last_error = CASE WHEN f.newer AND f.st IN ('retrying', 'failed') THEN f.e->>'error'
                          ELSE n.last_error END,
        sent_at = CASE WHEN f.newer AND f.st = 'sent' THEN f.at ELSE n.sent_at END,
        failed_at = CASE WHEN f.newer AND f.st = 'failed' THEN f.at ELSE n.failed_at END,
        updated_at = CASE WHEN f.newer THEN f.at ELSE n.updated_at END
      FROM f
     WHERE n.id = f.nid;

    -- One row per attempt: started by its active event, finished by its
    -- first outcome (an attempt has one; a later report does not change it).
    INSERT INTO notifyq.delivery_attempts AS a
        (notification_id, attempt, recipient, started_at, duration_ms, outcome,
         provider_reply_code, provider_message_id, error)
    SELECT DISTINCT ON (nid, att) nid, att,
           coalesce(e->>'recipient', (SELECT n.recipient FROM notifyq.notifications n
                                       WHERE n.id = x.nid), ''),
           to_timestamp((e->>'started')::double precision / 1000),
           (e->>'duration_ms')::bigint, e->>'outcome', e->>'reply_code',
           e->>'provider_message_id', e->>'error'
      FROM (SELECT (e->>'nid')::bigint AS nid, (e->>'attempt')::integer AS att,
                   (e->>'ord')::bigint AS ord, e
              FROM jsonb_array_elements(fresh) AS e
             WHERE e->>'status' <> 'queued') x
     ORDER BY nid, att, (e->>'outcome') IS NULL, ord
    ON CONFLICT (notification_id, attempt, recipient) DO UPDATE SET
        started_at = coalesce(a.started_at, excluded.started_at),
        duration_ms = CASE WHEN a.outcome IS NULL THEN excluded.duration_ms
                           ELSE a.duration_ms END,
        outcome = coalesce(a.outcome, excluded.outcome),
        provider_reply_code = CASE WHEN a.outcome IS NULL THEN excluded.provider_reply_code
                                   ELSE a.provider_reply_code END,
        provider_message_id = CASE WHEN a.outcome IS NULL THEN excluded.provider_message_id
                                   ELSE a.provider_message_id END,
        error = CASE WHEN a.outcome IS NULL THEN excluded.error ELSE a.error END;

    RETURN jsonb_array_length(fresh);
END
$$;

INSERT INTO notifyq.schema_version (version) VALUES (1);
