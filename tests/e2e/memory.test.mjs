// Memory the server keeps after work that needs a lot of it for a moment:
// each password sign-in's Argon2id hash takes 19 MiB.  Verification runs in
// a block that belongs to its slot (one slot per core by default), mapped
// once and reused, so the memory is bounded by the slots, not by how many
// worker threads (and heap arenas) ever ran a sign-in, and no sign-in pays
// for mapping and faulting in 19 MiB afresh.
import os from 'node:os';
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { startServer, pool } from './lib/server.mjs';
import { Browser, signIn } from './lib/oauth.mjs';

const otherBuild = process.env.VERANDA_BIN
  ? 'another build (VERANDA_BIN): the sanitizer build has its own allocator and quarantine, so its figures say nothing about glibc malloc'
  : false;

function anonKiB(pid) {
  const m = fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(/^RssAnon:\s+(\d+)/m);
  return Number(m[1]);
}

// /proc/PID/stat's fields after the command name, which is in parentheses
function statFields(pid) {
  const stat = fs.readFileSync(`/proc/${pid}/stat`, 'utf8');
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ');
}
const minorFaults = (pid) => Number(statFields(pid)[7]);

test('sign-ins keep their Argon2id memory bounded and reuse it', { skip: otherBuild }, async () => {
  const srv = await startServer({ seed: true, args: ['--log-level', 'warn'] });
  try {
    // one sign-in first, so that the baseline holds what any sign-in sets up once
    assert.equal((await signIn(new Browser(srv.baseUrl), 'alice')).status, 303);
    const before = anonKiB(srv.pid);
    const faults = minorFaults(srv.pid);
    const users = Array.from({ length: 64 }, (_, i) => (i % 2 ? 'alice' : 'bob'));
    const concurrent = 4;
    const statuses = await pool(users, concurrent, async (u) => (await signIn(new Browser(srv.baseUrl), u)).status);
    assert.deepEqual(statuses, users.map(() => 303), 'every sign-in succeeds');
    const grown = anonKiB(srv.pid) - before;
    // At most one more 19 MiB block for each further slot used at once.
    // Memory kept in the heap arena of each worker that ran a hash was
    // 19 MiB for every arena used: 115 MiB for these 64 sign-ins on 2 cores.
    const slots = Math.min(concurrent, os.availableParallelism());
    assert.ok(grown < (slots - 1) * 19 * 1024 + 4096,
      `anonymous memory grew by ${(grown / 1024).toFixed(1)} MiB over 64 sign-ins with ${slots} slots`);
    // A fresh mapping for each hash is 4,864 page faults (19 MiB in 4 KiB
    // pages); reusing a block, a sign-in takes about a hundred.
    const perSignIn = (minorFaults(srv.pid) - faults) / users.length;
    assert.ok(perSignIn < 1000, `${perSignIn.toFixed(0)} page faults a sign-in`);
  } finally {
    await srv.stop();
  }
});

// The other side of the same policy: memory that one request takes and
// gives back must stay in the heap for the next request.  With the mmap
// threshold fixed low (128 KiB, and with it the trim threshold), every large
// search page mapped its buffers, faulted them in and unmapped them again,
// and each heap arena gave its top back after every request: a page of 50
// patients cost three times the CPU.  Counted here as page faults (minflt
// in /proc/PID/stat), which a server reusing its heap does not take.

test('large search pages reuse the heap rather than fault memory in', { skip: otherBuild }, async () => {
  const srv = await startServer({ patients: 40, args: ['--log-level', 'warn', '--audit', 'off', '--workers', '1'] });
  try {
    const page = async () => {
      const r = await srv.fhirFetch('/Observation?_count=200');
      assert.equal(r.status, 200);
      return r.json;
    };
    const first = await page();
    const bytes = JSON.stringify(first).length;
    assert.ok(first.entry.length >= 100, `a full page (${first.entry.length} entries)`);
    assert.ok(bytes > 128 * 1024, `a page larger than glibc's default mmap threshold, 128 KiB (${bytes} bytes)`);
    for (let i = 0; i < 20; i++) await page();
    const before = minorFaults(srv.pid);
    const n = 100;
    for (let i = 0; i < n; i++) await page();
    const perRequest = (minorFaults(srv.pid) - before) / n;
    // Mapping a fresh buffer for each page costs one fault per 4 KiB page
    // touched: hundreds a request.  Reused heap memory costs none.
    assert.ok(perRequest < 16, `${perRequest.toFixed(1)} page faults a request`);
  } finally {
    await srv.stop();
  }
});
