'use strict';
// SPDX-License-Identifier: MIT
// The side-by-side benchmark that scripts/bench runs: BullMQ 6.7.0's Node
// Worker and notifyqd (one queue, handler noop) drain the same jobs on the
// same private Redis, then serve jobs added one at a time (latency). Both
// workers are separate processes measured the same way from outside.
//
// Environment (scripts/bench sets it): BENCH_REDIS_SOCKET or BENCH_REDIS_PORT,
// NOTIFYQD (path of the binary), BENCH_WORKDIR (scratch directory),
// BENCH_OUT (result file name without extension), N, CONCS, REPS, LAT_N,
// LAT_CONCS, LAT_SPACING, QUIET_PCT, QUIET_WAIT_S, QUIET_BUDGET_S, BENCH_LABEL.
//
// Throughput: the queue is paused, N jobs are added with BullMQ's addBulk
// (chunks of 1000), the worker is started and left to block on the marker;
// then the clock starts, the queue is resumed, and a poller reads ZCARD of
// completed every 50 ms. The clock stops at the newest finishedOn (the top
// score of `completed`), not at the poll that saw the end.
const fs = require('fs');
const path = require('path');
const { fork, spawn } = require('child_process');
const { performance } = require('perf_hooks');
const C = require('./common');
const { renderMarkdown } = require('./report');

const { Queue, QueueEvents } = C.bullmq;

// A space-separated list of numbers; set but empty skips that part.
const list = (v, dflt) => (v === undefined ? dflt : v).trim().split(/\s+/).filter(Boolean).map(Number);

const cfg = {
  n: Number(process.env.N || 50000),
  concs: list(process.env.CONCS, '1 10 100'),
  reps: Number(process.env.REPS || 5),
  latN: Number(process.env.LAT_N || 2000),
  latConcs: list(process.env.LAT_CONCS, '10 100'),
  latSpacing: Number(process.env.LAT_SPACING || 1),
  label: process.env.BENCH_LABEL || '',
  quietPct: Number(process.env.QUIET_PCT || 25),
  quietWaitS: Number(process.env.QUIET_WAIT_S || 60),
  quietBudgetS: Number(process.env.QUIET_BUDGET_S || 240),
};
const NOTIFYQD = process.env.NOTIFYQD;
const WORKDIR = process.env.BENCH_WORKDIR;
const OUT = process.env.BENCH_OUT;
const POLL_MS = 50;
const RUN_TIMEOUT_MS = 300000;
let redisPid = 0; // from INFO server, once connected

function log(msg) { process.stderr.write(`bench: ${msg}\n`); }

async function waitFor(what, fn, timeoutMs = 20000, everyMs = 20) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await fn()) return;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await C.sleep(everyMs);
  }
}

async function blockedClients(r) {
  return Number(C.infoFields(await r.info('clients')).blocked_clients);
}

// A worker is ready when its blocking connection sits in BZPOPMIN; the
// settle time lets start-up scripts (stalled check, script loads) finish
// before the first snapshot.
async function waitReady(r, w) {
  await waitFor(`${w.side} worker to block on the marker`, async () => {
    if (w.exited) throw new Error(`${w.side} worker exited early (${w.exited})`);
    return (await blockedClients(r)) >= 1 && w.pids().workers.length >= 1;
  });
  await C.sleep(300);
}

async function startBullmq(queue, conc) {
  const child = fork(path.join(__dirname, 'bullmq-worker.js'), [queue, String(conc)],
    { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const w = { side: 'bullmq', exited: null, pids: () => ({ workers: [child.pid], master: null }) };
  const exit = new Promise((res) => child.once('exit', (code, sig) => { w.exited = sig || `code ${code}`; res(); }));
  await new Promise((res, rej) => {
    child.once('message', (m) => (m === 'ready' ? res() : rej(new Error(`unexpected ${m}`))));
    exit.then(() => rej(new Error(`bullmq worker exited early (${w.exited})`)));
  });
  w.stop = async () => { if (!w.exited) child.send('stop'); await exit; };
  return w;
}

async function startNotifyq(queue, conc) {
  const dir = path.join(WORKDIR, `nq-${queue}-c${conc}`);
  fs.mkdirSync(dir, { recursive: true });
  const yaml = path.join(dir, 'notifyq.yaml');
  fs.writeFileSync(yaml, `log_level: info\nstate_dir: ${dir}/state\nredis:\n${C.notifyqRedisYaml()}` +
    `control:\n  socket: ${dir}/control.sock\nqueues:\n  ${queue}:\n    handler: noop\n` +
    `    processes: 1\n    concurrency: ${conc}\n`);
  const logFd = fs.openSync(path.join(dir, 'notifyqd.log'), 'a');
  const child = spawn(NOTIFYQD, ['-f', '-c', yaml], { stdio: ['ignore', logFd, logFd] });
  fs.closeSync(logFd);
  const w = { side: 'notifyq', exited: null };
  const exit = new Promise((res) => child.once('exit', (code, sig) => { w.exited = sig || `code ${code}`; res(); }));
  w.pids = () => ({ workers: w.exited ? [] : C.procChildren(child.pid), master: child.pid });
  w.stop = async () => {
    if (!w.exited) child.kill('SIGTERM');
    const t = setTimeout(() => { log('notifyqd did not stop in 30 s, SIGKILL'); child.kill('SIGKILL'); }, 30000);
    await exit;
    clearTimeout(t);
  };
  return w;
}

const startWorker = (side, queue, conc) => (side === 'bullmq' ? startBullmq(queue, conc) : startNotifyq(queue, conc));

// The processes whose CPU is accounted for; the rest of the machine's is others'.
const ours = (pids) => [...pids.workers, pids.master, redisPid].filter(Boolean);

const perJob = (o, n) => Object.fromEntries(Object.entries(o).map(([k, v]) => [k, +(v / n).toFixed(3)]));

function cpuOf(pids) {
  return { workers: pids.workers.reduce((s, p) => s + C.procCpu(p), 0), master: pids.master ? C.procCpu(pids.master) : NaN };
}

function memOf(pids) {
  return {
    worker_peak_rss_MiB: Math.max(...pids.workers.map((p) => C.procMem(p).hwm_MiB)),
    master_peak_rss_MiB: pids.master ? C.procMem(pids.master).hwm_MiB : NaN,
  };
}

async function enqueuePaused(q, n) {
  await q.pause();
  const t0 = performance.now();
  for (let s = 0; s < n; s += 1000) await q.addBulk(C.bulkItems(s, Math.min(1000, n - s)));
  const secs = (performance.now() - t0) / 1000;
  const counts = await q.getJobCounts('wait', 'paused', 'prioritized');
  const queued = (counts.wait || 0) + (counts.paused || 0) + (counts.prioritized || 0);
  if (queued !== n) throw new Error(`expected ${n} waiting jobs, found ${JSON.stringify(counts)}`);
  return Math.round(n / secs);
}

async function throughputRun(r, side, conc, rep) {
  const name = 'bench';
  await r.flushall();
  const q = new Queue(name, { connection: C.connection() });
  let w;
  try {
    await q.waitUntilReady();
    const enqueuePerS = await enqueuePaused(q, cfg.n);
    w = await startWorker(side, name, conc);
    await waitReady(r, w);
    const pids = w.pids();
    const cpu0 = cpuOf(pids);
    const rs0 = await C.redisSnap(r);
    const m0 = C.machineSnap(ours(pids));
    const t0 = Date.now();
    await q.resume();
    let polls = 0;
    let done = 0;
    for (;;) {
      const [c, f] = await Promise.all([r.zcard(`bull:${name}:completed`), r.zcard(`bull:${name}:failed`)]);
      polls++;
      done = c + f;
      if (done >= cfg.n) break;
      if (w.exited) throw new Error(`${side} worker exited (${w.exited}) after ${done} jobs`);
      if (Date.now() - t0 > RUN_TIMEOUT_MS) throw new Error(`timeout: ${done}/${cfg.n} jobs finished`);
      await C.sleep(POLL_MS);
    }
    const detectMs = Date.now() - t0;
    const cpu1 = cpuOf(pids);
    const rs1 = await C.redisSnap(r);
    const machine = C.machinePct(m0, C.machineSnap(ours(pids)));
    const mem = memOf(pids);
    const top = await r.zrevrange(`bull:${name}:completed`, 0, 0, 'WITHSCORES');
    const wallMs = Number(top[1]) - t0;
    const counts = await q.getJobCounts('wait', 'paused', 'prioritized', 'active', 'delayed', 'completed', 'failed');
    const left = counts.wait + counts.paused + counts.prioritized + counts.active + counts.delayed;
    const sample = await q.getJob(top[0]);
    const ok = left === 0 && counts.failed === 0 && counts.completed === cfg.n &&
      JSON.stringify(sample.returnvalue) === '{"ok":true}';
    // What each side leaves behind, to compare: the fields of a finished
    // job's hash and the length of the events stream.
    const jobFields = Object.keys(await r.hgetall(`bull:${name}:${top[0]}`)).sort();
    const eventsLen = await r.xlen(`bull:${name}:events`);
    const rd = C.redisDelta(rs0, rs1, { zcard: 2 * polls });
    const per = (x) => x / cfg.n;
    return {
      kind: 'throughput', side, conc, rep, n: cfg.n, ok, counts, enqueue_jobs_per_s: enqueuePerS,
      wall_ms: wallMs, detect_ms: detectMs, jobs_per_s: Math.round(cfg.n / (wallMs / 1000)),
      worker_cpu_us: 1e6 * per(cpu1.workers - cpu0.workers),
      master_cpu_us: 1e6 * per(cpu1.master - cpu0.master),
      redis_cpu_us: 1e6 * per(rd.cpu_s),
      round_trips: per(rd.round_trips), commands: per(rd.commands),
      calls_per_job: perJob(rd.calls, cfg.n), usec_per_job: perJob(rd.usec, cfg.n),
      ...mem, machine, job_fields: jobFields, events_len: eventsLen,
    };
  } finally {
    if (w) await w.stop();
    await q.close();
  }
}

async function latencyRun(r, side, conc, rep) {
  const name = 'bench-lat';
  await r.flushall();
  const q = new Queue(name, { connection: C.connection() });
  let w;
  let events;
  try {
    await q.waitUntilReady();
    w = await startWorker(side, name, conc);
    await waitReady(r, w);
    events = new QueueEvents(name, { connection: C.connection() });
    await events.waitUntilReady();
    const tDone = new Map();
    let resolveAll;
    const allDone = new Promise((res) => { resolveAll = res; });
    events.on('completed', ({ jobId }) => {
      tDone.set(jobId, performance.now());
      if (tDone.size === cfg.latN) resolveAll();
    });
    // Let QueueEvents settle into XREAD BLOCK, as the BullMQ harness does.
    await C.sleep(1000);
    const pids = w.pids();
    const cpu0 = cpuOf(pids);
    const rs0 = await C.redisSnap(r);
    const m0 = C.machineSnap(ours(pids));
    const tSend = new Map();
    const t0 = performance.now();
    for (let i = 0; i < cfg.latN; i++) {
      const s = performance.now();
      const job = await q.add('email', C.jobData(i));
      tSend.set(job.id, s);
      if (cfg.latSpacing > 0) await C.sleep(cfg.latSpacing);
    }
    const offered = cfg.latN / ((performance.now() - t0) / 1000);
    let timer;
    await Promise.race([allDone, new Promise((res, rej) => {
      timer = setTimeout(() => rej(new Error(`timeout: ${tDone.size}/${cfg.latN} completed events`)), 60000);
    })]);
    clearTimeout(timer);
    const cpu1 = cpuOf(pids);
    const rs1 = await C.redisSnap(r);
    const machine = C.machinePct(m0, C.machineSnap(ours(pids)));
    const mem = memOf(pids);
    const wall = [];
    for (const [id, s] of tSend) wall.push(tDone.get(id) - s);
    const server = [];
    const pickup = [];
    for (const j of await q.getJobs(['completed'], 0, -1)) {
      server.push(j.finishedOn - j.timestamp);
      pickup.push(j.processedOn - j.timestamp);
    }
    const rd = C.redisDelta(rs0, rs1);
    return {
      kind: 'latency', side, conc, rep, n: cfg.latN, ok: server.length === cfg.latN,
      offered_jobs_per_s: Math.round(offered),
      wall_ms: C.distribution(wall), server_ms: C.distribution(server), pickup_ms: C.distribution(pickup),
      worker_cpu_us: 1e6 * (cpu1.workers - cpu0.workers) / cfg.latN,
      redis_cpu_us: 1e6 * rd.cpu_s / cfg.latN, round_trips: rd.round_trips / cfg.latN,
      commands: rd.commands / cfg.latN, calls_per_job: perJob(rd.calls, cfg.latN),
      usec_per_job: perJob(rd.usec, cfg.latN), ...mem, machine,
    };
  } finally {
    if (events) await events.close();
    if (w) await w.stop();
    await q.close();
  }
}

function summaryLine(x) {
  if (x.error) return `${x.kind} ${x.side} c=${x.conc} rep ${x.rep}: ERROR ${x.error}`;
  if (x.kind === 'throughput') {
    return `throughput ${x.side.padEnd(7)} c=${String(x.conc).padEnd(3)} rep ${x.rep}: ${x.jobs_per_s} jobs/s, ` +
      `worker ${x.worker_cpu_us.toFixed(1)} us/job, redis ${x.redis_cpu_us.toFixed(1)} us/job, ` +
      `${x.round_trips.toFixed(2)} trips/job, ${x.commands.toFixed(1)} cmds/job, ` +
      `rss ${x.worker_peak_rss_MiB.toFixed(1)} MiB, steal ${x.machine.steal}%, others ${x.machine.others_pct}%${x.ok ? '' : ' CHECK FAILED'}`;
  }
  return `latency    ${x.side.padEnd(7)} c=${String(x.conc).padEnd(3)} rep ${x.rep}: wall p50 ${x.wall_ms.p50} ` +
    `p99 ${x.wall_ms.p99} ms, finishedOn-timestamp p50 ${x.server_ms.p50} p99 ${x.server_ms.p99} ms` +
    `${x.ok ? '' : ' CHECK FAILED'}`;
}

// This machine may be shared: before a run, wait up to QUIET_WAIT_S for the
// other processes to use less than QUIET_PCT % of a core (measured over
// half a second), so that fewer runs are measured while someone compiles.
// At most QUIET_BUDGET_S in all, which keeps a whole run within its time
// bound. A run that starts anyway shows it in its "other processes' CPU".
let quietSpentMs = 0;
async function waitQuiet() {
  const start = Date.now();
  const end = start + Math.min(1000 * cfg.quietWaitS, 1000 * cfg.quietBudgetS - quietSpentMs);
  try {
    await waitQuietUntil(end);
  } finally {
    quietSpentMs += Date.now() - start;
  }
}

async function waitQuietUntil(end) {
  let waited = false;
  for (;;) {
    const m0 = C.machineSnap([redisPid]);
    await C.sleep(500);
    const others = C.machinePct(m0, C.machineSnap([redisPid])).others_pct;
    if (others < cfg.quietPct || Date.now() > end) {
      if (waited) log(`machine ${others < cfg.quietPct ? 'quiet again' : 'still busy'} (others ${others}% of a core)`);
      return;
    }
    if (!waited) log(`other processes use ${others}% of a core: waiting up to ${Math.round((end - Date.now()) / 1000)} s`);
    waited = true;
    await C.sleep(1500);
  }
}

async function runOne(r, runs, fn, kind, side, conc, rep) {
  let x;
  await waitQuiet();
  try {
    x = await fn(r, side, conc, rep);
  } catch (e) {
    x = { kind, side, conc, rep, ok: false, error: e.message };
  }
  runs.push(x);
  log(summaryLine(x));
}

async function environment(r) {
  const server = C.infoFields(await r.info('server'));
  redisPid = Number(server.process_id);
  const cpu = fs.readFileSync('/proc/cpuinfo', 'utf8').match(/^model name\s*:\s*(.*)$/m);
  return {
    date: new Date().toISOString(), cores: require('os').cpus().length, cpu: cpu ? cpu[1] : 'unknown',
    redis: server.redis_version, node: process.version, bullmq: C.pkgVersion('bullmq'),
    ioredis: C.pkgVersion('ioredis'), transport: process.env.BENCH_REDIS_SOCKET ? 'unix socket' : 'tcp 127.0.0.1',
    notifyq_rev: process.env.BENCH_REV || 'unknown',
  };
}

async function main() {
  const r = C.client();
  const env = await environment(r);
  const runs = [];
  const t0 = Date.now();
  for (let rep = 1; rep <= cfg.reps; rep++) {
    // Alternate who goes first, so a slow drift of the machine hits both.
    const sides = rep % 2 ? ['bullmq', 'notifyq'] : ['notifyq', 'bullmq'];
    for (const conc of cfg.concs) {
      for (const side of sides) await runOne(r, runs, throughputRun, 'throughput', side, conc, rep);
    }
  }
  for (let rep = 1; rep <= cfg.reps; rep++) {
    const sides = rep % 2 ? ['bullmq', 'notifyq'] : ['notifyq', 'bullmq'];
    for (const conc of cfg.latConcs) {
      for (const side of sides) await runOne(r, runs, latencyRun, 'latency', side, conc, rep);
    }
  }
  await r.flushall();
  r.disconnect();
  const result = { env, cfg, duration_s: Math.round((Date.now() - t0) / 1000), runs };
  fs.writeFileSync(`${OUT}.json`, JSON.stringify(result, null, 1) + '\n');
  const md = renderMarkdown(result);
  fs.writeFileSync(`${OUT}.md`, md);
  process.stdout.write(md);
  const failed = runs.filter((x) => !x.ok);
  if (failed.length) {
    log(`${failed.length} run(s) failed their checks: see ${OUT}.json`);
    process.exit(3);
  }
}

main().catch((e) => { console.error(e); process.exit(1); });
