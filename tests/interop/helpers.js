'use strict';
// SPDX-License-Identifier: MIT
// Shared by the interop tests: a private redis-server per test (unix socket
// in a temp dir, no TCP), BullMQ connections to it, and the nq_driver program
// (built from nq_driver.c) that runs notifyq's queue store.
const { spawn, execFile } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const BUILD = process.env.NOTIFYQ_BUILD || path.join(__dirname, '..', '..', '_build');
// The server binary: Debian 12's redis-server, or another speaking its
// protocol and options, such as valkey-server 8 (NOTIFYQ_REDIS_SERVER=valkey-server).
const REDIS_SERVER = process.env.NOTIFYQ_REDIS_SERVER || 'redis-server';
const DRIVER = path.join(BUILD, 'tests', 'interop', 'nq_driver');

function sleep(ms) {
  return new Promise((res) => setTimeout(res, ms));
}

async function waitFor(pred, timeoutMs = 5000, what = 'condition') {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await pred();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

async function startRedis() {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'nq-interop-'));
  const socket = path.join(dir, 'redis.sock');
  let proc;
  const launch = async () => {
    proc = spawn(REDIS_SERVER, ['--port', '0', '--unixsocket', socket,
      '--unixsocketperm', '700', '--save', '', '--appendonly', 'no', '--dir', dir,
      '--logfile', path.join(dir, 'redis.log')], { stdio: 'ignore' });
    await waitFor(() => fs.existsSync(socket), 5000, `${REDIS_SERVER} socket`);
  };
  const halt = async () => {
    proc.kill('SIGTERM');
    await new Promise((res) => (proc.exitCode !== null ? res() : proc.once('exit', res)));
  };
  await launch();
  return {
    socket,
    connection: () => ({ path: socket, maxRetriesPerRequest: null }),
    // Stops the server (its data is lost: no persistence) and starts another.
    async restart(downMs = 300) {
      await halt();
      await sleep(downMs);
      await launch();
    },
    async stop() {
      await halt();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}

// Runs nq_driver to completion; resolves { code, lines, stderr }.
function driver(redis, queue, args, opts = {}) {
  return new Promise((resolve, reject) => {
    execFile(DRIVER, ['-s', redis.socket, '-q', queue, ...args],
      { timeout: opts.timeout || 30000 }, (err, stdout, stderr) => {
        if (err && typeof err.code !== 'number') return reject(err);
        resolve({ code: err ? err.code : 0, lines: stdout.split('\n').filter(Boolean), stderr });
      });
  });
}

// Starts nq_driver in the background; returns the child process.
function driverSpawn(redis, queue, args) {
  return spawn(DRIVER, ['-s', redis.socket, '-q', queue, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
}

// The ids the driver finished, in order, with the transition letter.
function finishes(lines) {
  return lines.filter((l) => /^\S+ [CFPDWLR]$/.test(l)).map((l) => l.split(' '));
}

module.exports = { DRIVER, sleep, waitFor, startRedis, driver, driverSpawn, finishes };
