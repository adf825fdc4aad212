'use strict';
// SPDX-License-Identifier: MIT
// A BullMQ Worker whose processor never ends (lock 1 s), for the stalled test:
// the test SIGKILLs it mid-job.  node hang-worker.js SOCKET QUEUE
const { Worker } = require('bullmq');

const [socket, queue] = process.argv.slice(2);
new Worker(queue, () => new Promise(() => {}), {
  connection: { path: socket, maxRetriesPerRequest: null },
  lockDuration: 1000,
  stalledInterval: 1000, // its guard key (PX interval) must not outlive the test
});
