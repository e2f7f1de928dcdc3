// What the audit suites share: the hash under which session and token ids
// appear in a record, the log as `veranda audit query` prints it, and a FHIR
// request whose record can be found by its request id.
import assert from 'node:assert/strict';
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
