'use strict';
// SPDX-License-Identifier: MIT
// notifyqctl's queue commands against BullMQ 6.7.0 itself: a job made by
// `notifyqctl send` is processed by BullMQ's own Worker with the data and
// options given, and jobs that a BullMQ Worker failed are listed, shown,
// retried, removed and purged by notifyqctl, with BullMQ's getters agreeing
// at every step.
const test = require('node:test');
const assert = require('node:assert/strict');
const { execFile } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { Queue, Worker } = require('bullmq');
const H = require('./helpers');

const BUILD = process.env.NOTIFYQ_BUILD || path.join(__dirname, '..', '..', '_build');
const NOTIFYQCTL = path.join(BUILD, 'notifyqctl');

assert.ok(fs.existsSync(NOTIFYQCTL), `build notifyqctl first (${NOTIFYQCTL})`);

// A config next to the private Redis: queue "mail" is BullMQ queue "ctl-mail".
function writeConfig(redis) {
  const file = path.join(path.dirname(redis.socket), 'notifyq.yaml');
  fs.writeFileSync(file, [
    'redis:', `  socket: ${redis.socket}`,
    'control:', `  socket: ${path.join(path.dirname(redis.socket), 'none.sock')}`,
    'queues:', '  mail:', '    handler: noop', '    bullmq_queue: ctl-mail', ''].join('\n'));
  return file;
}

// Runs notifyqctl -c CONFIG ARGS; resolves { code, stdout, stderr }.
function ctl(config, ...args) {
  return new Promise((resolve, reject) => {
    execFile(NOTIFYQCTL, ['-c', config, ...args], { timeout: 30000 }, (err, stdout, stderr) => {
      if (err && typeof err.code !== 'number') return reject(err);
      resolve({ code: err ? err.code : 0, stdout, stderr });
    });
  });
}

async function ctlJson(config, ...args) {
  const r = await ctl(config, ...args, '--json');
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}

async function send(config, ...args) {
  const r = await ctl(config, 'send', 'mail', ...args);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.trim();
}

async function withSetup(body) {
  const redis = await H.startRedis();
  const config = writeConfig(redis);
  const queue = new Queue('ctl-mail', { connection: redis.connection() });
  try {
    await queue.waitUntilReady();
    await body({ redis, config, queue });
  } finally {
    await queue.close();
    await redis.stop();
  }
}

test('jobs sent by notifyqctl run under a BullMQ Worker with their options', async () => {
  await withSetup(async ({ redis, config, queue }) => {
    const plain = await send(config, '--data', '{"to":"a@b.c","n":1}', '--name', 'welcome');
    const low = await send(config, '--data', '{"n":2}', '--priority', '3');
    const high = await send(config, '--data', '{"n":3}', '--priority', '1');
    const later = await send(config, '--data', '{"n":4}', '--delay', '1500ms');
    const flaky = await send(config, '--data', '{"n":5,"flaky":true}', '--attempts', '3',
      '--backoff', 'fixed:100ms', '--job-id', 'flaky-1');
    assert.equal(flaky, 'flaky-1');
    assert.equal(await queue.getJobState(later), 'delayed');
    assert.equal(await queue.getJobState(high), 'prioritized');

    const seen = [];
    const worker = new Worker('ctl-mail', async (job) => {
      seen.push({ id: job.id, name: job.name, data: job.data, made: job.attemptsMade });
      if (job.data.flaky && job.attemptsMade < 2) throw new Error('try again');
      return { sent: job.data.n };
    }, { connection: redis.connection(), concurrency: 1 });
    try {
      await H.waitFor(async () => (await queue.getCompletedCount()) === 5, 10000,
        'BullMQ worker finishing 5 jobs');
    } finally {
      await worker.close();
    }
    // FIFO wait list first, then priorities (1 before 3), the delayed job when due
    const firstRuns = seen.map((s) => s.id).filter((id, i, a) => a.indexOf(id) === i);
    assert.deepEqual(firstRuns.slice(0, 2), [plain, flaky]);
    assert.deepEqual(firstRuns.slice(2, 4), [high, low]);
    assert.equal(seen[0].name, 'welcome');
    assert.deepEqual(seen[0].data, { to: 'a@b.c', n: 1 });

    const p = await queue.getJob(plain);
    assert.deepEqual(p.returnvalue, { sent: 1 });
    assert.equal(p.opts.attempts, 0); // as Queue.add leaves an unset attempts
    assert.equal((await queue.getJob(high)).opts.priority, 1);
    assert.equal((await queue.getJob(high)).priority, 1);
    const d = await queue.getJob(later);
    assert.equal(d.opts.delay, 1500);
    assert.ok(d.processedOn >= d.timestamp + 1500, 'the delayed job ran early');
    const f = await queue.getJob('flaky-1');
    assert.deepEqual(f.opts.backoff, { type: 'fixed', delay: 100 });
    assert.equal(f.opts.attempts, 3);
    assert.equal(f.attemptsMade, 3);
    assert.deepEqual(f.returnvalue, { sent: 5 });
    assert.equal(seen.filter((s) => s.id === 'flaky-1').length, 3);
  });
});

test('jobs a BullMQ Worker failed are listed, retried, removed and purged by notifyqctl',
  async () => {
    await withSetup(async ({ redis, config, queue }) => {
      for (let i = 1; i <= 4; i++) await queue.add(`bad${i}`, { i }, { attempts: 2 });
      await queue.add('good', { i: 5 });
      const failing = new Set(['1', '2', '3', '4']);
      const worker = new Worker('ctl-mail', async (job) => {
        if (failing.has(job.id)) throw new Error(`boom ${job.id}\nsecond line`);
        return { ok: job.id };
      }, { connection: redis.connection() });
      try {
        await H.waitFor(async () => (await queue.getFailedCount()) === 4, 10000, 'failures');

        const list = await ctlJson(config, 'failed', 'list', 'mail');
        const failed = await queue.getFailed();
        assert.equal(list.total, 4);
        assert.deepEqual(list.jobs.map((j) => j.id), failed.map((j) => j.id));
        for (const [i, j] of list.jobs.entries()) {
          assert.equal(j.name, failed[i].name);
          assert.equal(j.failed_reason, failed[i].failedReason);
          assert.equal(j.attempts_made, failed[i].attemptsMade);
          assert.equal(j.attempts, 2);
          assert.equal(j.finished_at_ms, failed[i].finishedOn);
          assert.equal(j.finished_at, new Date(failed[i].finishedOn).toISOString());
        }
        const human = await ctl(config, 'failed', 'list', 'mail');
        assert.match(human.stdout.split('\n')[1], /^\S+\s+bad\d\s+\S+Z\s+2\/2\s+boom \d$/);

        const shown = await ctlJson(config, 'job', 'show', 'mail', '2');
        const two = await queue.getJob('2');
        assert.equal(shown.state, await two.getState());
        assert.deepEqual(shown.stacktrace, two.stacktrace);
        assert.deepEqual(shown.data, two.data);
        assert.deepEqual(shown.opts, JSON.parse(JSON.stringify(two.opts)));
        assert.equal(shown.attempts_started, two.attemptsStarted);
        assert.equal(shown.processed_at_ms, two.processedOn);

        const counts = await ctlJson(config, 'counts', 'mail');
        const theirs = await queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized',
          'completed', 'failed');
        for (const k of Object.keys(theirs)) assert.equal(counts[k], theirs[k], k);

        // retried by us, run again (and completed) by the BullMQ worker
        failing.delete('1');
        const r = await ctl(config, 'failed', 'retry', 'mail', '1');
        assert.equal(r.code, 0, r.stderr);
        await H.waitFor(async () => (await queue.getJobState('1')) === 'completed', 5000,
          'retried job completed');
        assert.deepEqual((await queue.getJob('1')).returnvalue, { ok: '1' });

        const rm = await ctl(config, 'job', 'remove', 'mail', '2');
        assert.equal(rm.code, 0, rm.stderr);
        assert.equal(await queue.getJob('2'), undefined);

        failing.delete('3');
        const all = await ctlJson(config, 'failed', 'retry', 'mail', '--all');
        assert.equal(all.retried, 2);
        await H.waitFor(async () => (await queue.getFailedCount()) === 1 &&
          (await queue.getJobState('3')) === 'completed', 5000, 'retry all');
        assert.equal(await queue.getJobState('4'), 'failed');

        const purged = await ctlJson(config, 'failed', 'purge', 'mail');
        assert.equal(purged.deleted, 1);
        assert.equal(await queue.getFailedCount(), 0);
        assert.equal(await queue.getJob('4'), undefined);
      } finally {
        await worker.close();
      }
    });
  });

test('promote, clean and pause by notifyqctl are what BullMQ reads', async () => {
  await withSetup(async ({ config, queue }) => {
    const job = await queue.add('later', { n: 1 }, { delay: 3600000 });
    assert.equal((await ctl(config, 'job', 'promote', 'mail', job.id)).code, 0);
    assert.equal(await queue.getJobState(job.id), 'waiting');
    const again = await ctl(config, 'job', 'promote', 'mail', job.id);
    assert.equal(again.code, 1);
    assert.equal(again.stderr, `notifyqctl: job ${job.id} of mail is waiting, not delayed\n`);

    const r = await ctlJson(config, 'clean', 'mail', '--state', 'wait', '--grace', '0');
    assert.equal(r.deleted, 1);
    assert.equal(await queue.getWaitingCount(), 0);
    assert.equal(await queue.getJob(job.id), undefined);

    const p = await ctl(config, 'pause', 'mail');
    assert.equal(p.code, 0, p.stderr);
    assert.equal(await queue.isPaused(), true);
    assert.equal((await ctlJson(config, 'counts', 'mail')).paused, true);
    await queue.resume(); // from Node: notifyqctl sees it
    assert.equal((await ctlJson(config, 'counts', 'mail')).paused, false);
    await queue.pause();
    assert.equal((await ctl(config, 'resume', 'mail')).code, 0);
    assert.equal(await queue.isPaused(), false);
  });
});
