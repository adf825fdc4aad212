'use strict';
// SPDX-License-Identifier: MIT
// The Node producer of notifyq-jobs(7) works as pasted: the example is cut
// from the page, its one connection line pointed at a private Redis (the page
// says 127.0.0.1:6379, which tests never use), and run with node against
// notifyqd serving the page's configuration (queue "email", prefix "bull",
// the file provider). It must print the delivered returnvalue, and the file
// it names must hold the message.
const test = require('node:test');
const assert = require('node:assert/strict');
const { spawn, execFile } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const H = require('./helpers');

const BUILD = process.env.NOTIFYQ_BUILD || path.join(__dirname, '..', '..', '_build');
const NOTIFYQD = path.join(BUILD, 'notifyqd');
const PAGE = path.join(__dirname, '..', '..', 'man', 'notifyq-jobs.7');

assert.ok(fs.existsSync(NOTIFYQD), `build notifyqd first (${NOTIFYQD})`);

// The example's lines as roff prints them: it uses no escapes but "\e".
function example() {
  const page = fs.readFileSync(PAGE, 'utf8');
  const m = page.match(/\.\\" example: producer begins\n([\s\S]*?)\.\\" example: producer ends\n/);
  assert.ok(m, 'notifyq-jobs.7 has the producer example between its marks');
  return m[1].replace(/\\e/g, '\\');
}

function run(file, args, opts) {
  return new Promise((resolve) => {
    execFile(file, args, { timeout: 60000, ...opts }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, stdout, stderr });
    });
  });
}

test('the producer example of notifyq-jobs(7) delivers an email', async () => {
  const redis = await H.startRedis();
  const dir = path.dirname(redis.socket);
  const spool = path.join(dir, 'spool', 'email');
  const config = path.join(dir, 'notifyq.yaml');
  fs.writeFileSync(config, [
    'redis:', `  socket: ${redis.socket}`, '  prefix: bull',
    `state_dir: ${dir}/state`,
    'control:', `  socket: ${dir}/control.sock`,
    'queues:', '  email:', '    handler: email',
    `    provider: {type: file, spool_dir: ${spool}}`, ''].join('\n'));
  const pasted = example();
  const line = "const connection = { host: '127.0.0.1', port: 6379 };";
  assert.ok(pasted.includes(line), 'the example connects as notifyq.yaml says');
  // Inside tests/interop, so that require('bullmq') finds the pinned one.
  const script = path.join(__dirname, `.jobs-page-${process.pid}.js`);
  fs.writeFileSync(script, pasted.replace(line,
    `const connection = { path: ${JSON.stringify(redis.socket)} };`));
  const daemon = spawn(NOTIFYQD, ['-c', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let log = '';
  daemon.stderr.on('data', (d) => { log += d; });
  try {
    const r = await run(process.execPath, [script], { cwd: __dirname });
    assert.equal(r.code, 0, `${r.stdout}${r.stderr}\nnotifyqd:\n${log}`);
    const m = r.stdout.match(/^delivered: (.*)$/m);
    assert.ok(m, r.stdout);
    const result = JSON.parse(m[1]);
    assert.equal(result.ok, true);
    assert.equal(result.provider, 'file');
    assert.ok(result.path.startsWith(`${spool}/email.`), result.path);
    const eml = fs.readFileSync(result.path, 'utf8');
    assert.match(eml, /^To: Ada Lovelace <ada@example\.org>\r$/m);
    assert.match(eml, /^Subject: Welcome\r$/m);
    assert.match(eml, /^X-Notifyq-Tenant-Id: acme\r$/m);
    assert.match(eml, new RegExp(`^Message-ID: ${result.messageId}\\r$`, 'm'));
  } finally {
    fs.rmSync(script, { force: true });
    daemon.kill('SIGTERM');
    await new Promise((resolve) => daemon.on('exit', resolve));
    await redis.stop();
  }
});
