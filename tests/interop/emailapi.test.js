'use strict';
// SPDX-License-Identifier: MIT
// A BullMQ 6.7.0 producer enqueues the seeds' email job (EmailJobData: to,
// subject, message, tenantId, notificationId, priority; jobId
// `email-<notificationId>`, 3 attempts, exponential backoff) for each email
// API provider; notifyqd sends it to that provider's mock API
// (tests/integration/emailapi_mock.py, Debian's python3) and BullMQ's
// getters read the result back: the job completed with each recipient
// sent, the provider's id and name.
const test = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const path = require('node:path');
const readline = require('node:readline');
const { spawn } = require('node:child_process');
const { Queue } = require('bullmq');
const H = require('./helpers');

const MOCK = path.join(__dirname, '..', 'integration', 'emailapi_mock.py');
const NOTIFYQD = path.join(path.dirname(path.dirname(H.DRIVER)), '..', 'notifyqd');

// The mock API: resolves { block, sent (filled as it accepts), stop }.
function startMock(provider, dir) {
  const child = spawn('/usr/bin/python3', [MOCK, provider, dir],
    { stdio: ['pipe', 'pipe', 'inherit'] });
  const sent = [];
  const lines = readline.createInterface({ input: child.stdout });
  return new Promise((resolve, reject) => {
    child.once('error', reject);
    lines.once('line', (block) => {
      lines.on('line', (l) => sent.push(JSON.parse(l)));
      resolve({
        block,
        sent,
        async stop() {
          const exited = new Promise((res) => (child.exitCode !== null ? res()
            : child.once('exit', res)));
          child.stdin.end();
          await exited;
        },
      });
    });
  });
}

function startDaemon(redis, queueName, block) {
  const dir = path.dirname(redis.socket);
  const config = path.join(dir, 'notifyq.yaml');
  fs.writeFileSync(config, [
    'redis:', `  socket: ${redis.socket}`,
    'control:', `  socket: ${path.join(dir, 'control.sock')}`,
    `state_dir: ${path.join(dir, 'state')}`,
    'queues:', '  email:', '    handler: email', `    bullmq_queue: ${queueName}`,
    `    provider: ${block}`, ''].join('\n'));
  const child = spawn(NOTIFYQD, ['-f', '-c', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  child.stderr.on('data', (b) => { log += b; });
  return {
    log: () => log,
    async stop() {
      const exited = new Promise((res) => (child.exitCode !== null ? res()
        : child.once('exit', res)));
      child.kill('SIGTERM');
      await exited;
    },
  };
}

for (const provider of ['sendgrid', 'resend', 'mailgun', 'postmark', 'ses']) {
  test(`the seeds' email job goes out through ${provider} and reads back through BullMQ`,
    { timeout: 60000 }, async () => {
      const redis = await H.startRedis();
      const mock = await startMock(provider, path.dirname(redis.socket));
      const queue = new Queue('email-notifications', { connection: redis.connection() });
      let daemon;
      try {
        await queue.waitUntilReady();
        const data = {
          tenantId: 'tenant-7', notificationId: 'n-42', priority: 'HIGH',
          to: 'user@example.org', subject: 'Your code', message: '123456',
        };
        await queue.add('send-email', data, {
          priority: 2, jobId: `email-${data.notificationId}`, attempts: 3,
          backoff: { type: 'exponential', delay: 2000 },
        });
        daemon = startDaemon(redis, 'email-notifications', mock.block);
        await H.waitFor(async () => (await queue.getJobCounts('completed')).completed === 1,
          30000, `${provider}: the job completed`);
        const job = await queue.getJob('email-n-42');
        assert.equal(job.attemptsMade, 1);
        const rv = job.returnvalue;
        assert.equal(rv.ok, true);
        assert.equal(rv.provider, provider);
        assert.equal(rv.recipients.length, 1);
        const [r] = rv.recipients;
        assert.equal(r.to, 'user@example.org');
        assert.equal(r.status, 'sent');
        assert.equal(r.provider, provider);
        assert.equal(r.id, rv.messageId);
        await H.waitFor(() => mock.sent.length === 1, 5000, 'the mock saw the send');
        assert.deepEqual(mock.sent[0].rcpts, ['user@example.org']);
        assert.equal(mock.sent[0].problem, null);
        // the API's id, as its reply gave it
        assert.equal(rv.messageId, mock.sent[0].id);
      } finally {
        if (daemon) await daemon.stop();
        await queue.close();
        await mock.stop();
        await redis.stop();
      }
    });
}
