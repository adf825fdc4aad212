'use strict';
// SPDX-License-Identifier: MIT
// The BullMQ side of the benchmark: one Node process running BullMQ 6.7.0's
// Worker with a no-op async processor, as shared/bench/bullmq/consume.js does.
// Forked by run.js, which measures this process from outside (/proc), as it
// measures notifyqd's worker.
//
//   node bullmq-worker.js QUEUE CONCURRENCY
//
// Sends 'ready' once the worker is connected and running (blocked on the
// queue's marker when there is nothing to do); on 'stop' it closes the worker
// and exits 0.
const C = require('./common');

async function main() {
  const [queue, conc] = process.argv.slice(2);
  const worker = new C.bullmq.Worker(queue, async () => ({ ok: true }), {
    connection: C.connection(), concurrency: Number(conc), autorun: false,
  });
  worker.on('error', (err) => console.error('bullmq worker error:', err && err.message));
  worker.on('failed', (job, err) => console.error(`bullmq job ${job && job.id} failed: ${err && err.message}`));
  await worker.waitUntilReady();
  const running = worker.run();
  running.catch((e) => { console.error('worker.run rejected:', e); process.exit(1); });
  process.on('message', async (m) => {
    if (m !== 'stop') return;
    await worker.close();
    await running.catch(() => {});
    process.exit(0);
  });
  process.send('ready');
}

main().catch((e) => { console.error(e); process.exit(1); });
