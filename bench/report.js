'use strict';
// SPDX-License-Identifier: MIT
// Turns the runs of run.js into the Markdown report: per concurrency, the
// median (min–max over the reps) of each figure for BullMQ and notifyq and
// their ratio, the latency table, the targets of issue 4 with a verdict, and
// the Redis commands per job of each side at the highest concurrency.
//
//   node report.js results/DATE.json     re-render a saved result

const SIDES = ['bullmq', 'notifyq'];

function median(xs) {
  const s = xs.slice().sort((a, b) => a - b);
  const m = Math.floor(s.length / 2);
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function fmtNum(x, digits) {
  if (!Number.isFinite(x)) return '–';
  if (digits === undefined) digits = Math.abs(x) >= 100 ? 0 : Math.abs(x) >= 10 ? 1 : 2;
  return x.toFixed(digits);
}

function agg(values, digits) {
  const xs = values.filter(Number.isFinite);
  if (!xs.length) return { med: NaN, text: '–' };
  const med = median(xs);
  const text = xs.length > 1
    ? `${fmtNum(med, digits)} (${fmtNum(Math.min(...xs), digits)}–${fmtNum(Math.max(...xs), digits)})`
    : fmtNum(med, digits);
  return { med, text };
}

function ratio(a, b) {
  return Number.isFinite(a) && Number.isFinite(b) && b !== 0 ? a / b : NaN;
}

const THROUGHPUT_ROWS = [
  ['jobs/s', (x) => x.jobs_per_s, 0],
  ['worker CPU µs/job (user+sys)', (x) => x.worker_cpu_us, 1],
  ['master CPU µs/job (notifyqd)', (x) => x.master_cpu_us, 2],
  ['Redis CPU µs/job', (x) => x.redis_cpu_us, 1],
  ['Redis round trips/job', (x) => x.round_trips, 3],
  ['Redis commands/job', (x) => x.commands, 1],
  ['worker peak RSS MiB (VmHWM)', (x) => x.worker_peak_rss_MiB, 1],
  ['master peak RSS MiB (notifyqd)', (x) => x.master_peak_rss_MiB, 1],
  ['other processes\' CPU, % of a core', (x) => x.machine.others_pct, 0, 'no ratio'],
];

const LATENCY_ROWS = [
  ['add→completed event p50 ms', (x) => x.wall_ms.p50, 2],
  ['add→completed event p99 ms', (x) => x.wall_ms.p99, 2],
  ['finishedOn−timestamp p50 ms', (x) => x.server_ms.p50, 0],
  ['finishedOn−timestamp p99 ms', (x) => x.server_ms.p99, 0],
  ['worker CPU µs/job', (x) => x.worker_cpu_us, 0],
  ['Redis CPU µs/job', (x) => x.redis_cpu_us, 0],
  ['Redis round trips/job (all clients)', (x) => x.round_trips, 2],
  ['Redis commands/job (all clients)', (x) => x.commands, 1],
  ['worker peak RSS MiB', (x) => x.worker_peak_rss_MiB, 1],
  ['other processes\' CPU, % of a core', (x) => x.machine && x.machine.others_pct, 0, 'no ratio'],
];

function pick(runs, kind, side, conc) {
  return runs.filter((x) => x.kind === kind && x.side === side && x.conc === conc && !x.error);
}

// The ratio of the medians, and the range of the per-rep ratios: the two
// sides of one rep ran back to back, so those pairs share the machine's mood.
function figure(runs, kind, conc, get, digits) {
  const out = {};
  for (const side of SIDES) out[side] = agg(pick(runs, kind, side, conc).map(get), digits);
  out.ratio = ratio(out.notifyq.med, out.bullmq.med);
  const paired = [];
  for (const n of pick(runs, kind, 'notifyq', conc)) {
    const b = pick(runs, kind, 'bullmq', conc).find((x) => x.rep === n.rep);
    if (b) paired.push(ratio(get(n), get(b)));
  }
  const ok = paired.filter(Number.isFinite);
  out.ratioText = ok.length > 1
    ? `${fmtNum(out.ratio, 2)} (${fmtNum(Math.min(...ok), 2)}–${fmtNum(Math.max(...ok), 2)})`
    : fmtNum(out.ratio, 2);
  return out;
}

function table(runs, kind, concs, rows) {
  const lines = ['| concurrency | figure | BullMQ 6.7.0 (Node) | notifyq | notifyq / BullMQ |', '|---|---|---|---|---|'];
  for (const conc of concs) {
    for (const [label, get, digits, noRatio] of rows) {
      const f = figure(runs, kind, conc, get, digits);
      lines.push(`| ${conc} | ${label} | ${f.bullmq.text} | ${f.notifyq.text} | ${noRatio ? '' : f.ratioText} |`);
    }
  }
  return lines.join('\n');
}

// Issue 4's targets, at concurrency 100 (or the highest measured).
function targets(runs, conc, latConc) {
  const tp = (get) => figure(runs, 'throughput', conc, get);
  const lat = figure(runs, 'latency', latConc, (x) => x.wall_ms.p99);
  const rss = tp((x) => x.worker_peak_rss_MiB);
  const rows = [
    ['jobs/s', tp((x) => x.jobs_per_s), '≥ 2×', (f) => f.ratio >= 2],
    ['worker CPU µs/job', tp((x) => x.worker_cpu_us), '≤ 0.1×', (f) => f.ratio <= 0.1],
    ['Redis CPU µs/job', tp((x) => x.redis_cpu_us), '≤ 0.65×', (f) => f.ratio <= 0.65],
    ['peak RSS per worker', rss, '≤ 0.1× and ≤ 10 MiB', (f) => f.ratio <= 0.1 && f.notifyq.med <= 10],
    [`p99 add→completed (latency run, c=${latConc})`, lat, '≤ 0.5×', (f) => f.ratio <= 0.5],
  ];
  const lines = [`| target (throughput at c=${conc}) | BullMQ | notifyq | ratio (per-rep range) | goal | met |`,
    '|---|---|---|---|---|---|'];
  for (const [label, f, goal, met] of rows) {
    const verdict = Number.isFinite(f.ratio) ? (met(f) ? 'yes' : '**no**') : '–';
    lines.push(`| ${label} | ${fmtNum(f.bullmq.med)} | ${fmtNum(f.notifyq.med)} | ${f.ratioText} | ${goal} | ${verdict} |`);
  }
  return lines.join('\n');
}

// Calls and Redis time per job by command, from each side's first good run
// at `conc` (a script's time includes that of the commands it runs).
function commandMix(runs, conc) {
  const mix = {};
  const usec = {};
  for (const side of SIDES) {
    const x = pick(runs, 'throughput', side, conc)[0];
    mix[side] = x ? x.calls_per_job : {};
    usec[side] = (x && x.usec_per_job) || {};
  }
  const names = [...new Set(SIDES.flatMap((s) => Object.keys(mix[s])))]
    .sort((a, b) => Math.max(mix.bullmq[b] || 0, mix.notifyq[b] || 0) - Math.max(mix.bullmq[a] || 0, mix.notifyq[a] || 0));
  const lines = ['| command | BullMQ calls/job | notifyq calls/job | BullMQ µs/job | notifyq µs/job |',
    '|---|---|---|---|---|'];
  const shown = (k) => Math.max(mix.bullmq[k] || 0, mix.notifyq[k] || 0) >= 0.0005;
  for (const k of names.filter(shown)) {
    lines.push(`| ${k} | ${fmtNum(mix.bullmq[k] || 0, 3)} | ${fmtNum(mix.notifyq[k] || 0, 3)} | ` +
      `${fmtNum(usec.bullmq[k] || 0, 2)} | ${fmtNum(usec.notifyq[k] || 0, 2)} |`);
  }
  return lines.join('\n');
}

// What both sides left in Redis, from their first good run at `conc`: a
// cheaper side that left less behind would not be a fair comparison.
function stateLeft(runs, conc) {
  const [b, n] = SIDES.map((side) => pick(runs, 'throughput', side, conc)[0]);
  if (!b || !n || !b.job_fields || !n.job_fields) return '';
  const only = (x, y) => x.job_fields.filter((f) => !y.job_fields.includes(f)).join(', ') || 'none';
  return `Fields of the last finished job's hash: ${b.job_fields.join(', ')} (BullMQ); only BullMQ's: ` +
    `${only(b, n)}; only notifyq's: ${only(n, b)}. Events stream length after the run: ` +
    `${b.events_len} (BullMQ), ${n.events_len} (notifyq).`;
}

function renderMarkdown(res) {
  const { env, cfg, runs } = res;
  const concs = cfg.concs;
  const top = Math.max(...concs);
  const latTop = Math.max(...cfg.latConcs);
  const bad = runs.filter((x) => !x.ok);
  const steal = Math.max(0, ...runs.filter((x) => x.machine).map((x) => x.machine.steal));
  const others = Math.max(0, ...runs.filter((x) => x.machine).map((x) => x.machine.others_pct || 0));
  const out = [];
  out.push(`# notifyq vs BullMQ: ${env.date.slice(0, 10)}${cfg.label ? ` (${cfg.label})` : ''}`, '');
  out.push(`${env.cores} cores (${env.cpu}), Redis ${env.redis} over ${env.transport} (no persistence), ` +
    `node ${env.node}, bullmq ${env.bullmq}, ioredis ${env.ioredis}, notifyq ${env.notifyq_rev} (-O2). ` +
    `Run took ${res.duration_s} s; highest hypervisor steal in a run ${steal} %, highest CPU of ` +
    `other processes on the machine during a run ${others} % of a core.`, '');
  out.push(`Throughput: ${cfg.n} jobs (BullMQ addBulk, default options, ~200-byte e-mail payload) ` +
    `waiting in a paused queue; one worker process (BullMQ \`Worker\` with a no-op async processor / ` +
    `notifyqd with one queue, handler \`noop\`, processes 1) at the given concurrency; the clock runs ` +
    `from \`Queue.resume()\` to the newest \`finishedOn\`. CPU from /proc/PID/stat (10 ms ticks) and ` +
    `Redis \`INFO cpu\`; round trips are the calls only a client sends (EVALSHA, BZPOPMIN…), commands ` +
    `are all calls in \`INFO commandstats\` including those scripts make. Median (min–max) of ${cfg.reps} rep(s); ` +
    'the ratio is that of the medians, with the range of the ratios within each rep (both sides ran back to back).', '');
  out.push(table(runs, 'throughput', concs, THROUGHPUT_ROWS), '');
  out.push(`Latency: an idle worker; ${cfg.latN} jobs added one at a time with \`Queue.add\`, ` +
    `${cfg.latSpacing} ms apart; wall time from just before \`add\` to the \`completed\` event of ` +
    `\`QueueEvents\` in the adding process, and \`finishedOn − timestamp\` from the job hashes (ms clock).`, '');
  out.push(table(runs, 'latency', cfg.latConcs, LATENCY_ROWS), '');
  out.push('## Targets (issue 4)', '');
  out.push(targets(runs, top, latTop), '');
  out.push(`## Redis commands per job at concurrency ${top}`, '');
  out.push(commandMix(runs, top), '');
  out.push(stateLeft(runs, top), '');
  if (bad.length) {
    out.push('## Failed runs', '');
    for (const x of bad) out.push(`- ${x.kind} ${x.side} c=${x.conc} rep ${x.rep}: ${x.error || `counts ${JSON.stringify(x.counts)}`}`);
    out.push('');
  }
  return out.join('\n');
}

module.exports = { renderMarkdown };

if (require.main === module) {
  const file = process.argv[2];
  if (!file) { console.error('usage: node report.js RESULT.json'); process.exit(2); }
  process.stdout.write(renderMarkdown(JSON.parse(require('fs').readFileSync(file, 'utf8'))));
}
