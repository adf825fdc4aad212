'use strict';
// SPDX-License-Identifier: MIT
// A broadcast as a Node app sees it: BullMQ 6.7.0's Queue adds the broadcast,
// notifyqd fans it out, BullMQ's QueueEvents hears a progress event per
// batch rising to 100 and the completion, and BullMQ's getters read the
// children as ordinary jobs of the target queue (their ids, names, data and
// opts) and the broadcast's progress as 100.
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { Queue, QueueEvents, Job } = require('bullmq');
const H = require('./helpers');

const BUILD = process.env.NOTIFYQ_BUILD || path.join(__dirname, '..', '..', '_build');
const NOTIFYQD = path.join(BUILD, 'notifyqd');
const N = 1000;
const BATCH = 50;

assert.ok(fs.existsSync(NOTIFYQD), `build notifyqd first (${NOTIFYQD})`);

test('QueueEvents sees a broadcast progress to 100; getters see its children', async () => {
  const redis = await H.startRedis();
  const dir = path.dirname(redis.socket);
  const config = path.join(dir, 'notifyq.yaml');
  fs.writeFileSync(config, [
    'redis:', `  socket: ${redis.socket}`,
    `state_dir: ${dir}/state`,
    'control:', `  socket: ${dir}/control.sock`,
    'queues:',
    '  news:', '    handler: broadcast', `    broadcast: {batch: ${BATCH}}`,
    '  mail:', '    handler: noop', '    bullmq_queue: bc-mail', '    concurrency: 50',
    ''].join('\n'));
  const connection = redis.connection();
  const news = new Queue('news', { connection });
  const mail = new Queue('bc-mail', { connection });
  // From the stream's start: a listener that connects late misses nothing.
  const events = new QueueEvents('news', { connection, lastEventId: '0-0' });
  const daemon = spawn(NOTIFYQD, ['-c', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  daemon.stderr.on('data', (d) => { log += d; });
  try {
    await events.waitUntilReady();
    const progress = [];
    events.on('progress', ({ jobId, data }) => progress.push({ jobId, data }));
    const recipients = Array.from({ length: N }, (_, i) => (
      i === 1 ? { to: `r${i}@example.org`, vars: { name: 'One' } } : { to: `r${i}@example.org` }));
    const job = await news.add('campaign', {
      queue: 'mail', templateId: 'welcome', templateVariables: { name: 'friend', team: 'Acme' },
      recipients,
    });
    const rv = await job.waitUntilFinished(events, 60000).catch((e) => {
      throw new Error(`${e.message}\nnotifyqd:\n${log}`);
    });
    assert.equal(rv.ok, true);
    assert.equal(rv.queue, 'bc-mail');
    assert.equal(rv.recipients, N);
    assert.equal(rv.added, N);
    const prefix = rv.jobIdPrefix;
    assert.match(prefix, /^bcast-[0-9a-f]{20}-$/);

    // One progress event per batch, in order, ending at 100.
    await H.waitFor(() => progress.length === N / BATCH, 5000, 'every progress event').catch((e) => {
      throw new Error(`${e.message}: ${JSON.stringify(progress)}`);
    });
    assert.ok(progress.every((p) => p.jobId === job.id));
    assert.deepEqual(progress.map((p) => p.data),
      Array.from({ length: N / BATCH }, (_, i) => ((i + 1) * BATCH * 100) / N));
    assert.equal((await Job.fromId(news, job.id)).progress, 100);

    // The children are the target queue's own jobs.
    await H.waitFor(async () => (await mail.getJobCounts('completed')).completed === N, 30000,
      'every child completed');
    const counts = await mail.getJobCounts('waiting', 'active', 'failed', 'delayed');
    assert.deepEqual(counts, { waiting: 0, active: 0, failed: 0, delayed: 0 });
    const c1 = await Job.fromId(mail, `${prefix}1`);
    assert.equal(c1.name, 'campaign');
    assert.deepEqual(c1.data, {
      templateId: 'welcome', to: 'r1@example.org', templateVariables: { name: 'One', team: 'Acme' },
    });
    assert.equal(c1.opts.jobId, `${prefix}1`);
    assert.deepEqual(c1.returnvalue, { ok: true });
    const c999 = await Job.fromId(mail, `${prefix}999`);
    assert.deepEqual(c999.data.templateVariables, { name: 'friend', team: 'Acme' });
    const ids = (await mail.getJobs(['completed'], 0, -1)).map((j) => j.id).sort();
    assert.deepEqual(ids, Array.from({ length: N }, (_, i) => `${prefix}${i}`).sort());
  } finally {
    daemon.kill('SIGTERM');
    await new Promise((resolve) => daemon.on('exit', resolve));
    await events.close();
    await news.close();
    await mail.close();
    await redis.stop();
  }
});
