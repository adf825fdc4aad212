'use strict';
// SPDX-License-Identifier: MIT
// BullMQ parity, part 2 (issue 14): each scenario runs twice on a fresh
// redis-server, once processed by BullMQ 6.7.0's own Worker and once by
// notifyq's queue store (nq_driver, with the queue defaults of notifyq's
// config loader), and the same assertions must hold for both: the reference
// run proves the test.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const { Queue, Worker } = require('bullmq');
const IORedis = require('ioredis');
const H = require('./helpers');

assert.ok(fs.existsSync(H.DRIVER), `build nq_driver first (${H.DRIVER})`);

const LIMIT = { timeout: 60000 };

// The noop handler's rules (nq_driver.c), as a BullMQ processor.
async function noop(job) {
  if (job.data.sleep_ms) await H.sleep(job.data.sleep_ms);
  if (job.data.fail === 'retryable') throw new Error('noop: retryable failure');
  if (job.data.fail === 'permanent') throw new Error('noop: permanent failure');
  return { ok: true };
}

// Runs scenario on a fresh Redis for each implementation:
//   setup({ queue }) adds jobs with BullMQ's Queue, before any worker runs;
//   during({ queue }) acts while the worker runs (optional);
//   done(queue, ctx) says when processing is over;
//   check({ queue, client, events, who, ctx }) asserts the outcome.
async function both(name, { setup, during, done, driverArgs = [], check }) {
  for (const who of ['bullmq', 'notifyq']) {
    const redis = await H.startRedis();
    const queue = new Queue(name, { connection: redis.connection() });
    const client = new IORedis(redis.connection());
    try {
      await queue.waitUntilReady();
      const ctx = await setup({ queue });
      if (who === 'bullmq') {
        const worker = new Worker(name, noop, { connection: redis.connection() });
        try {
          if (during) await during({ queue, ctx });
          await H.waitFor(() => done(queue, ctx), 20000, `${name}: BullMQ worker done`);
        } finally {
          await worker.close();
        }
      } else {
        const child = H.driverSpawn(redis, name, ['-t', '20000', ...driverArgs]);
        let stderr = '';
        child.stderr.on('data', (b) => { stderr += b; });
        const exited = new Promise((res) => child.once('exit', res));
        if (during) await during({ queue, ctx });
        const code = await exited;
        assert.equal(code, 0, `${who}: ${stderr}`);
        await H.waitFor(() => done(queue, ctx), 5000, `${name}: notifyq done`);
      }
      const events = (await client.xrange(`bull:${name}:events`, '-', '+')).map(([, kv]) => {
        const e = {};
        for (let i = 0; i < kv.length; i += 2) e[kv[i]] = kv[i + 1];
        return e;
      });
      await check({ queue, client, events, who, ctx });
    } finally {
      client.disconnect();
      await queue.close();
      await redis.stop();
    }
  }
}

function failedCount(queue) {
  return queue.getJobCounts('failed').then((c) => c.failed);
}

test('a job with attempts and no backoff is retried at once, not delayed', LIMIT, async () => {
  await both('no-backoff', {
    setup: async ({ queue }) => {
      await queue.add('flaky', { fail: 'retryable' }, { attempts: 3 });
    },
    done: async (queue) => (await failedCount(queue)) === 1,
    driverArgs: ['process', '1'],
    check: async ({ queue, events, who }) => {
      const job = await queue.getJob('1');
      assert.equal(await job.getState(), 'failed', who);
      assert.equal(job.attemptsMade, 3, who);
      const delayed = events.filter((e) => e.event === 'delayed' && e.jobId === '1');
      assert.deepEqual(delayed, [], `${who}: no retry went through delayed`);
      assert.equal(job.delay, 0, who);
    },
  });
});

test("a job's own backoff is not capped by a queue's backoff.max", LIMIT, async () => {
  const TWO_HOURS = 2 * 3600 * 1000;
  await both('own-backoff', {
    setup: async ({ queue }) => {
      await queue.add('slow', { fail: 'retryable' },
        { attempts: 2, backoff: { type: 'fixed', delay: TWO_HOURS } });
      await queue.add('ok', {});
      return { before: Date.now() };
    },
    done: async (queue) => (await queue.getJobCounts('delayed', 'completed')).completed === 1,
    // A queue whose config sets a default backoff and a cap of one minute:
    // they are for jobs without a backoff of their own.
    driverArgs: ['-b', '1000', '-m', '60000', 'process', '1'],
    check: async ({ queue, client, who, ctx }) => {
      const job = await queue.getJob('1');
      assert.equal(await job.getState(), 'delayed', who);
      const score = Number(await client.zscore('bull:own-backoff:delayed', '1'));
      const due = Math.floor(score / 4096);
      assert.ok(due >= ctx.before + TWO_HOURS, `${who}: due ${due - ctx.before} ms after add`);
      assert.ok(due < Date.now() + TWO_HOURS + 1000, `${who}: due at most 2 h from now`);
    },
  });
});

test('without stackTraceLimit every attempt keeps its trace; with it, the last N', LIMIT,
  async () => {
    await both('traces', {
      setup: async ({ queue }) => {
        await queue.add('all', { fail: 'retryable' }, { attempts: 12 });
        await queue.add('two', { fail: 'retryable' }, { attempts: 4, stackTraceLimit: 2 });
      },
      done: async (queue) => (await failedCount(queue)) === 2,
      driverArgs: ['process', '2'],
      check: async ({ queue, who }) => {
        const all = await queue.getJob('1');
        assert.equal(all.attemptsMade, 12, who);
        assert.equal(all.stacktrace.length, 12, who);
        const two = await queue.getJob('2');
        assert.equal(two.attemptsMade, 4, who);
        assert.equal(two.stacktrace.length, 2, who);
      },
    });
  });

test('a job scheduler with endDate runs the iteration fetched before endDate', LIMIT,
  async () => {
    // Iterations at about t, t+1s, t+2s. The one fetched at t+1s is before
    // endDate (t+1.5s), so BullMQ adds the next (t+2s), past endDate; that
    // one, fetched after endDate, adds none: three runs in all.
    await both('sched-end', {
      setup: async ({ queue }) => {
        await queue.upsertJobScheduler('tick', { every: 1000, endDate: Date.now() + 1500 },
          { name: 'tick', data: {} });
      },
      done: async (queue) => (await queue.getJobCounts('completed')).completed >= 3,
      driverArgs: ['process', '3'],
      check: async ({ queue, who }) => {
        await H.sleep(300); // room for a fourth iteration, were one added
        const counts = await queue.getJobCounts('completed', 'delayed', 'waiting', 'active');
        assert.deepEqual(counts, { completed: 3, delayed: 0, waiting: 0, active: 0 }, who);
      },
    });
  });

test('dedup keepLastIfActive: the last job added while the first runs, runs after it', LIMIT,
  async () => {
    const de = { id: 'd1', keepLastIfActive: true };
    await both('dedup-last', {
      setup: async ({ queue }) => {
        await queue.add('first', { n: 1, sleep_ms: 1500 }, { deduplication: de });
      },
      during: async ({ queue }) => {
        await H.waitFor(async () => (await queue.getJobCounts('active')).active === 1, 10000,
          'first job active');
        for (const n of [2, 3]) {
          const j = await queue.add('next', { n }, { deduplication: de });
          assert.equal(j.id, '1'); // deduplicated into the active job
        }
      },
      done: async (queue) => (await queue.getJobCounts('completed')).completed === 2,
      driverArgs: ['process', '2'],
      check: async ({ queue, client, events, who }) => {
        const done = await queue.getCompleted();
        const next = done.find((j) => j.id !== '1');
        assert.ok(next, `${who}: a follow-up job ran`);
        assert.deepEqual(next.data, { n: 3 }, `${who}: with the last data`);
        assert.equal(next.name, 'next', who);
        assert.equal(next.deduplicationId, 'd1', who);
        assert.equal(events.filter((e) => e.event === 'deduplicated').length, 2, who);
        assert.equal(await client.exists('bull:dedup-last:dn:d1'), 0, who);
        assert.equal(await client.get('bull:dedup-last:de:d1'), null, who);
        const counts = await queue.getJobCounts('waiting', 'delayed', 'active', 'failed');
        assert.deepEqual(counts, { waiting: 0, delayed: 0, active: 0, failed: 0 }, who);
      },
    });
  });

// notifyqd itself (the worker, not the driver) on queue `name`, noop handler.
function startDaemon(redis, name, concurrency) {
  const { spawn } = require('node:child_process');
  const path = require('node:path');
  const dir = path.dirname(redis.socket);
  const config = path.join(dir, 'notifyq.yaml');
  fs.writeFileSync(config, [
    'redis:', `  socket: ${redis.socket}`,
    'control:', `  socket: ${path.join(dir, 'control.sock')}`,
    `state_dir: ${path.join(dir, 'state')}`,
    'queues:', '  q:', '    handler: noop', `    bullmq_queue: ${name}`,
    `    concurrency: ${concurrency}`, ''].join('\n'));
  const bin = path.join(path.dirname(path.dirname(H.DRIVER)), '..', 'notifyqd');
  const child = spawn(bin, ['-f', '-c', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr.on('data', (b) => { log += b; });
  return {
    log: () => log,
    async stop() {
      const exited = new Promise((res) => (child.exitCode !== null ? res() : child.once('exit', res)));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

test('global concurrency: a slot freed by a finish starts the next job in that call', LIMIT,
  async () => {
    // With setGlobalConcurrency(2) and a worker of concurrency 5, each job
    // past the first two starts when one ends: in BullMQ's moveToFinished
    // (fetch next), and in our work call that carries the finish, so its
    // processedOn is that finish's finishedOn. Waiting for the idle timeout
    // instead started them in bursts 5 s apart.
    for (const who of ['bullmq', 'notifyq']) {
      const redis = await H.startRedis();
      const queue = new Queue('glob', { connection: redis.connection() });
      let worker;
      let daemon;
      try {
        await queue.waitUntilReady();
        await queue.setGlobalConcurrency(2);
        for (let i = 0; i < 6; i++) await queue.add('j', { sleep_ms: 200 });
        if (who === 'bullmq') {
          worker = new Worker('glob', noop, { connection: redis.connection(), concurrency: 5 });
        } else {
          daemon = startDaemon(redis, 'glob', 5);
        }
        await H.waitFor(async () => (await queue.getJobCounts('completed')).completed === 6,
          30000, `${who}: 6 jobs completed`);
        const jobs = await queue.getCompleted();
        // Each of the 4 later jobs starts right after a finish. The finish
        // and the start may fall in two calls a millisecond or so apart
        // (two finishes at once), so "right after" is a bound far below
        // the 5 s idle timeout the bug waited for, and far above any
        // scheduling noise of a loaded machine.
        const ends = jobs.map((j) => j.finishedOn);
        const byFinish = jobs.filter((j) => ends.some((e) => e <= j.processedOn &&
          j.processedOn - e < 1000));
        assert.equal(byFinish.length, 4, `${who}: jobs started by a finish`);
        for (const j of jobs) {
          const overlapping = jobs.filter((k) => k.processedOn <= j.processedOn &&
            j.processedOn < k.finishedOn);
          assert.ok(overlapping.length <= 2, `${who}: at most 2 jobs at once`);
        }
      } finally {
        if (worker) await worker.close();
        if (daemon) await daemon.stop();
        await queue.close();
        await redis.stop();
      }
    }
  });
