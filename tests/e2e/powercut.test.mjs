// A power cut in the middle of the work: `veranda serve` runs with
// tests/e2e/powercut/powercut.c preloaded, which logs what every write to
// the data directory overwrote until a sync of that file covers it.  While
// eight clients create and read Observations, the server is killed
// (SIGKILL), and every write no sync had covered is undone: the data
// directory is what a machine that lost its power at that instant could
// have left on disk, in the worst case.  The next cut comes after the
// server has recovered from it and worked again (two cuts by default,
// POWERCUT_CYCLES for more: `make powercut` makes 1,000).  Then, on a normal start:
//   - every create that was answered 201 can be read back (the store syncs
//     its write-ahead log before it answers a write);
//   - every answered read and create has its audit record (a disclosure
//     waits until its record is durable: DESIGN's audit `sync`);
//   - `veranda audit verify` passes (the journal, the tree and the signed
//     checkpoints are consistent after recovery).
// For the second half of the load a sqlite3 shell holds audit.db's write
// lock (as an operator's shell can), so that the records answered then are
// only in the audit journal when the power goes.
// Each of these fails when the sync it depends on is left out (checked by
// removing the journal's fdatasync, and the store's flush, in turn).
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { makeTempDir, removeDir, initDataDir, seedDataDir, startServer, runCli, requireBinary } from './lib/server.mjs';
import { fhirAs as fhir, holdDbLock, queryLog } from './lib/audit.mjs';
import { POWERCUT_SO, undoUnsynced } from './lib/powercut.mjs';

const CLIENTS = 8;
/* cuts in a row, each on what the one before left (`make powercut`: 1,000) */
const CYCLES = Math.max(1, Number(process.env.POWERCUT_CYCLES || 2));
const SQLITE3 = spawnSync('sqlite3', ['-version']).status === 0;

function removeShm(dir) {
  for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) removeShm(p);
    else if (e.name.endsWith('-shm')) fs.rmSync(p);
  }
}

describe('a power cut while the server answers (unsynced writes lost)', { skip: SQLITE3 ? false : 'the sqlite3 shell is not installed (scripts/install-deps installs it)' }, () => {
  it('answered creates survive, answered reads and creates have their audit records, and the log verifies', async (t) => {
    requireBinary();
    assert.ok(fs.existsSync(POWERCUT_SO), `${POWERCUT_SO} is built by make e2e`);
    const dir = await makeTempDir('veranda-powercut-');
    const data = path.join(dir, 'data');
    const undoLog = path.join(dir, 'undo.log');
    let srv, lock;
    const created = []; /* { id, rid } answered 201, in every cycle */
    const read = []; /* rid of reads answered 200, in every cycle */
    /* waits by progress, not by the clock: a slow machine or the sanitizers only take longer */
    const until = async (what, ok) => {
      for (const end = Date.now() + 20000; !ok(); await sleep(10))
        if (Date.now() > end) throw new Error(`no progress under load: ${what}`);
    };
    try {
      await initDataDir(data);
      await seedDataDir(data, { patients: 2 });
      /* each cycle starts the server on what the cut before it left */
      for (let cycle = 1; cycle <= CYCLES; cycle++) {
        fs.rmSync(undoLog, { force: true });
        srv = await startServer({
          dataDir: data,
          init: false,
          env: {
            LD_PRELOAD: POWERCUT_SO,
            POWERCUT_DIR: data,
            POWERCUT_LOG: undoLog,
            /* under make e2e-san the sanitizer's runtime must otherwise come first */
            ASAN_OPTIONS: [process.env.ASAN_OPTIONS, 'verify_asan_link_order=0'].filter(Boolean).join(':'),
          },
        });
        const s = srv, tok = srv.token;
        const base = { creates: created.length, reads: read.length };
        let stop = false;
        let n = 0;
        const client = async () => {
          while (!stop) {
            const i = n++;
            try {
              if (i % 2 === 0 || created.length === 0) {
                const r = await fhir(s, 'POST', 'Observation', tok, {
                  body: { resourceType: 'Observation', status: 'final', code: { text: `power ${cycle}.${i}` },
                    subject: { reference: 'Patient/alice' }, valueQuantity: { value: i, unit: 'mg' } },
                });
                if (r.status === 201) created.push({ id: r.json.id, rid: r.rid });
              } else {
                const r = await fhir(s, 'GET', `Observation/${created[i % created.length].id}`, tok);
                if (r.status === 200) read.push(r.rid);
              }
            } catch {
              return; /* the connection died with the server */
            }
          }
        };
        const clients = Array.from({ length: CLIENTS }, client);
        await until('20 creates and 20 reads', () => created.length >= base.creates + 20 && read.length >= base.reads + 20);
        lock = await holdDbLock(path.join(data, 'audit.db'));
        const locked = created.length + read.length;
        await until('20 more answers with audit.db locked', () => created.length + read.length >= locked + 20);
        await sleep(Math.floor(Math.random() * 100));
        await srv.kill();
        stop = true;
        await Promise.all(clients);
        await lock.kill();
        lock = null;

        const u = undoUnsynced(undoLog);
        assert.ok(u.syncs > 0 && u.records > u.syncs, `the undo log saw writes and syncs: ${JSON.stringify(u)}`);
        removeShm(data);
        t.diagnostic(`cycle ${cycle}: ${created.length - base.creates} creates and ${read.length - base.reads} reads answered, ` +
          `${created.length + read.length - locked} of them with audit.db locked; undo log: ${JSON.stringify(u)}`);
      }

      srv = await startServer({ dataDir: data, init: false });
      for (const c of created) {
        const r = await fhir(srv, 'GET', `Observation/${c.id}`, srv.token);
        assert.equal(r.status, 200, `created ${c.id} (answered 201) after the cuts: ${r.status}`);
      }
      await srv.stop();
      srv = null;

      const v = await runCli(['audit', 'verify', '--data', data]);
      assert.equal(v.code, 0, `audit verify after the cuts: ${v.stdout}${v.stderr}`);
      const { records } = await queryLog(data);
      const rids = new Set(records.map((r) => r.correlation?.request).filter(Boolean));
      const lost = [...created.map((c) => c.rid), ...read].filter((rid) => !rids.has(rid));
      assert.deepEqual(lost, [], `answered requests without an audit record after the cuts (${created.length} creates, ${read.length} reads)`);
    } finally {
      await lock?.kill();
      await srv?.kill();
      await removeDir(dir);
    }
  });
});
