'use strict';
// SPDX-License-Identifier: MIT
// Shared helpers of the side-by-side benchmark (run.js, bullmq-worker.js):
// the Redis connection, the job payload, and the probes (INFO cpu and
// commandstats of Redis, /proc of the worker processes). The payload and the
// percentile rule are those of the BullMQ harness in shared/bench/bullmq, so
// figures stay comparable with its reference numbers.
const fs = require('fs');
const path = require('path');

const bullmq = require('bullmq');
const IORedis = require('ioredis');

const RedisCtor = IORedis.default || IORedis.Redis || IORedis;

// BENCH_REDIS_SOCKET (a unix socket) wins over BENCH_REDIS_PORT on 127.0.0.1.
function connection() {
  const c = { maxRetriesPerRequest: null };
  if (process.env.BENCH_REDIS_SOCKET) c.path = process.env.BENCH_REDIS_SOCKET;
  else { c.host = '127.0.0.1'; c.port = Number(process.env.BENCH_REDIS_PORT); }
  return c;
}

// The same address as a notifyq.yaml `redis:` block.
function notifyqRedisYaml() {
  if (process.env.BENCH_REDIS_SOCKET) return `  socket: ${process.env.BENCH_REDIS_SOCKET}\n`;
  return `  url: redis://127.0.0.1:${process.env.BENCH_REDIS_PORT}\n`;
}

function client() {
  return new RedisCtor(connection());
}

const SUBJECTS = ['Your invoice is ready', 'Password reset requested',
  'New login from a new device', 'Weekly summary', 'Payment received'];

// A small e-mail notification (~200 bytes of JSON), as the BullMQ harness makes.
function jobData(i) {
  const tenant = i % 50;
  return {
    to: `user${i}@tenant${tenant}.example.com`,
    subject: SUBJECTS[i % SUBJECTS.length],
    message: `Hello user ${i}, this is notification number ${i}. ` +
      'Please do not reply to this automated message.',
    tenantId: `tenant-${tenant}`,
    notificationId: `ntf-${String(i).padStart(8, '0')}`,
  };
}

function bulkItems(start, count) {
  const items = new Array(count);
  for (let k = 0; k < count; k++) items[k] = { name: 'email', data: jobData(start + k) };
  return items;
}

function pkgVersion(name) {
  let dir = path.dirname(require.resolve(name));
  for (let i = 0; i < 6; i++) {
    const p = path.join(dir, 'package.json');
    if (fs.existsSync(p)) {
      const j = JSON.parse(fs.readFileSync(p, 'utf8'));
      if (j.name === name) return j.version;
    }
    dir = path.dirname(dir);
  }
  return 'unknown';
}

function infoFields(text) {
  const out = {};
  for (const line of text.split('\n')) {
    const i = line.indexOf(':');
    if (i > 0 && line[0] !== '#') out[line.slice(0, i)] = line.slice(i + 1).trim();
  }
  return out;
}

// Redis CPU seconds (user + sys, all threads) and per-command call counts.
// Commands a script runs are counted in commandstats too, which is what
// "commands per job" wants; "round trips" counts only what a client sends.
async function redisSnap(r) {
  const cpu = infoFields(await r.info('cpu'));
  const calls = {};
  const usec = {};
  for (const m of (await r.info('commandstats')).matchAll(/^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/gm)) {
    calls[m[1]] = Number(m[2]);
    usec[m[1]] = Number(m[3]);
  }
  return { cpu_s: Number(cpu.used_cpu_user) + Number(cpu.used_cpu_sys), calls, usec };
}

// Commands only a client can send (a script cannot block or run a script):
// each call is one request on the wire.
const CLIENT_ONLY = /^(evalsha|eval|evalsha_ro|eval_ro|fcall|bzpopmin|bzpopmax|brpoplpush|blmove|brpop|blpop|xread|multi|exec|client\|.*|script\|.*|hello|ping|select|auth|quit)$/;

// Deltas of two snapshots, without the harness's own commands (given as
// {name: calls}): INFO and CONFIG are never the workers'.
// usec is the time Redis spent in each command; a script's time includes
// that of the commands it runs.
function redisDelta(a, b, own) {
  const calls = {};
  const usec = {};
  let total = 0;
  let trips = 0;
  for (const [k, v] of Object.entries(b.calls)) {
    let d = v - (a.calls[k] || 0) - ((own && own[k]) || 0);
    if (k === 'info' || k.startsWith('config')) d = 0;
    if (d <= 0) continue;
    calls[k] = d;
    usec[k] = b.usec[k] - (a.usec[k] || 0);
    total += d;
    if (CLIENT_ONLY.test(k)) trips += d;
  }
  return { cpu_s: b.cpu_s - a.cpu_s, commands: total, round_trips: trips, calls, usec };
}

const CLK_TCK = 100; // USER_HZ: the unit of utime/stime in /proc/PID/stat on Linux

// user+sys CPU seconds of a process, from /proc/PID/stat (fields 14 and 15).
function procCpu(pid) {
  const s = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / CLK_TCK;
}

// Peak and current resident set of a process, in MiB (VmHWM, VmRSS).
function procMem(pid) {
  const s = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
  const get = (k) => {
    const m = s.match(new RegExp('^' + k + ':\\s+(\\d+) kB', 'm'));
    return m ? Number(m[1]) / 1024 : NaN;
  };
  return { hwm_MiB: get('VmHWM'), rss_MiB: get('VmRSS') };
}

// Direct children of a process (every thread's list, as /proc keeps them per task).
function procChildren(pid) {
  const out = [];
  for (const t of fs.readdirSync(`/proc/${pid}/task`)) {
    const s = fs.readFileSync(`/proc/${pid}/task/${t}/children`, 'utf8').trim();
    if (s) out.push(...s.split(/\s+/).map(Number));
  }
  return out;
}

// Whole-machine jiffies and the CPU seconds of the processes under test
// (`pids`), to flag runs disturbed by the hypervisor (steal) or by anything
// else running on the machine (others, in % of one core).
function machineSnap(pids) {
  const j = fs.readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
  let ours = process.cpuUsage();
  ours = (ours.user + ours.system) / 1e6;
  for (const p of pids) ours += procCpu(p);
  return { j, ours, t: Date.now() };
}
function machinePct(a, b) {
  const d = b.j.map((x, i) => x - (a.j[i] || 0));
  const tot = d.slice(0, 8).reduce((x, y) => x + y, 0) || 1;
  const pct = (x) => +(100 * x / tot).toFixed(1);
  // irq and softirq time is charged to no process; on loopback it is
  // mostly the benchmark's own Redis traffic, so it is not counted as others'.
  const tasks = (d[0] + d[1] + d[2]) / CLK_TCK;
  const others = Math.max(0, tasks - (b.ours - a.ours));
  return { busy: pct(d[0] + d[1] + d[2] + d[5] + d[6]), steal: pct(d[7]),
    others_pct: +(100 * others / ((b.t - a.t) / 1000)).toFixed(1) };
}

function percentile(sortedAsc, p) {
  if (sortedAsc.length === 0) return NaN;
  const idx = Math.min(sortedAsc.length - 1, Math.max(0, Math.ceil((p / 100) * sortedAsc.length) - 1));
  return sortedAsc[idx];
}

function distribution(arr) {
  const s = arr.slice().sort((a, b) => a - b);
  const r = (x) => +x.toFixed(3);
  return { n: s.length, p50: r(percentile(s, 50)), p90: r(percentile(s, 90)), p99: r(percentile(s, 99)),
    max: r(s[s.length - 1]) };
}

const sleep = (ms) => new Promise((res) => setTimeout(res, ms));

module.exports = {
  bullmq, connection, notifyqRedisYaml, client, jobData, bulkItems, pkgVersion, infoFields,
  redisSnap, redisDelta, procCpu, procMem, procChildren, machineSnap, machinePct,
  distribution, sleep,
};
