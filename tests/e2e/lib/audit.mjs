// What the audit suites share: the hash under which session and token ids
// appear in a record, the log as `veranda audit query` prints it, a FHIR
// request whose record can be found by its request id, and a sqlite3 shell
// holding a database's write lock.
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import crypto from 'node:crypto';
import { runCli } from './server.mjs';
import { fetchJson } from './oauth.mjs';

/* How a session or token id appears in a record (audit_hash_id()). */
export const hashId = (id) => `sha256:${crypto.createHash('sha256').update(id).digest('base64url')}`;

/*
 * `veranda audit query` as parsed records (and the raw lines and text): the
 * server's stream (node-1) unless the filters name a node (the command line
 * writes its own, "cli").
 */
export async function queryLog(dir, ...filters) {
  const node = filters.includes('--node') ? [] : ['--node', 'node-1'];
  const r = await runCli(['audit', 'query', '--data', dir, '--format', 'ndjson', ...node, ...filters]);
  assert.equal(r.code, 0, `audit query failed: ${r.stderr}`);
  const lines = r.stdout.split('\n').filter(Boolean);
  return { lines, records: lines.map((l) => JSON.parse(l)), text: r.stdout };
}

/* A FHIR request with token 'token' ('' sends none): { status, headers, json, text, rid }. */
export async function fhirAs(srv, method, p, token, { body, headers = {} } = {}) {
  const h = { accept: 'application/fhir+json', authorization: token ? `Bearer ${token}` : '', ...headers };
  if (body && !h['content-type']) h['content-type'] = 'application/fhir+json';
  const r = await fetchJson(`${srv.fhirBase}/${p.replace(/^\//, '')}`, {
    method, headers: h, body: body === undefined ? undefined : typeof body === 'string' ? body : JSON.stringify(body),
  });
  return { ...r, rid: r.headers.get('x-request-id') };
}

/*
 * A sqlite3 shell holding the write lock on the database 'db' (as an
 * operator's shell in a transaction would): release() commits and waits for
 * the shell to end (SIGKILL after 5 s), kill() ends it at once.  'shells',
 * when given, holds the shell while it runs, for a suite's cleanup.
 */
export async function holdDbLock(db, shells) {
  // -bail: a BEGIN that fails ends the shell instead of printing 'locked'
  const child = spawn('sqlite3', ['-bail', db], { stdio: ['pipe', 'pipe', 'pipe'] });
  shells?.add(child);
  const exited = new Promise((resolve) => child.once('exit', resolve));
  exited.then(() => shells?.delete(child));
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  child.stdin.write(".timeout 20000\nBEGIN EXCLUSIVE;\nSELECT 'locked';\n");
  await Promise.race([
    new Promise((resolve) => child.stdout.once('data', resolve)),
    exited.then((code) => {
      throw new Error(`sqlite3 could not lock ${db} (${code}): ${err}`);
    }),
  ]);
  let released = null;
  return {
    release() {
      if (!released) {
        child.stdin.end('COMMIT;\n');
        const t = setTimeout(() => child.kill('SIGKILL'), 5000);
        released = exited.then(() => clearTimeout(t));
      }
      return released;
    },
    kill() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      return exited;
    },
  };
}
