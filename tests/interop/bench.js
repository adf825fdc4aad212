'use strict';
// SPDX-License-Identifier: MIT
// Redis work per job, BullMQ's Worker vs notifyq's store (nq_driver), on the
// same private redis-server and the same jobs (BullMQ addBulk, no-op
// processing). Not a test: `node bench.js [N] [CONCURRENCY]` prints, for each
// side, jobs/s, Redis CPU µs per job (INFO cpu deltas) and Redis calls per job
// (INFO commandstats deltas). nq_driver finishes and fetches up to
// CONCURRENCY jobs per script call.
const { Queue, Worker } = require('bullmq');
const IORedis = require('ioredis');
const H = require('./helpers');

const N = Number(process.argv[2] || 20000);
const CONC = Number(process.argv[3] || 100);

async function stats(r) {
  const cpu = await r.info('cpu');
  const num = (k) => Number(new RegExp(`${k}:([0-9.]+)`).exec(cpu)[1]);
  const cs = await r.info('commandstats');
  let calls = 0;
  let inner = 0;
  for (const m of cs.matchAll(/cmdstat_([a-z|]+):calls=(\d+)/g)) {
    if (m[1] === 'info') continue;
    if (m[1] === 'evalsha' || m[1] === 'eval' || m[1].startsWith('bzpopmin')) calls += Number(m[2]);
    else inner += Number(m[2]);
  }
  return { cpu: num('used_cpu_sys') + num('used_cpu_user'), calls, inner };
}

async function fill(redis, name) {
  const q = new Queue(name, { connection: redis.connection() });
  for (let i = 0; i < N; i += 1000) {
    const batch = [];
    for (let j = i; j < Math.min(N, i + 1000); j++) {
      batch.push({ name: 'email', data: { to: `user${j}@example.com`, subject: 'Hello', n: j } });
    }
    await q.addBulk(batch);
  }
  return q;
}

async function measure(label, redis, run) {
  const r = new IORedis(redis.connection());
  await r.config('RESETSTAT');
  const s0 = await stats(r);
  const t0 = process.hrtime.bigint();
  await run();
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  const s1 = await stats(r);
  r.disconnect();
  const per = (x) => (x / N).toFixed(2);
  console.log(`${label.padEnd(8)} jobs/s ${(N / secs).toFixed(0).padStart(6)}  ` +
    `redis CPU ${((s1.cpu - s0.cpu) * 1e6 / N).toFixed(1)} us/job  ` +
    `round trips ${per(s1.calls - s0.calls)}/job  redis commands ${per(s1.inner - s0.inner)}/job`);
}

async function main() {
  const redis = await H.startRedis();
  try {
    const qb = await fill(redis, 'bench-bullmq');
    await measure('bullmq', redis, async () => {
      let done = 0;
      await new Promise((resolve) => {
        const w = new Worker('bench-bullmq', async () => ({ ok: true }),
          { connection: redis.connection(), concurrency: CONC });
        w.on('completed', () => { if (++done === N) w.close().then(resolve); });
      });
    });
    await qb.close();
    const qn = await fill(redis, 'bench-notifyq');
    await measure('notifyq', redis, async () => {
      const r = await H.driver(redis, 'bench-notifyq', ['-c', String(CONC), '-t', '600000',
        'process', String(N)], { timeout: 600000 });
      if (r.code !== 0) throw new Error(r.stderr);
    });
    const counts = await qn.getJobCounts('completed', 'waiting', 'active');
    if (counts.completed !== N) throw new Error(`notifyq left ${JSON.stringify(counts)}`);
    await qn.close();
  } finally {
    await redis.stop();
  }
}

main().catch((e) => { console.error(e); process.exit(1); });
