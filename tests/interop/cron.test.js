'use strict';
// SPDX-License-Identifier: MIT
// notifyq's cron (src/queue/cron.c, through the nq_cron program) against the
// real thing: cron-parser as bullmq 6.7.0 calls it, over a table of patterns
// x time zones x instants around DST changes, year ends and leap days, to the
// millisecond; then bullmq's own scheduler code (defaultRepeatStrategy with
// prevMillis, startDate, endDate) and what upsertJobScheduler leaves in Redis.
const test = require('node:test');
const assert = require('node:assert');
const { spawn, spawnSync } = require('node:child_process');
const fs = require('node:fs');
const path = require('node:path');
const { CronExpressionParser } = require('cron-parser');
const { DateTime } = require('luxon');
const { Queue, defaultRepeatStrategy } = require('bullmq');
const IORedis = require('ioredis');
const { startRedis } = require('./helpers');
const { agreeingZones, reportAgreement, hourly } = require('./tzdata');

const BUILD = process.env.NOTIFYQ_BUILD || path.join(__dirname, '..', '..', '_build');
const NQ_CRON = path.join(BUILD, 'tests', 'interop', 'nq_cron');
const LIMIT = { timeout: 60000 }; // per test; the whole file takes ~15 s on 2 cores

// What bullmq does: a fresh parse from each instant, then next().
function expectNext(pattern, tz, after) {
  let expr;
  try {
    expr = CronExpressionParser.parse(pattern, { currentDate: new Date(after), tz });
  } catch (e) {
    return 'error';
  }
  try {
    return String(expr.next().getTime());
  } catch (e) {
    return 'none';
  }
}

// JobScheduler.upsertJobScheduler's arithmetic around defaultRepeatStrategy.
function expectSched(pattern, tz, startDate, endDate, prevMillis, now) {
  const opts = { pattern };
  if (tz !== undefined) opts.tz = tz;
  if (startDate) opts.startDate = startDate;
  if (endDate) opts.endDate = endDate;
  const from = prevMillis < now ? now : prevMillis;
  let next;
  try {
    next = defaultRepeatStrategy(from, opts);
  } catch (e) {
    return 'error';
  }
  if (next === undefined) return 'none';
  return String(next < from ? from : next);
}

// Runs every query through one nq_cron process; resolves its answer lines.
function askC(lines, env) {
  return new Promise((resolve, reject) => {
    const child = spawn(NQ_CRON, [], { stdio: ['pipe', 'pipe', 'inherit'], env: env || process.env });
    let out = '';
    const timer = setTimeout(() => child.kill('SIGKILL'), 20000);
    child.stdout.on('data', (d) => { out += d; });
    child.on('error', reject);
    child.on('close', (code) => {
      clearTimeout(timer);
      if (code !== 0) return reject(new Error(`nq_cron exited ${code}`));
      resolve(out.split('\n').slice(0, -1));
    });
    child.stdin.end(lines.map((l) => l.join('\t')).join('\n') + '\n');
  });
}

// Ours must equal theirs; errors compare as "error" (the texts differ).
function compare(queries, expected, answers, fmt) {
  assert.strictEqual(answers.length, queries.length, 'one answer per query');
  const bad = [];
  queries.forEach((q, i) => {
    const ours = answers[i].startsWith('error') ? 'error' : answers[i];
    if (ours !== expected[i]) bad.push(`${fmt(q)}: cron-parser ${expected[i]}, ours ${answers[i]}`);
  });
  assert.strictEqual(bad.length, 0, `${bad.length} mismatches:\n  ${bad.slice(0, 40).join('\n  ')}`);
}

const fmtNext = (q) => `next(${JSON.stringify(q[1])}, ${q[2]}, ${new Date(Number(q[3])).toISOString()})`;

// UTC instants where tz's offset changes in [from, to): a daily scan, then
// bisection to the second.
function transitions(tz, from, to) {
  const off = (ms) => DateTime.fromMillis(ms, { zone: tz }).offset;
  const out = [];
  let prev = off(from);
  for (let t = from; t < to; t += 86400000) {
    const o = off(t + 86400000);
    if (o === prev) continue;
    let lo = t, hi = t + 86400000;
    while (hi - lo > 1000) {
      const mid = lo + Math.floor((hi - lo) / 2000) * 1000;
      if (off(mid) === prev) lo = mid; else hi = mid;
    }
    out.push(hi);
    prev = o;
  }
  return out;
}

// Times of day, where DST changes bite: compared around every offset change.
const DAILY = [
  '* * * * *', '*/7 * * * *', '0 * * * *', '30 2 * * *', '0 2 * * *', '0 3 * * *', '0 1 * * *',
  '15,45 1-3 * * *', '0 */2 * * *', '0 0 * * *', '*/10 * * * * *', '30 30 2 * * *',
  '0 30 1 * * *', '0 0,30 0-3 * * *', '0 */15 1-2 * * *', '0 0,15,30,45 1-2 * * *',
  '0 */30 * * * *', '0 0 23 * * *', '0 30 23 * * *', '0 0 0-1 * * *', '45 59 1 * * *',
  '0 0 2-4 * * *', '*/20 * 1-3 * * *', '0 0 3 * * *', '0 0 1 * * *', '@hourly', '@daily',
  '0 9 * * MON-FRI', '5 4 * * 0,6', '0 0 2 * * SUN', '0 20 2 * * 2#2', '0 0 9-17/2 * * 1-5',
  '0 30 2 * 10 *', '0 5 2 * 3 *', '0 0 0 * * *', '0 45 0 * * *',
];

// Calendar forms: compared from year ends, a leap day and an ordinary day.
const CALENDAR = [
  '0 0 1 * *', '0 0 L * *', '0 0 29 2 *', '0 0 L 2 *', '0 12 * * 5L', '0 9 * * 1#1',
  '0 0 1,15 * MON', '0 0 13 * FRI', '59 59 23 31 12 *', '0 0 0 1 JAN *', '0 0 12 ? * WED',
  '0 0 0 * * 7', '0 0 0 * * 1-7/2', '0 15 10 L * ?', '0 0 0 1-7 * 1', '0 0 0 ? * 6#3',
  '0 0 0 31 * *', '@weekly', '@monthly', '@yearly', '0 0 12 29 2 1', '0 0 12 1-5L * *',
  '0 0 6 * * 5L#2', '0 0 8 * JANFEB *', '0 0 0 * * 1-5-9', '0 0 12 * * 8L', '0 30 2 L 3 *',
];

const ZONES = ['UTC', 'America/New_York', 'Europe/Berlin', 'Australia/Lord_Howe',
  'America/Santiago', 'Asia/Kolkata', 'Pacific/Chatham', 'America/St_Johns', 'America/Havana',
  'utc+3', 'america/los_angeles', undefined];

const DAYS = [Date.UTC(2025, 11, 31, 23, 59, 59, 500), Date.UTC(2026, 11, 31, 12),
  Date.UTC(2028, 1, 28, 23, 30), Date.UTC(2026, 4, 10, 12, 34, 56, 789)];

// Just before and after each offset change of tz (none: UTC's) within a year.
function aroundChanges(tz) {
  const out = [];
  for (const t of transitions(tz || 'UTC', Date.UTC(2025, 9, 1), Date.UTC(2026, 10, 15))) {
    out.push(t - 1800000, t + 3600000 + 250);
  }
  return out;
}

// Queries [next, pattern, tz, after] from each start, following `chain` nexts.
function table(patterns, zones, startsOf, chain) {
  const queries = [];
  const expected = [];
  for (const tz of zones) {
    for (const t0 of startsOf(tz)) {
      for (const pattern of patterns) {
        let after = t0;
        for (let k = 0; k < chain; k++) {
          const want = expectNext(pattern, tz, after);
          queries.push(['next', pattern, tz === undefined ? '-' : tz, String(after)]);
          expected.push(want);
          if (!/^\d+$/.test(want)) break;
          after = Number(want);
        }
      }
    }
  }
  return { queries, expected };
}

const HOUR = 3600000;
const DAY = 24 * HOUR;

// The zones of `all` whose rules Node's ICU data and the system's agree on
// over the hours from-to around each instant of `around`, checked and
// reported (the comparison never passes on nothing: at least `floor` zones).
function zonesToCompare(t, all, around, from, to, floor) {
  const instants = [];
  for (const a of around) instants.push(...hourly(a + from, a + to));
  const agreement = agreeingZones(all, instants);
  reportAgreement(t, all, agreement, floor);
  return agreement.compared;
}

test('times of day equal cron-parser around every DST change, in 11 zones', LIMIT, async (t) => {
  const all = ZONES.filter((z) => z !== undefined); // the process zone has its own test
  const zones = zonesToCompare(t, all, [Date.UTC(2025, 8, 1), DAYS[0], DAYS[3]], -DAY, 460 * DAY, 9);
  const { queries, expected } = table(DAILY, zones, (tz) => aroundChanges(tz).concat(DAYS[0], DAYS[3]), 2);
  assert.ok(queries.length >= 200);
  compare(queries, expected, await askC(queries), fmtNext);
  console.log(`# ${queries.length} next times compared`);
});

test('calendar forms (L, #, names, leap days, OR days) equal cron-parser', LIMIT, async (t) => {
  const zones = zonesToCompare(t, ['UTC', 'America/New_York', 'Australia/Lord_Howe', 'Pacific/Chatham'],
    [DAYS[0]], -DAY, 3 * 366 * DAY, 3);
  const { queries, expected } = table(CALENDAR, zones, () => DAYS, 2);
  // A fifth Monday in February: 10000 steps of cron-parser's walk from here.
  const rare = table(['0 0 0 * 2 1#5', '0 0 0 30 2 1#5'], ['UTC'], () => [DAYS[0]], 2);
  queries.push(...rare.queries);
  expected.push(...rare.expected);
  compare(queries, expected, await askC(queries), fmtNext);
  console.log(`# ${queries.length} next times compared`);
});

test('every tzdata zone ICU knows gives the same local midnights', LIMIT, async (t) => {
  const root = '/usr/share/zoneinfo';
  const names = [];
  const walk = (dir) => {
    for (const e of fs.readdirSync(path.join(root, dir), { withFileTypes: true })) {
      const rel = dir ? `${dir}/${e.name}` : e.name;
      if (rel === 'posix' || rel === 'right') continue;
      if (e.isDirectory()) walk(rel);
      else names.push(rel);
    }
  };
  walk('');
  const queries = [];
  const expected = [];
  const zones = names.filter((tz) => {
    const head = Buffer.alloc(4);
    const fd = fs.openSync(path.join(root, tz), 'r');
    fs.readSync(fd, head, 0, 4, 0);
    fs.closeSync(fd);
    return head.toString() === 'TZif';
  });
  const days = [Date.UTC(2026, 0, 15), Date.UTC(2026, 6, 15), Date.UTC(2040, 6, 15)];
  const compared = zonesToCompare(t, zones, days, -12 * HOUR, 60 * HOUR, Math.ceil(zones.length * 0.9));
  for (const tz of compared) {
    for (const day of days) {
      queries.push(['next', '0 0 0 * * *', tz, String(day)]);
      expected.push(expectNext('0 0 0 * * *', tz, day));
    }
  }
  assert.ok(queries.length > 1000);
  compare(queries, expected, await askC(queries), fmtNext);
});

test('patterns cron-parser rejects are rejected, the odd ones it takes are taken', LIMIT, async () => {
  const patterns = ['', '   ', '* * * * * * *', '60 * * * *', '* 24 * * *', '* * 0 * *', '* * 32 * *',
    '* * * 13 *', '* * * * 8', '5-1 * * * *', '*/0 * * * *', '1/2/3 * * * *', '1,,2 * * * *',
    '0 0 31 4 *', '0 0 30 2 *', '0 0 31 4 1', '0 0 L 4 *', '* * * FOO *', '* * * * MONDAY',
    '* * * * L', '* * L5 * *', '* * LL * *', '* * * * 1#6', '* * * * 1#0', '* * * * 1-2#1',
    '* * * * 5#2#1', '* * * * 0,7', '1,1 * * * *', '0-10,5 * * * *', 'a * * * *', '-1 * * * *',
    '1- * * * *', '1-5/ * * * *', '1-5/-2 * * * *', '* * * * 1/2', '* * * * 5/3',
    '* * * * 1-7/3', '* * * * 0-7', '* * 15L * *', '* * * * 9L', '0 0 * * 5#2.0',
    '0 0 * * 5#0x2', '0 0 * * 5#1.5', '0 0 1-5-9 * *', '*-5 * * * *', '5/* * * * *',
    '0 0 * JAN-MAR MON', '* * * * SUN-SAT', '0 0 * * JUL#2', '* * 1L * *', '0 0 1-5/2L * *',
    '0 0 * MON *', '* * * SUN *', '0 0 * * FRIL', '0 0 * * LFRI', '30', '0 0', '0 12 *',
    '007 * * * *', '00 00 00 * * *', '*/100 * * * *', '1-1 * * * *', '* * * * 7-7',
    '0 0 0 29 2 *', '0 0 0 ? ? ?'];
  const t = Date.UTC(2026, 2, 1, 12);
  const queries = patterns.map((p) => ['next', p, 'Europe/Berlin', String(t)]);
  const expected = patterns.map((p) => expectNext(p, 'Europe/Berlin', t));
  assert.ok(expected.includes('error') && expected.some((e) => /^\d+$/.test(e)));
  compare(queries, expected, await askC(queries), fmtNext);
});

test('time zone names: luxon forms, ICU aliases, case, and unknown ones', LIMIT, async (tc) => {
  const names = ['UTC', 'utc', 'GMT', 'gmt', 'UTC+5', 'UTC-03:30', 'utc+14', 'UTC-0:30', 'UTC+5:3',
    'Etc/GMT+5', 'US/Eastern', 'EST5EDT', 'PST', 'ist', 'Asia/Calcutta', 'EUROPE/BERLIN',
    'Europe/Kyiv', 'CET', 'local', 'system', 'default', '', 'Foo/Bar', 'Factory', 'posixrules',
    'posix/Europe/Berlin', 'right/UTC', '../etc/passwd', 'Europe/../UTC', 'GMT+5', 'Z'];
  const t = Date.UTC(2026, 9, 25, 0, 30);
  const zones = zonesToCompare(tc, names, [t], -12 * HOUR, 60 * HOUR, names.length - 2);
  const queries = zones.map((z) => ['next', '0 30 2 * * *', z, String(t)]);
  const expected = zones.map((z) => expectNext('0 30 2 * * *', z, t));
  compare(queries, expected, await askC(queries), fmtNext);
});

test('no tz is the process zone, as for a Node worker', LIMIT, async () => {
  const patterns = ['0 30 2 * * *', '0 0 * * *', '0 */15 1-2 * * *'];
  const ts = [Date.UTC(2026, 2, 8, 5), Date.UTC(2026, 10, 1, 4, 50), Date.UTC(2026, 5, 1)];
  const env = { ...process.env, TZ: 'America/New_York' };
  const script = `const { CronExpressionParser: P } = require('cron-parser');
    const out = [];
    for (const p of ${JSON.stringify(patterns)})
      for (const t of ${JSON.stringify(ts)})
        out.push(String(P.parse(p, { currentDate: new Date(t) }).next().getTime()));
    console.log(JSON.stringify(out));`;
  const node = spawnSync(process.execPath, ['-e', script], { cwd: __dirname, env, encoding: 'utf8' });
  assert.strictEqual(node.status, 0, node.stderr);
  const expected = JSON.parse(node.stdout);
  const queries = [];
  for (const p of patterns) for (const t of ts) queries.push(['next', p, '-', String(t)]);
  compare(queries, expected, await askC(queries, env), fmtNext);
  // Not UTC: the zone really was New York's.
  assert.notStrictEqual(expected[0], expectNext(patterns[0], 'UTC', ts[0]));
});

test("bullmq's scheduler arithmetic: prevMillis, now, startDate, endDate", LIMIT, async () => {
  const queries = [];
  const expected = [];
  const now = Date.UTC(2026, 2, 29, 0, 30, 0, 123); // Berlin springs forward at 01:00Z
  const cases = [
    // prevMillis later than now wins; startDate in the future floors; endDate bounds.
    [0, 0, 0], [now + 7200000, 0, 0], [now - 7200000, 0, 0], [0, now + 86400000 * 3, 0],
    [now + 3600000, now + 1800000, 0], [0, 0, now + 600000], [0, 0, now - 1],
    [0, now + 86400000, now + 3600000], [now + 86400000 * 400, 0, now + 86400000 * 365],
  ];
  const patterns = ['0 30 2 * * *', '0 */5 * * * *', '0 0 9 * * 1-5', '0 0 0 29 2 *', '*/10 * * * * *'];
  for (const tz of ['Europe/Berlin', 'Australia/Lord_Howe', undefined]) {
    for (const p of patterns) {
      for (const [prev, start, end] of cases) {
        queries.push(['sched', p, tz === undefined ? '-' : tz, String(start), String(end), String(prev), String(now)]);
        expected.push(expectSched(p, tz, start, end, prev, now));
      }
    }
  }
  assert.ok(expected.includes('none'));
  compare(queries, expected, await askC(queries), (q) => `sched(${q.slice(1).join(', ')})`);
});

test('the iteration upsertJobScheduler writes to Redis is the one we compute', LIMIT, async () => {
  const redis = await startRedis();
  const queue = new Queue('cron-interop', { connection: redis.connection() });
  const client = new IORedis(redis.connection());
  try {
    const specs = [
      ['every-5m', { pattern: '0 */5 * * * *', tz: 'Europe/Berlin' }],
      ['weekdays', { pattern: '0 0 9 * * 1-5', tz: 'America/New_York', startDate: Date.UTC(2030, 2, 9, 5) }],
      ['lord-howe', { pattern: '0 15 2 * * *', tz: 'Australia/Lord_Howe', startDate: Date.UTC(2030, 9, 5, 14) }],
    ];
    for (const [id, repeat] of specs) {
      const before = Date.now();
      await queue.upsertJobScheduler(id, repeat, { name: 'tick', data: { id } });
      const after = Date.now();
      const score = await client.zscore('bull:cron-interop:repeat', id);
      const hash = await client.hgetall(`bull:cron-interop:repeat:${id}`);
      assert.strictEqual(hash.pattern, repeat.pattern);
      assert.strictEqual(hash.tz, repeat.tz);
      assert.strictEqual(await client.exists(`bull:cron-interop:repeat:${id}:${score}`), 1);
      const start = String(hash.startDate || 0);
      const ours = await askC([before, after].map((now) =>
        ['sched', repeat.pattern, repeat.tz, start, '0', '0', String(now)]));
      // A pattern on whole minutes cannot change between before and after
      // unless a minute boundary passed in between; then one of them agrees.
      assert.ok(ours.includes(score), `Redis ${score}, ours ${ours.join(' / ')}`);
    }
  } finally {
    client.disconnect();
    await queue.close();
    await redis.stop();
  }
});
