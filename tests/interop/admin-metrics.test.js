'use strict';
// SPDX-License-Identifier: MIT
// The http child's /metrics against BullMQ 6.7.0 itself: 10,000 jobs added
// with BullMQ's Queue.addBulk and processed by notifyqd, then the counters
// and gauges of /metrics agree with BullMQ's getJobCounts().
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const path = require('node:path');
const { Queue } = require('bullmq');
const H = require('./helpers');

const BUILD = process.env.NOTIFYQ_BUILD || path.join(__dirname, '..', '..', '_build');
const NOTIFYQD = path.join(BUILD, 'notifyqd');

assert.ok(fs.existsSync(NOTIFYQD), `build notifyqd first (${NOTIFYQD})`);

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// name{labels} value, labels as an object; undefined when absent.
function metric(text, name, labels = {}) {
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`).sort().join(',');
  for (const line of text.split('\n')) {
    const m = /^(\w+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (m && m[1] === name && (m[2] || '').split(',').filter(Boolean).sort().join(',') === want)
      return Number(m[3]);
  }
  return undefined;
}

test('/metrics agrees with getJobCounts() after 10,000 jobs', { timeout: 180000 }, async () => {
  const redis = await H.startRedis();
  const dir = path.dirname(redis.socket);
  const port = await freePort();
  fs.writeFileSync(path.join(dir, 'read.token'), 'interop-read-token\n');
  const config = path.join(dir, 'notifyq.yaml');
  fs.writeFileSync(config, [
    'redis:', `  socket: ${redis.socket}`,
    'control:', `  socket: ${path.join(dir, 'control.sock')}`,
    `state_dir: ${path.join(dir, 'state')}`,
    'http:', `  listen: 127.0.0.1:${port}`, '  tokens:',
    `    - {role: read, file: ${path.join(dir, 'read.token')}}`,
    'queues:', '  metered:', '    handler: noop', '    bullmq_queue: m-metered',
    '    processes: 2', '    concurrency: 50', ''].join('\n'));
  const log = fs.openSync(path.join(dir, 'notifyqd.log'), 'a');
  const d = spawn(NOTIFYQD, ['-f', '-c', config], { stdio: ['ignore', log, log] });
  const q = new Queue('m-metered', { connection: redis.connection() });
  try {
    const ok = 9000, bad = 1000;
    const jobs = [];
    for (let i = 0; i < ok; i++) jobs.push({ name: 'ok', data: { i } });
    for (let i = 0; i < bad; i++) jobs.push({ name: 'bad', data: { fail: 'permanent' } });
    for (let i = 0; i < jobs.length; i += 1000) await q.addBulk(jobs.slice(i, i + 1000));

    const get = async (p) => {
      try {
        const r = await fetch(`http://127.0.0.1:${port}${p}`);
        return { status: r.status, text: await r.text() };
      } catch {
        return null;
      }
    };
    await H.waitFor(async () => {
      const c = await q.getJobCounts('completed', 'failed');
      return c.completed === ok && c.failed === bad;
    }, 120000, 'notifyqd to finish every job');
    const counts = await q.getJobCounts('waiting', 'active', 'delayed', 'completed', 'failed');
    // The gauges are what a worker last read (about once a second).
    const text = await H.waitFor(async () => {
      const r = await get('/metrics');
      if (!r || r.status !== 200) return null;
      const states = ['waiting', 'active', 'delayed', 'completed', 'failed'];
      const same = states.every((s) => metric(r.text, 'notifyq_jobs',
        { queue: 'metered', state: s }) === counts[s]);
      return same ? r.text : null;
    }, 20000, '/metrics gauges to agree with getJobCounts()');
    assert.equal(metric(text, 'notifyq_jobs_finished_total',
      { queue: 'metered', outcome: 'completed' }), counts.completed);
    assert.equal(metric(text, 'notifyq_jobs_finished_total',
      { queue: 'metered', outcome: 'failed' }), counts.failed);
    assert.equal(metric(text, 'notifyq_jobs_finished_total',
      { queue: 'metered', outcome: 'retried' }), 0);
    assert.equal(metric(text, 'notifyq_job_duration_seconds_count', { queue: 'metered' }),
      ok + bad);
    assert.equal(metric(text, 'notifyq_jobs_fetched_total', { queue: 'metered' }), ok + bad);
    const health = await get('/health');
    assert.equal(health.status, 200, health.text);
    assert.equal(JSON.parse(health.text).status, 'healthy');
  } finally {
    await q.close();
    d.kill('SIGTERM');
    const code = await new Promise((res) => (d.exitCode !== null ? res(d.exitCode)
      : d.once('exit', (c) => res(c))));
    fs.closeSync(log);
    await redis.stop();
    assert.equal(code, 0);
  }
});
