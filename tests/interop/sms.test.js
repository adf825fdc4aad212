'use strict';
// SPDX-License-Identifier: MIT
// A BullMQ producer enqueues the seeds' SmsJobData shape ({to, message,
// tenantId, userId, notificationId, category, priority} as 'send-sms' with
// priority, jobId, attempts and exponential backoff) to notifyqd queues
// served by the twilio and vonage providers, and reads the results back
// through BullMQ's API. The providers' APIs are mocked here on 127.0.0.1:
// the mock checks what the real ones check (Basic auth whose user is the
// path's account SID, api_key/api_secret, form content type, required
// fields, E.164) and answers in their shapes (PROVIDERS.md sections 8, 9a).
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const { Queue } = require('bullmq');
const H = require('./helpers');

const BUILD = process.env.NOTIFYQ_BUILD || path.join(__dirname, '..', '..', '_build');
const NOTIFYQD = path.join(BUILD, 'notifyqd');
const SID = 'AC0123456789abcdef0123456789abcdef';
const TOKEN = 'twilio-test-token';
const VKEY = 'abcd1234';
const VSECRET = 'vonage-test-secret';

assert.ok(fs.existsSync(NOTIFYQD), `build notifyqd first (${NOTIFYQD})`);

function twilioReply(req, form, res) {
  const send = (status, body) => {
    res.writeHead(status, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(body));
  };
  const error = (code, status, message) => send(status, {
    code, message, more_info: `https://www.twilio.com/docs/errors/${code}`, status,
  });
  const m = req.url.match(/^\/2010-04-01\/Accounts\/([^/]+)\/Messages\.json$/);
  const want = `Basic ${Buffer.from(`${m ? m[1] : ''}:${TOKEN}`).toString('base64')}`;
  if (!m || req.headers.authorization !== want) return error(20003, 401, 'Authenticate');
  if (req.headers['content-type'] !== 'application/x-www-form-urlencoded') {
    return error(21609, 400, 'bad content type');
  }
  if (!/^\+[1-9][0-9]{6,14}$/.test(form.get('To') || '')) {
    return error(21211, 400, `The 'To' number ${form.get('To')} is not a valid phone number.`);
  }
  if (!form.get('From') && !form.get('MessagingServiceSid')) {
    return error(21603, 400, "A 'From' phone number is required.");
  }
  if (!form.get('Body')) return error(21602, 400, 'Message body is required.');
  if (form.get('To') === '+15005550004') {
    return error(21610, 400, 'Attempt to send to unsubscribed recipient');
  }
  return send(201, {
    sid: `SM${'0'.repeat(31)}${form.get('Body').length % 10}`, status: 'queued',
    error_code: null, num_segments: '1', to: form.get('To'), account_sid: m[1],
  });
}

function vonageReply(req, form, res) {
  const send = (messages) => {
    res.writeHead(200, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify({ 'message-count': String(messages.length), messages }));
  };
  if (req.headers['content-type'] !== 'application/x-www-form-urlencoded') {
    return send([{ status: '2', 'error-text': 'Missing api_key' }]);
  }
  if (form.get('api_key') !== VKEY || form.get('api_secret') !== VSECRET) {
    return send([{ status: '4', 'error-text': 'Bad Credentials' }]);
  }
  for (const k of ['from', 'to', 'text']) {
    if (!form.get(k)) return send([{ status: '2', 'error-text': `Missing ${k} param` }]);
  }
  if (!/^[1-9][0-9]{6,14}$/.test(form.get('to'))) {
    return send([{ status: '3', 'error-text': 'Invalid to param' }]);
  }
  return send([{
    to: form.get('to'), 'message-id': '0C000000217B7F02', status: '0',
    'remaining-balance': '15.53590000', 'message-price': '0.03330000', network: '23410',
  }]);
}

function startMock() {
  const requests = [];
  const server = http.createServer((req, res) => {
    let body = '';
    req.on('data', (d) => { body += d; });
    req.on('end', () => {
      const form = new URLSearchParams(body);
      requests.push({ url: req.url, form: Object.fromEntries(form) });
      if (req.method === 'POST' && req.url.startsWith('/2010-04-01/')) {
        return twilioReply(req, form, res);
      }
      if (req.method === 'POST' && req.url === '/sms/json') return vonageReply(req, form, res);
      res.writeHead(404);
      return res.end();
    });
  });
  return new Promise((resolve) => {
    server.listen(0, '127.0.0.1', () => resolve({
      requests,
      base: `http://127.0.0.1:${server.address().port}`,
      stop: () => new Promise((r) => server.close(r)),
    }));
  });
}

// The seed's NotificationsService.addSmsJob.
async function addSmsJob(queue, data) {
  const priority = { LOW: 10, NORMAL: 5, HIGH: 2, URGENT: 1 }[data.priority];
  return queue.add('send-sms', data, {
    priority,
    jobId: `sms-${data.notificationId}`,
    attempts: 3,
    backoff: { type: 'exponential', delay: 2000 },
  });
}

async function finished(queue, id) {
  let job;
  await H.waitFor(async () => {
    job = await queue.getJob(id);
    return job && (job.finishedOn || job.failedReason);
  }, 20000, `job ${id} finished`);
  return { job, state: await job.getState() };
}

test('the seeds\' SmsJobData goes out through twilio and vonage', async () => {
  const redis = await H.startRedis();
  const mock = await startMock();
  const dir = path.dirname(redis.socket);
  const config = path.join(dir, 'notifyq.yaml');
  fs.writeFileSync(config, [
    'redis:', `  socket: ${redis.socket}`, '  prefix: bull',
    `state_dir: ${dir}/state`,
    'control:', `  socket: ${dir}/control.sock`,
    'queues:',
    '  sms-twilio:', '    handler: sms', '    bullmq_queue: sms-notifications',
    `    provider: {type: twilio, account_sid: ${SID}, auth_token: ${TOKEN}, `
      + `from: '+15005550006', base_url: '${mock.base}', default_region: US}`,
    '  sms-vonage:', '    handler: sms', '    bullmq_queue: sms-notifications-eu',
    `    provider: {type: vonage, api_key: ${VKEY}, api_secret: ${VSECRET}, from: ACME, `
      + `base_url: '${mock.base}', default_region: GB}`,
    ''].join('\n'));
  const daemon = spawn(NOTIFYQD, ['-c', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  daemon.stderr.on('data', (d) => { log += d; });
  const us = new Queue('sms-notifications', { connection: redis.connection() });
  const eu = new Queue('sms-notifications-eu', { connection: redis.connection() });
  try {
    const base = { tenantId: 'acme', userId: 'u-1', category: 'security', priority: 'URGENT' };
    const ok = await addSmsJob(us, { ...base, to: '(415) 555-0100',
      message: 'Your code is 481516', notificationId: 'n1' });
    const stop = await addSmsJob(us, { ...base, to: '+1 500 555 0004', message: 'Hi',
      notificationId: 'n2', priority: 'LOW' });
    const euJob = await addSmsJob(eu, { ...base, to: '07700 900000', message: 'Grüße',
      notificationId: 'n3', priority: 'NORMAL' });

    const a = await finished(us, ok.id);
    assert.equal(a.state, 'completed', `${a.job.failedReason}\n${log}`);
    assert.deepEqual(a.job.returnvalue, {
      ok: true, provider: 'twilio', messageId: `SM${'0'.repeat(31)}9`,
      recipients: [{ to: '+14155550100', status: 'sent', id: `SM${'0'.repeat(31)}9`,
        reason: null }],
      segments: 1, encoding: 'GSM-7',
    });

    const b = await finished(us, stop.id);
    assert.equal(b.state, 'failed');
    assert.equal(b.job.attemptsMade, 1);
    assert.match(b.job.failedReason, /^twilio: HTTP 400 code 21610: /);
    assert.equal(b.job.progress.recipients[0].status, 'dead');
    assert.equal(b.job.progress.recipients[0].to, '+15005550004');

    const c = await finished(eu, euJob.id);
    assert.equal(c.state, 'completed', `${c.job.failedReason}\n${log}`);
    assert.equal(c.job.returnvalue.provider, 'vonage');
    assert.equal(c.job.returnvalue.messageId, '0C000000217B7F02');
    assert.equal(c.job.returnvalue.recipients[0].to, '+447700900000');
    const sent = mock.requests.find((r) => r.url === '/sms/json');
    assert.equal(sent.form.to, '447700900000');
    assert.equal(sent.form.text, 'Grüße');
    assert.equal(sent.form['client-ref'], 'sms-n3');
  } finally {
    await us.close();
    await eu.close();
    daemon.kill('SIGTERM');
    await new Promise((resolve) => daemon.on('exit', resolve));
    await mock.stop();
    await redis.stop();
  }
});
