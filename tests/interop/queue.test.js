'use strict';
// SPDX-License-Identifier: MIT
// BullMQ 6.7.0 producers and readers against notifyq's queue store: jobs made
// by Queue.add/addBulk are processed by our scripts (through nq_driver, a C
// program over src/queue) in BullMQ's order, and BullMQ's own getters,
// QueueEvents and admin calls read and act on the state we leave; a job we
// add is processed by a BullMQ Worker.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const { FlowProducer, Queue, QueueEvents, Worker } = require('bullmq');
const H = require('./helpers');

assert.ok(fs.existsSync(H.DRIVER), `build nq_driver first (${H.DRIVER})`);

// Runs body with a fresh redis-server and a Queue + QueueEvents on it.
async function withQueue(name, body) {
  const redis = await H.startRedis();
  const queue = new Queue(name, { connection: redis.connection() });
  const events = new QueueEvents(name, { connection: redis.connection() });
  const seen = [];
  for (const e of ['completed', 'failed', 'retries-exhausted', 'active', 'delayed', 'drained']) {
    events.on(e, (args) => seen.push({ event: e, ...args }));
  }
  try {
    await queue.waitUntilReady();
    await events.waitUntilReady();
    await body({ redis, queue, events, seen });
  } finally {
    await events.close();
    await queue.close();
    await redis.stop();
  }
}

test('jobs added by BullMQ run in BullMQ order and read back through its getters', async () => {
  await withQueue('orders', async ({ redis, queue, seen }) => {
    await queue.addBulk([
      { name: 'a', data: { n: 1 } },
      { name: 'p2', data: { n: 2 }, opts: { priority: 2 } },
      { name: 'p1', data: { n: 3 }, opts: { priority: 1 } },
      { name: 'd', data: { n: 4 } },
      { name: 'late', data: { n: 5 }, opts: { delay: 400 } },
      { name: 'custom', data: { n: 6 }, opts: { jobId: 'welcome-42' } },
      { name: 'dedup', data: { n: 7 }, opts: { deduplication: { id: 'dd1' } } },
    ]);
    const dup = await queue.add('custom', { n: 66 }, { jobId: 'welcome-42' });
    assert.equal(dup.id, 'welcome-42');
    const dd = await queue.add('dedup', { n: 77 }, { deduplication: { id: 'dd1' } });
    assert.equal(dd.id, '7');

    const r = await H.driver(redis, 'orders', ['-n', 'notifyq-1', 'process', '7']);
    assert.equal(r.code, 0, r.stderr);
    // wait FIFO first, then priority order, then the delayed job when due
    assert.deepEqual(H.finishes(r.lines).map((f) => f[0]),
      ['1', '4', 'welcome-42', '7', '3', '2', '5']);

    const counts = await queue.getJobCounts('waiting', 'active', 'delayed', 'prioritized',
      'completed', 'failed');
    assert.deepEqual(counts, { waiting: 0, active: 0, delayed: 0, prioritized: 0,
      completed: 7, failed: 0 });
    const job = await queue.getJob('welcome-42');
    assert.deepEqual(job.data, { n: 6 }); // the duplicate changed nothing
    assert.deepEqual(job.returnvalue, { ok: true });
    assert.equal(job.attemptsMade, 1);
    assert.equal(job.attemptsStarted, 1);
    assert.equal(job.processedBy, 'notifyq-1');
    assert.ok(job.finishedOn >= job.processedOn && job.processedOn >= job.timestamp);
    assert.equal(await job.getState(), 'completed');
    assert.equal(await queue.getJobState('5'), 'completed');
    const late = await queue.getJob('5');
    assert.ok(late.processedOn >= late.timestamp + 400, 'delayed job ran early');
    // the simple-mode dedup key was released when its job completed
    const again = await queue.add('dedup', { n: 8 }, { deduplication: { id: 'dd1' } });
    assert.notEqual(again.id, '7');

    await H.waitFor(() => seen.filter((e) => e.event === 'completed').length === 7, 5000,
      'QueueEvents completed');
    const done = seen.find((e) => e.event === 'completed' && e.jobId === '1');
    assert.deepEqual(done.returnvalue, { ok: true });
    assert.equal(done.prev, 'active');
  });
});

test('retries with backoff, permanent failures and retention as BullMQ leaves them', async () => {
  await withQueue('mail', async ({ redis, queue, seen }) => {
    await queue.add('flaky', { fail: 'retryable' },
      { attempts: 3, backoff: { type: 'exponential', delay: 50 } });
    await queue.add('bad', { fail: 'permanent' }, { attempts: 3 });
    await queue.add('gone', { ok: 1 }, { removeOnComplete: true });
    for (let i = 0; i < 3; i++) await queue.add('kept', { i }, { removeOnComplete: 1 });
    await queue.add('vanish', { fail: 'permanent' }, { removeOnFail: true });

    const r = await H.driver(redis, 'mail', ['process', '7']);
    assert.equal(r.code, 0, r.stderr);
    const kinds = H.finishes(r.lines).filter((f) => f[0] === '1').map((f) => f[1]);
    assert.deepEqual(kinds, ['D', 'D', 'F']);

    const flaky = await queue.getJob('1');
    assert.equal(await flaky.getState(), 'failed');
    assert.equal(flaky.attemptsMade, 3);
    assert.equal(flaky.attemptsStarted, 3);
    assert.equal(flaky.failedReason, 'noop: retryable failure');
    assert.equal(flaky.stacktrace.length, 3);
    assert.ok(flaky.finishedOn > 0);
    const bad = await queue.getJob('2');
    assert.equal(await bad.getState(), 'failed');
    assert.equal(bad.attemptsMade, 1);
    assert.equal(bad.failedReason, 'noop: permanent failure');
    assert.equal(await queue.getJob('3'), undefined); // removeOnComplete: true
    assert.equal(await queue.getJob('7'), undefined); // removeOnFail: true
    assert.deepEqual(await queue.getCompleted().then((js) => js.map((j) => j.id)), ['6']);
    const counts = await queue.getJobCounts('completed', 'failed', 'delayed', 'waiting');
    assert.deepEqual(counts, { completed: 1, failed: 2, delayed: 0, waiting: 0 });

    await H.waitFor(() => seen.filter((e) => e.event === 'failed').length === 3, 5000,
      'QueueEvents failed');
    const ex = seen.filter((e) => e.event === 'retries-exhausted').map((e) => e.jobId).sort();
    assert.deepEqual(ex, ['1', '7']); // bad had attempts left: no retries-exhausted
    assert.equal(seen.filter((e) => e.event === 'delayed' && e.jobId === '1').length, 2);
  });
});

test('BullMQ retryJobs, clean and remove work on notifyq-made state', async () => {
  await withQueue('admin', async ({ redis, queue }) => {
    await queue.add('f1', { fail: 'permanent' });
    await queue.add('f2', { fail: 'permanent' });
    await queue.add('ok', { ok: 1 });
    assert.equal((await H.driver(redis, 'admin', ['process', '3'])).code, 0);
    assert.deepEqual(await queue.getJobCounts('failed', 'completed'), { failed: 2, completed: 1 });

    await queue.retryJobs({ state: 'failed' });
    assert.deepEqual(await queue.getJobCounts('failed', 'waiting'), { failed: 0, waiting: 2 });
    const cleaned = await queue.clean(0, 100, 'completed');
    assert.deepEqual(cleaned, ['3']);
    const f2 = await queue.getJob('2');
    await f2.remove();
    assert.equal(await queue.getJob('2'), undefined);
    // what is left still runs under notifyq
    assert.equal((await H.driver(redis, 'admin', ['process', '1'])).code, 0);
    assert.equal(await queue.getJobState('1'), 'failed');
    assert.equal((await queue.getJob('1')).attemptsMade, 2);
  });
});

test('a job added by notifyq is processed by a BullMQ Worker', async () => {
  await withQueue('inbox', async ({ redis, queue }) => {
    const added = await H.driver(redis, 'inbox', ['add', 'welcome', '{"to":"a@b.c"}', '0', '0', '2']);
    assert.equal(added.code, 0, added.stderr);
    assert.deepEqual(added.lines, ['1 added']);
    const dup = await H.driver(redis, 'inbox', ['add', 'x', '{}', '0', '0', '0', 'only-once']);
    assert.deepEqual(dup.lines, ['only-once added']);
    const dup2 = await H.driver(redis, 'inbox', ['add', 'x', '{}', '0', '0', '0', 'only-once']);
    assert.deepEqual(dup2.lines, ['only-once duplicated']);

    const got = [];
    const worker = new Worker('inbox', async (job) => {
      got.push({ id: job.id, name: job.name, data: job.data, attempts: job.opts.attempts });
      return { sent: true };
    }, { connection: redis.connection() });
    try {
      await H.waitFor(async () => (await queue.getJobCounts('completed')).completed === 2, 5000,
        'BullMQ worker');
    } finally {
      await worker.close();
    }
    assert.deepEqual(got[0], { id: '1', name: 'welcome', data: { to: 'a@b.c' }, attempts: 2 });
    assert.deepEqual((await queue.getJob('1')).returnvalue, { sent: true });
  });
});

test('Queue.pause() from Node stops notifyq fetching; resume() restarts it', async () => {
  await withQueue('paused', async ({ redis, queue }) => {
    await queue.pause();
    await queue.add('x', {});
    const r = await H.driver(redis, 'paused', ['-t', '800', 'process', '1']);
    assert.equal(r.code, 3); // timed out: nothing fetched
    assert.equal(await queue.getJobState('1'), 'waiting');
    const bg = H.driverSpawn(redis, 'paused', ['-t', '10000', 'process', '1']);
    await H.sleep(200);
    await queue.resume();
    const code = await new Promise((res) => bg.once('exit', res));
    assert.equal(code, 0);
    assert.equal(await queue.getJobState('1'), 'completed');
  });
});

test('Queue.getWorkers() counts notifyq workers by their blocking connection', async () => {
  await withQueue('seen', async ({ redis, queue }) => {
    const bg = H.driverSpawn(redis, 'seen', ['-n', 'notifyq-7', '-t', '10000', 'process', '1']);
    try {
      const workers = await H.waitFor(async () => {
        const w = await queue.getWorkers();
        return w.length ? w : null;
      }, 5000, 'getWorkers');
      assert.equal(workers.length, 1);
      assert.equal(workers[0].name, 'seen');
      assert.equal(workers[0].rawname, 'bull:c2Vlbg==:w:notifyq-7');
    } finally {
      bg.kill('SIGTERM');
    }
  });
});

test('a BullMQ worker killed mid-job: notifyq\'s stalled check recovers the job', async () => {
  await withQueue('stall', async ({ redis, queue }) => {
    await queue.add('slow', { ok: 1 });
    const child = require('node:child_process').spawn(process.execPath,
      [require('node:path').join(__dirname, 'hang-worker.js'), redis.socket, 'stall'],
      { stdio: 'ignore' });
    await H.waitFor(async () => (await queue.getJobState('1')) === 'active', 5000, 'active');
    child.kill('SIGKILL');
    await new Promise((res) => child.once('exit', res));
    // lock of 1 s expires; our check (every 300 ms) flags, then requeues it
    const r = await H.driver(redis, 'stall', ['-i', '300', '-t', '10000', 'process', '1']);
    assert.equal(r.code, 0, r.stderr);
    assert.ok(r.lines.includes('stalled 1'), r.lines.join('\n'));
    const job = await queue.getJob('1');
    assert.equal(await job.getState(), 'completed');
    assert.equal(job.stalledCounter, 1);
    assert.equal(job.attemptsStarted, 2);
  });
});

test('the store reconnects after Redis restarts and goes on processing', async () => {
  const redis = await H.startRedis();
  try {
    const bg = H.driverSpawn(redis, 'again', ['-t', '15000', 'process', '1']);
    const exited = new Promise((res) => bg.once('exit', res));
    await H.sleep(300);
    await redis.restart(500);
    const queue = new Queue('again', { connection: redis.connection() });
    try {
      await queue.add('after-restart', { n: 1 });
      assert.equal(await exited, 0);
      assert.equal(await queue.getJobState('1'), 'completed');
    } finally {
      await queue.close();
    }
  } finally {
    await redis.stop();
  }
});

test('flows: children finished by notifyq release or fail their BullMQ parent', async () => {
  const redis = await H.startRedis();
  const flows = new FlowProducer({ connection: redis.connection() });
  const parents = new Queue('parents', { connection: redis.connection() });
  try {
    const ok = await flows.add({ name: 'report', queueName: 'parents', data: {},
      children: [{ name: 'part', queueName: 'kids', data: { n: 1 } },
        { name: 'part', queueName: 'kids', data: { n: 2 } }] });
    assert.equal(await ok.job.getState(), 'waiting-children');
    assert.equal((await H.driver(redis, 'kids', ['process', '2'])).code, 0);
    assert.equal(await ok.job.getState(), 'waiting');
    const values = await ok.job.getChildrenValues();
    assert.deepEqual(Object.values(values), [{ ok: true }, { ok: true }]);

    const bad = await flows.add({ name: 'report2', queueName: 'parents', data: {},
      children: [{ name: 'part', queueName: 'kids', data: { fail: 'permanent' },
        opts: { failParentOnFailure: true } },
      { name: 'part', queueName: 'kids', data: { n: 3 } }] });
    const r = await H.driver(redis, 'kids', ['process', '1']);
    assert.equal(r.code, 0);
    assert.equal(await bad.job.getState(), 'waiting'); // released to fail
    // our worker fails the parent unrun with BullMQ's deferred reason
    assert.equal((await H.driver(redis, 'parents', ['process', '2'])).code, 0);
    assert.equal(await ok.job.getState(), 'completed');
    const failed = await parents.getJob(bad.job.id);
    assert.equal(await failed.getState(), 'failed');
    assert.match(failed.failedReason, /^child bull:kids:\S+ failed$/);
  } finally {
    await parents.close();
    await flows.close();
    await redis.stop();
  }
});
