'use strict';
// SPDX-License-Identifier: MIT
// cron-parser (through luxon) takes its time zones from the tz data built into
// Node's ICU; nq_cron reads the system's /usr/share/zoneinfo. When the two are
// different releases (Debian 12's nodejs 18 carries ICU 72's 2022e data, its
// tzdata package 2025's), zones whose rules changed in between (Mexico,
// Greenland, Egypt, ...) answer differently on the two sides and neither is
// wrong. agreeingZones() says which zones the two data sets agree on over the
// instants a test looks at. The system's side is read by Python's zoneinfo,
// not by nq_cron: the code under test must not choose what it is compared on.
const assert = require('node:assert');
const { spawnSync } = require('node:child_process');
const fs = require('node:fs');
const { IANAZone } = require('luxon');

const ZONEINFO = '/usr/share/zoneinfo';

function systemVersion() {
  try {
    const head = fs.readFileSync(`${ZONEINFO}/tzdata.zi`, 'utf8').slice(0, 200);
    const m = /^# version (\S+)/.exec(head);
    return m ? m[1] : 'unknown';
  } catch (e) {
    return 'unknown';
  }
}

const VERSIONS = { icu: process.versions.tz || 'unknown', system: systemVersion() };

// Zone and link names of the system's tz data, by lower-case name.
function systemNames() {
  const names = new Map();
  for (const line of fs.readFileSync(`${ZONEINFO}/tzdata.zi`, 'utf8').split('\n')) {
    const f = line.split(' ');
    if (f[0] === 'Z') names.set(f[1].toLowerCase(), f[1]);
    else if (f[0] === 'L') names.set(f[2].toLowerCase(), f[2]);
  }
  return names;
}

// In tz data but no time zone to current ICU (nor to nq_cron); ICU releases
// built from older tz data (Debian 12's ICU 72) still accept them.
const NOT_ZONES = new Set(['factory']);

// Offsets in minutes east of UTC of each zone at each instant, from the
// system's data; a zone Python cannot load maps to null.
function systemOffsets(zones, instants) {
  const script = `
import json, sys
from datetime import datetime, timezone
from zoneinfo import ZoneInfo
q = json.load(sys.stdin)
out = {}
for z in q["zones"]:
    try:
        zi = ZoneInfo(z)
    except Exception:
        out[z] = None
        continue
    out[z] = [round(datetime.fromtimestamp(t / 1000, zi).utcoffset().total_seconds() / 60)
              for t in q["instants"]]
json.dump(out, sys.stdout)
`;
  const r = spawnSync('/usr/bin/python3', ['-c', script], {
    input: JSON.stringify({ zones, instants }), encoding: 'utf8', maxBuffer: 256 << 20,
  });
  if (r.status !== 0) throw new Error(`python3 zoneinfo: ${r.stderr || r.error}`);
  return JSON.parse(r.stdout);
}

// Every hour in [from, to).
function hourly(from, to) {
  const out = [];
  for (let t = from; t < to; t += 3600000) out.push(t);
  return out;
}

// Splits zones (names as a test passes them to both sides; undefined is the
// process zone) into those whose rules ICU's and the system's data agree on at
// every instant, and those skipped, each with its reason. Names that are no
// tz data zone (luxon's "UTC+5", unknown ones) are always compared.
function agreeingZones(zones, instants) {
  const names = systemNames();
  const known = zones.filter((z) => z !== undefined && names.has(z.toLowerCase())
    && !NOT_ZONES.has(z.toLowerCase()) && IANAZone.isValidZone(z));
  const sys = systemOffsets(known.map((z) => names.get(z.toLowerCase())), instants);
  const compared = [];
  const skipped = [];
  for (const z of zones) {
    const lower = z === undefined ? undefined : z.toLowerCase();
    const icu = z !== undefined && IANAZone.isValidZone(z);
    if (z === undefined || !names.has(lower)) {
      compared.push(z);
    } else if (NOT_ZONES.has(lower)) {
      if (icu) skipped.push(`${z} (a zone to ICU's ${VERSIONS.icu} data only)`);
      else compared.push(z);
    } else if (!icu) {
      skipped.push(`${z} (not in ICU's ${VERSIONS.icu} data)`);
    } else {
      const zone = IANAZone.create(z);
      const theirs = sys[names.get(lower)];
      const i = theirs ? instants.findIndex((t, k) => zone.offset(t) !== theirs[k]) : 0;
      if (i < 0) {
        compared.push(z);
      } else {
        const at = new Date(instants[i]).toISOString();
        skipped.push(`${z} (at ${at}: ICU ${zone.offset(instants[i])} min, tzdata ${theirs && theirs[i]} min)`);
      }
    }
  }
  return { compared, skipped };
}

// The line a test prints, and the checks every caller makes: with the same
// data on both sides nothing may be skipped, and never fewer than `floor`
// zones compared.
function reportAgreement(t, zones, { compared, skipped }, floor) {
  const line = `${compared.length} of ${zones.length} zones compared, ${skipped.length} skipped ` +
    `(ICU tz data ${VERSIONS.icu}, system tzdata ${VERSIONS.system})`;
  t.diagnostic(line);
  for (const s of skipped.slice(0, 60)) t.diagnostic(`  skipped: ${s}`);
  if (VERSIONS.icu === VERSIONS.system) {
    assert.strictEqual(skipped.length, 0, `same tz data on both sides, yet skipped: ${skipped.join(', ')}`);
  }
  assert.ok(compared.length >= floor, `only ${compared.length} zones compared (floor ${floor}); ` +
    `skipped: ${skipped.join(', ')}`);
}

module.exports = { VERSIONS, agreeingZones, reportAgreement, hourly };
