// The audit log through the real server and command line: what a token flow
// and FHIR interactions leave in DATA/audit.db (and what they must not),
// `veranda audit verify` against records altered, deleted, inserted,
// reordered and cut off directly in SQLite, fail-closed answers while the
// writer cannot commit, signed checkpoints, inclusion and consistency proofs
// checked here by hand (RFC 9162), receipts, and --audit off refused off
// loopback.
//
// Tampering and locking use the sqlite3 command-line shell (npm has no
// SQLite); the tests that need it are skipped, saying so, when it is missing.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import * as jose from 'jose';
import {
  makeTempDir, removeDir, initDataDir, seedDataDir, startServer, runCli, requireBinary, sleep, freePort,
} from './lib/server.mjs';
import {
  Browser, authorize, redeem, postForm, registerClient, serveFixed, fetchJson, accountPage, field, DEMO_PASSWORD,
} from './lib/oauth.mjs';
import { hashId, holdDbLock, queryLog } from './lib/audit.mjs';

const SQLITE3 = spawnSync('sqlite3', ['-version']).status === 0 ? 'sqlite3' : null;
const NO_SQLITE = SQLITE3 ? false : 'the sqlite3 command-line shell is not installed';
const CB = 'http://127.0.0.1:9999/cb';
const SCOPE = 'launch/patient openid fhirUser offline_access patient/*.cruds';
const STREAM = 1n << 48n; // record.id = stream number * 2^48 + sequence; the first stream is 1

/* ---- helpers ---- */

const sha256 = (...parts) => crypto.createHash('sha256').update(Buffer.concat(parts)).digest();
const b64u = (s) => Buffer.from(s, 'base64url');
const leafHash = (record) => sha256(Buffer.from([0]), Buffer.from(record, 'utf8'));
const nodeHash = (l, r) => sha256(Buffer.from([1]), l, r);

/* RFC 9162 2.1.3.2: the root an inclusion proof leads to. */
function rootFromInclusion(index, size, leaf, proof) {
  let fn = BigInt(index);
  let sn = BigInt(size) - 1n;
  if (fn > sn) throw new Error('index outside the tree');
  let r = leaf;
  for (const p of proof) {
    if (sn === 0n) throw new Error('inclusion proof too long');
    if ((fn & 1n) === 1n || fn === sn) {
      r = nodeHash(p, r);
      while ((fn & 1n) === 0n && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      r = nodeHash(r, p);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  if (sn !== 0n) throw new Error('inclusion proof too short');
  return r;
}

/* RFC 9162 2.1.4.2: does 'proof' show the tree of size2 extends the tree of size1? */
function consistencyHolds(size1, size2, root1, root2, proof) {
  if (size1 === size2) return proof.length === 0 && root1.equals(root2);
  if (size1 === 0 || size1 > size2 || proof.length === 0) return false;
  let path = proof;
  if ((size1 & (size1 - 1)) === 0) path = [root1, ...proof];
  let fn = BigInt(size1 - 1);
  let sn = BigInt(size2 - 1);
  while ((fn & 1n) === 1n) {
    fn >>= 1n;
    sn >>= 1n;
  }
  let fr = path[0];
  let sr = path[0];
  for (const c of path.slice(1)) {
    if (sn === 0n) return false;
    if ((fn & 1n) === 1n || fn === sn) {
      fr = nodeHash(c, fr);
      sr = nodeHash(c, sr);
      while ((fn & 1n) === 0n && fn !== 0n) {
        fn >>= 1n;
        sn >>= 1n;
      }
    } else {
      sr = nodeHash(sr, c);
    }
    fn >>= 1n;
    sn >>= 1n;
  }
  return fr.equals(root1) && sr.equals(root2) && sn === 0n;
}

/* A checkpoint JWS verified with the server's published keys: its payload. */
async function verifiedCheckpoint(srv, jws) {
  const jwks = (await srv.fetch('/oauth/jwks')).json;
  const { payload, protectedHeader } = await jose.compactVerify(jws, jose.createLocalJWKSet(jwks));
  assert.equal(protectedHeader.typ, 'veranda-audit-checkpoint');
  assert.ok(jwks.keys.some((k) => k.kid === protectedHeader.kid), 'signed by a published key');
  return JSON.parse(Buffer.from(payload).toString('utf8'));
}

function sql(db, statements) {
  const r = spawnSync(SQLITE3, [db], { input: statements, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`sqlite3 failed: ${r.stderr}`);
  return r.stdout;
}
const q = (s) => `'${s.replace(/'/g, "''")}'`;
const hex = (buf) => `X'${buf.toString('hex')}'`;

/* "first bad record: 7" or "first bad record: one of 0 to 7" -> [first, last] */
function namedRange(out) {
  const m = /first bad record: (?:one of (\d+) to (\d+)|(\d+))/.exec(out);
  if (!m) return null;
  return m[3] !== undefined ? [Number(m[3]), Number(m[3])] : [Number(m[1]), Number(m[2])];
}

/* A FHIR request with an explicit token ('' sends none): { status, headers, json, text, requestId }. */
async function fhir(srv, method, p, token, body) {
  const headers = { accept: 'application/fhir+json', authorization: token ? `Bearer ${token}` : '' };
  if (body) headers['content-type'] = 'application/fhir+json';
  const r = await fetchJson(`${srv.fhirBase}/${p.replace(/^\//, '')}`, {
    method, headers, body: body ? JSON.stringify(body) : undefined,
  });
  return { ...r, requestId: r.headers.get('x-request-id') };
}

/* ---- the log of a token flow and FHIR interactions ---- */

describe('audit records of a token flow and FHIR interactions', () => {
  let dir, srv, aliceBirth;
  const seen = {};          // what the test did, to find in the log
  const secrets = [];       // values that must never be in a record

  before(async () => {
    requireBinary();
    dir = await makeTempDir('veranda-audit-');
    await initDataDir(dir);
    await seedDataDir(dir, { patients: 1 });
    await registerClient(dir, { clientId: 'audit-app', public: true, redirectUris: [CB] });
    srv = await startServer({ dataDir: dir, args: ['--audit-checkpoint-records', '6', '--audit-checkpoint-seconds', '1'] });
    // the seed dates people relative to today: take alice's birth date from the data
    aliceBirth = (await srv.fhirFetch('/Patient/alice')).json.birthDate;
    assert.match(aliceBirth, /^\d{4}-\d{2}-\d{2}$/);
  });

  after(async () => {
    await srv?.stop();
    await removeDir(dir);
  });

  it('records sign-in, consent, tokens, reads, searches, writes and refusals, durable before the response', async () => {
    // a wrong password first
    const b0 = new Browser(srv.baseUrl);
    const bad = await authorize(b0, srv, { clientId: 'audit-app', redirectUri: CB, scope: SCOPE, user: 'alice', password: 'not-the-password' });
    assert.equal(bad.code, null, 'a wrong password gives no code');
    secrets.push('not-the-password');

    const b = new Browser(srv.baseUrl);
    const a = await authorize(b, srv, { clientId: 'audit-app', redirectUri: CB, scope: SCOPE, user: 'alice', nonce: 'n-audit' });
    assert.ok(a.code, `no code: ${JSON.stringify(a.walk.pages)}`);
    const t = await redeem(srv, { code: a.code, verifier: a.verifier, redirectUri: CB, clientId: 'audit-app' });
    assert.equal(t.status, 200, t.text);
    assert.equal(t.json.patient, 'alice');
    const tok = t.json.access_token;
    seen.jti = jose.decodeJwt(tok).jti;
    assert.ok(seen.jti, 'the access token has a jti');
    secrets.push(tok, t.json.refresh_token, t.json.id_token, a.code, a.verifier, DEMO_PASSWORD);
    for (const [, v] of b.jar) secrets.push(v);

    // read alice's own Patient: the record must be on disk when the response arrives (audit sync)
    const rp = await fhir(srv, 'GET', 'Patient/alice', tok);
    assert.equal(rp.status, 200);
    assert.ok(rp.requestId, 'responses carry X-Request-Id');
    seen.readPatient = rp.requestId;
    const live = await queryLog(dir, '--patient', 'alice', '--type', 'fhir.read');
    assert.ok(live.records.some((r) => r.correlation?.request === rp.requestId),
      'the read is in audit.db (queried while the server runs) as soon as its data was sent');

    // a search, then a read of one hit
    const s = await fhir(srv, 'GET', 'Observation?category=laboratory&_count=2', tok);
    assert.equal(s.status, 200, s.text);
    assert.ok(s.json.entry?.length > 0, 'alice has lab results');
    seen.search = s.requestId;
    const obs = s.json.entry[0].resource;
    const ro = await fhir(srv, 'GET', `Observation/${obs.id}`, tok);
    assert.equal(ro.status, 200);
    seen.readObs = { rid: ro.requestId, id: obs.id, version: obs.meta.versionId };

    // vread, instance history, $everything and POST _search: one record each, of their own type
    const vr = await fhir(srv, 'GET', `Observation/${obs.id}/_history/${obs.meta.versionId}`, tok);
    const hi = await fhir(srv, 'GET', `Observation/${obs.id}/_history`, tok);
    const ev = await fhir(srv, 'GET', 'Patient/alice/$everything?_count=5', tok);
    const ps = await fetchJson(`${srv.fhirBase}/Observation/_search`, { method: 'POST', body: 'category=laboratory&_count=1',
      headers: { authorization: `Bearer ${tok}`, accept: 'application/fhir+json', 'content-type': 'application/x-www-form-urlencoded' } });
    for (const r of [vr, hi, ev, ps]) assert.equal(r.status, 200, r.text);
    seen.kinds = { vread: vr.requestId, history: hi.requestId, everything: ev.requestId,
      postSearch: ps.headers.get('x-request-id') };

    // a parameter the search ignores: its value could be anything (a pasted token), so it is hashed
    const ign = await fhir(srv, 'GET', 'Observation?category=laboratory&_count=1&not-a-param=pasted-secret-value', tok);
    assert.equal(ign.status, 200, ign.text);
    seen.ignored = ign.requestId;
    secrets.push('pasted-secret-value');

    // a search by name and birth date (by the backend service): values must be hashed
    const sn = await srv.fhirFetch(`/Patient?name=Walker&birthdate=${aliceBirth}`);
    assert.equal(sn.status, 200);
    assert.equal(sn.json.entry?.[0]?.resource?.id, 'alice');
    seen.searchName = sn.headers.get('x-request-id');

    // create, update, delete in alice's record with her token
    const body = { resourceType: 'Observation', status: 'final', code: { text: 'home reading' },
      subject: { reference: 'Patient/alice' } };
    const c = await fhir(srv, 'POST', 'Observation', tok, body);
    assert.equal(c.status, 201, c.text);
    const id = c.json.id;
    const u = await fhir(srv, 'PUT', `Observation/${id}`, tok, { ...body, id, status: 'amended' });
    assert.equal(u.status, 200, u.text);
    const d = await fhir(srv, 'DELETE', `Observation/${id}`, tok);
    assert.equal(d.status, 204, d.text);
    seen.writes = { id, create: c.requestId, update: u.requestId, del: d.requestId };

    // refusals: another patient's record hidden (404), a write outside her record (403), no token (401)
    const hidden = await fhir(srv, 'GET', 'Patient/bob-self', tok);
    assert.equal(hidden.status, 404);
    seen.hidden = hidden.requestId;
    const outside = await fhir(srv, 'POST', 'Observation', tok, { ...body, subject: { reference: 'Patient/bob-self' } });
    assert.equal(outside.status, 403, outside.text);
    seen.outside = outside.requestId;
    const none = await fhir(srv, 'GET', 'Patient/alice', '');
    assert.equal(none.status, 401);
    seen.noToken = none.requestId;

    // a refresh narrowed to Patient: an Observation search is then out of scope (403)
    const rf = await postForm(`${srv.baseUrl}/oauth/token`, { grant_type: 'refresh_token', refresh_token: t.json.refresh_token,
      client_id: 'audit-app', scope: 'openid fhirUser launch/patient patient/Patient.rs' });
    assert.equal(rf.status, 200, rf.text);
    secrets.push(rf.json.access_token);
    if (rf.json.refresh_token) secrets.push(rf.json.refresh_token);
    seen.refresh = rf.headers.get('x-request-id');
    const scoped = await fhir(srv, 'GET', 'Observation?_count=1', rf.json.access_token);
    assert.equal(scoped.status, 403, scoped.text);
    seen.scoped = scoped.requestId;
    seen.jti2 = jose.decodeJwt(rf.json.access_token).jti;

    // a batch and a transaction (by the backend service): each entry is recorded as it would be alone
    const post = async (bundle) => {
      const r = await srv.fhirFetch('/', { method: 'POST', body: JSON.stringify(bundle),
        headers: { 'content-type': 'application/fhir+json', accept: 'application/fhir+json' } });
      assert.equal(r.status, 200, r.text);
      return r;
    };
    const bobObs = (await srv.fhirFetch('/Observation?patient=bob-self&_count=1')).json.entry[0].resource;
    const batch = await post({ resourceType: 'Bundle', type: 'batch', entry: [
      { request: { method: 'GET', url: 'Patient/alice' } },
      { request: { method: 'GET', url: `Observation/${bobObs.id}/_history/${bobObs.meta.versionId}` } },
      { request: { method: 'GET', url: 'Observation?patient=bob-self&_count=1' } },
      { request: { method: 'GET', url: 'Observation/no-such-id' } },
    ] });
    assert.deepEqual(batch.json.entry.map((e) => e.response.status.split(' ')[0]), ['200', '200', '200', '404']);
    const tx = await post({ resourceType: 'Bundle', type: 'transaction', entry: [
      { fullUrl: 'urn:uuid:00000000-0000-4000-8000-0000000000a1', resource: { ...body, subject: { reference: 'Patient/bob-self' } }, request: { method: 'POST', url: 'Observation' } },
    ] });
    // a transaction that fails at its second entry: its first entry's create is rolled back, and recorded nowhere
    const failed = await srv.fhirFetch('/', { method: 'POST', headers: { 'content-type': 'application/fhir+json', accept: 'application/fhir+json' },
      body: JSON.stringify({ resourceType: 'Bundle', type: 'transaction', entry: [
        { fullUrl: 'urn:uuid:00000000-0000-4000-8000-0000000000a2', resource: { ...body, code: { text: 'rolled back' } }, request: { method: 'POST', url: 'Observation' } },
        { resource: { resourceType: 'Observation', status: 'not-a-status', code: { text: 'x' } }, request: { method: 'PUT', url: 'Observation/tx-bad' } },
      ] }) });
    assert.ok(failed.status >= 400, failed.text);
    seen.bundles = { batch: batch.headers.get('x-request-id'), tx: tx.headers.get('x-request-id'), bobObs,
      created: tx.json.entry[0].response.location.split('/')[1], failed: failed.headers.get('x-request-id') };
  });

  it('the records say who, whose record, what and under which token, and hold no secrets', async () => {
    await srv.stop({ keepData: true });
    const { records, text } = await queryLog(dir);
    const byReq = (rid, type) => records.filter((r) => r.correlation?.request === rid && (!type || r.type === type));
    const one = (rid, type) => {
      const hits = byReq(rid, type);
      assert.equal(hits.length, 1, `one ${type} record for request ${rid}: ${JSON.stringify(byReq(rid))}`);
      return hits[0];
    };

    // every record of a request carries its request id; the server's own (start, stop, its configuration) none
    for (const r of records) {
      if (r.type.startsWith('system.') || r.agent?.user === 'veranda') continue;
      assert.match(r.correlation?.request ?? '', /^[0-9a-f]{16}$/, `request id in ${JSON.stringify(r)}`);
    }
    assert.equal(records[0].type, 'system.start');
    assert.equal(records.at(-1).type, 'system.stop');
    records.forEach((r, i) => assert.equal(r.seq, i, 'one stream, sequence 0, 1, 2...'));

    // sign-in: the failure and the success, agent alice
    const failed = records.find((r) => r.type === 'session.signin-failed');
    assert.ok(failed, 'a failed sign-in is recorded');
    assert.equal(failed.outcome, 4);
    assert.equal(failed.agent?.username, 'alice');
    const signin = records.find((r) => r.type === 'session.signin' && r.agent?.username === 'alice');
    assert.ok(signin, 'session.signin for alice');
    assert.match(signin.source?.session ?? '', /^sha256:[A-Za-z0-9_-]{43}$/, 'the session only as a hash');
    assert.ok(records.some((r) => r.type === 'oauth.authorize-granted' && r.patient === 'alice' &&
      r.authority?.scopes?.includes('patient/*.cruds')), 'consent recorded with the scopes granted');
    const issued = records.filter((r) => r.type === 'oauth.token-issued' && r.agent?.client === 'audit-app');
    assert.equal(issued.length, 1, 'oauth.token-issued for the app');
    assert.equal(issued[0].patient, 'alice');
    const refreshed = one(seen.refresh, 'oauth.token-refreshed');
    assert.equal(refreshed.agent?.client, 'audit-app');

    // the read of alice's Patient and of her Observation: exact resource, version, patient, token hash
    const rp = one(seen.readPatient, 'fhir.read');
    assert.equal(rp.patient, 'alice');
    assert.deepEqual(rp.entity, [{ type: 'Patient', id: 'alice', version: '1' }]);
    assert.deepEqual(rp.agent, { username: 'alice', role: 'patient', fhirUser: 'Patient/alice', client: 'audit-app' });
    assert.equal(rp.source?.token, hashId(seen.jti), 'the token appears as the hash of its id');
    assert.ok(rp.authority?.grant && rp.authority?.scopes?.includes('patient/*.cruds'));
    const ro = one(seen.readObs.rid, 'fhir.read');
    assert.equal(ro.patient, 'alice');
    assert.deepEqual(ro.authority?.reasons, ['scope:patient', 'patient-compartment'], 'why it was allowed');
    assert.deepEqual(ro.entity, [{ type: 'Observation', id: seen.readObs.id, version: seen.readObs.version }]);

    const k = seen.kinds;
    assert.deepEqual(one(k.vread, 'fhir.vread').entity, [{ type: 'Observation', id: seen.readObs.id, version: seen.readObs.version }]);
    assert.equal(one(k.history, 'fhir.history').patient, 'alice');
    const evr = one(k.everything, 'fhir.everything');
    assert.equal(evr.patient, 'alice');
    assert.equal(one(k.postSearch, 'fhir.search').entity?.[0]?.query, 'Observation?_count=1&category=laboratory');
    for (const rid of Object.values(k)) assert.equal(byReq(rid).length, 1, `exactly one record for ${rid}: ${JSON.stringify(byReq(rid))}`);

    // searches: the normalized query; identifying values hashed
    const s = one(seen.search, 'fhir.search');
    assert.equal(s.patient, 'alice');
    assert.equal(s.entity?.[0]?.query, 'Observation?_count=2&category=laboratory');
    const ig = one(seen.ignored, 'fhir.search');
    assert.match(ig.entity?.[0]?.query ?? '', /^Observation\?_count=1&category=laboratory&not-a-param=~[A-Za-z0-9_-]{22}$/);
    const sn = one(seen.searchName, 'fhir.search');
    assert.match(sn.entity?.[0]?.query ?? '', /^Patient\?birthdate=~[A-Za-z0-9_-]{22}&name=~[A-Za-z0-9_-]{22}$/);
    assert.equal(sn.agent?.client, 'e2e-backend');
    assert.deepEqual(sn.authority?.reasons, ['scope:system'], 'a backend service, not confined');

    // writes with their versions
    const w = seen.writes;
    const cr = one(w.create, 'fhir.create');
    const up = one(w.update, 'fhir.update');
    const de = one(w.del, 'fhir.delete');
    assert.deepEqual(cr.entity, [{ type: 'Observation', id: w.id, version: '1' }]);
    assert.deepEqual(up.entity, [{ type: 'Observation', id: w.id, version: '2' }]);
    assert.deepEqual(de.entity, [{ type: 'Observation', id: w.id, version: '3' }]);
    for (const r of [cr, up, de]) {
      assert.equal(r.patient, 'alice');
      assert.equal(r.agent?.username, 'alice');
      assert.equal(r.outcome, 0);
    }

    // the entries of a batch and a transaction, each with its patient, then the Bundle's own record
    const bb = seen.bundles;
    const batchRecs = byReq(bb.batch);
    assert.deepEqual(batchRecs.map((r) => r.type), ['fhir.read', 'fhir.vread', 'fhir.search', 'fhir.update'],
      'one record per entry that disclosed data (not the 404), then the Bundle');
    assert.deepEqual(batchRecs[0].entity, [{ type: 'Patient', id: 'alice', version: '1' }]);
    assert.equal(batchRecs[0].patient, 'alice');
    assert.deepEqual(batchRecs[1].entity, [{ type: 'Observation', id: bb.bobObs.id, version: bb.bobObs.meta.versionId }]);
    assert.equal(batchRecs[1].patient, 'bob-self', 'the patient whose record was read');
    assert.equal(batchRecs[2].patient, 'bob-self');
    assert.equal(batchRecs[2].entity?.[0]?.query, 'Observation?_count=1&patient=bob-self');
    assert.equal(batchRecs[3].entity?.[0]?.type, 'Bundle');
    assert.equal(batchRecs[3].patient, undefined, 'the Bundle\'s own record names no patient (its entries do)');
    for (const r of batchRecs) assert.equal(r.agent?.client, 'e2e-backend');
    const txRecs = byReq(bb.tx);
    assert.deepEqual(txRecs.map((r) => r.type), ['fhir.create', 'fhir.update']);
    assert.deepEqual(txRecs[0].entity, [{ type: 'Observation', id: bb.created, version: '1' }]);
    assert.equal(txRecs[0].patient, 'bob-self');
    // a failed transaction: no record of its rolled-back entries, one of the failed attempt
    const failedRecs = byReq(bb.failed).filter((r) => r.type.startsWith('fhir.'));
    assert.deepEqual(failedRecs.map((r) => [r.type, r.entity?.[0]?.type, r.outcome]), [['fhir.update', 'Bundle', 4]],
      'a failed transaction records no create, only the failed Bundle');

    // refusals are policy denials (outcome 4) saying why
    const hid = one(seen.hidden, 'policy.denied');
    assert.equal(hid.outcomeCode, 'not-visible');
    assert.equal(hid.outcome, 4);
    assert.deepEqual(hid.entity, [{ type: 'Patient', id: 'bob-self' }]);
    assert.equal(byReq(seen.hidden, 'fhir.read').length, 0, 'a hidden resource is not recorded as read');
    const out = one(seen.outside, 'policy.denied');
    assert.equal(out.outcomeCode, 'outside-record');
    assert.equal(byReq(seen.outside, 'fhir.create').length, 0);
    const sc = one(seen.scoped, 'policy.denied');
    assert.equal(sc.outcomeCode, 'insufficient-scope');
    assert.equal(sc.source?.token, hashId(seen.jti2));
    const nt = one(seen.noToken, 'policy.denied');
    assert.equal(nt.outcomeCode, 'no-token');

    // nothing secret, in any record
    for (const v of secrets.filter(Boolean)) {
      const line = text.split('\n').find((l) => l.includes(v));
      assert.equal(line, undefined, `a secret (${v.slice(0, 12)}...) is in the audit log: ${line}`);
    }
    assert.ok(!text.includes(seen.jti), 'token ids appear only hashed');
    for (const v of ['Walker', aliceBirth]) assert.ok(!text.includes(v), `search value '${v}' in the audit log`);

    // filters: by patient and agent, and the AuditEvent form
    const mine = await queryLog(dir, '--patient', 'alice', '--type', 'fhir');
    assert.ok(mine.records.length >= 6 && mine.records.every((r) => r.patient === 'alice' && r.type.startsWith('fhir.')));
    const fe = await runCli(['audit', 'query', '--data', dir, '--format', 'fhir', '--request-id', seen.readPatient]);
    assert.equal(fe.code, 0, fe.stderr);
    const ae = JSON.parse(fe.stdout.split('\n')[0]);
    assert.equal(ae.resourceType, 'AuditEvent');
    assert.ok(JSON.stringify(ae.subtype).includes('"read"'), 'BALP subtype read');
    assert.ok(ae.entity.some((e) => e.what?.reference === 'Patient/alice'));
  });

  it('audit verify passes on the untouched log', async () => {
    const r = await runCli(['audit', 'verify', '--data', dir]);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    // the server's stream and the command line's (the test harness registers its backend app)
    assert.match(r.stdout, /audit log verified: 2 streams, \d+ records/);
  });

  describe('verify names the record that was altered, deleted, inserted, reordered or cut off', { skip: NO_SQLITE }, () => {
    let records, size, work;
    const copies = [];

    before(async () => {
      records = (await queryLog(dir)).lines;
      size = records.length;
      assert.ok(size >= 19, `a log to work on (${size} records)`);
    });
    after(async () => {
      for (const c of copies) await removeDir(c);
    });

    /* Tamper with a fresh copy of the data dir; resolves verify's result and the named range. */
    async function tampered(statements, extraArgs = []) {
      work = await makeTempDir('veranda-audit-tamper-');
      copies.push(work);
      await fsp.cp(dir, work, { recursive: true });
      sql(path.join(work, 'audit.db'), statements);
      const r = await runCli(['audit', 'verify', '--data', work, ...extraArgs]);
      return { ...r, out: r.stdout + r.stderr, range: namedRange(r.stdout + r.stderr) };
    }
    const id = (seq) => (STREAM + BigInt(seq)).toString();
    const body = (seq) => records[seq];

    it('one byte of a record changed', async () => {
      const n = 7;
      const r = await tampered(`UPDATE record SET body = replace(body, '"seq":${n},', '"seq":${n} ,') WHERE id = ${id(n)};`);
      assert.equal(r.code, 1, r.out);
      assert.deepEqual(r.range, [n, n], r.out);
      assert.match(r.out, /leaf hash/);
    });

    it('a record rewritten with its leaf hash recomputed (only the signed root disagrees)', async () => {
      const n = 9;
      const forged = body(n).replace(/"time":"[^"]+"/, '"time":"2020-01-01T00:00:00.000Z"');
      assert.notEqual(forged, body(n));
      const r = await tampered(`UPDATE record SET body = ${q(forged)}, leaf = ${hex(leafHash(forged))}, time_ms = 1577836800000 WHERE id = ${id(n)};`);
      assert.equal(r.code, 1, r.out);
      assert.ok(r.range && r.range[0] <= n && n <= r.range[1], `range ${r.range} holds ${n}: ${r.out}`);
      assert.match(r.out, /signed root/);
    });

    it('a record deleted', async () => {
      const n = 11;
      const r = await tampered(`DELETE FROM record WHERE id = ${id(n)};`);
      assert.equal(r.code, 1, r.out);
      assert.deepEqual(r.range, [n, n], r.out);
      assert.match(r.out, /missing/);
    });

    it('a record inserted in the middle (later ones moved up, its hash right)', async () => {
      const n = 5;
      const forged = body(n).replace(/"time":"[^"]+"/, '"time":"2020-01-01T00:00:00.000Z"');
      assert.notEqual(forged, body(n));
      const r = await tampered(`
        UPDATE record SET id = id + 1000000 WHERE id >= ${id(n)} AND id < ${id(size)};
        UPDATE record SET id = id - 999999 WHERE id >= ${(STREAM + 1000000n).toString()} AND id < ${(2n * STREAM).toString()};
        INSERT INTO record(id, time_ms, type, outcome, patient, agent, client, request_id, trace_id, leaf, body)
          SELECT ${id(n)}, time_ms, type, outcome, patient, agent, client, request_id, trace_id, ${hex(leafHash(forged))}, ${q(forged)}
          FROM record WHERE id = ${id(n + 1)};`);
      assert.equal(r.code, 1, r.out);
      assert.deepEqual(r.range, [n, n], r.out);
    });

    it('a record appended after the final checkpoint (its hash right)', async () => {
      const last = JSON.parse(body(size - 1));
      const forged = body(size - 1).replace(`"seq":${size - 1},`, `"seq":${size},`);
      const r = await tampered(`
        INSERT INTO record(id, time_ms, type, outcome, patient, agent, client, request_id, trace_id, leaf, body)
          SELECT ${id(size)}, time_ms, type, outcome, patient, agent, client, request_id, trace_id, ${hex(leafHash(forged))}, ${q(forged)}
          FROM record WHERE id = ${id(size - 1)};`);
      assert.equal(last.type, 'system.stop');
      assert.equal(r.code, 1, r.out);
      assert.deepEqual(r.range, [size, size], r.out);
      assert.match(r.out, /closed the stream/);
    });

    it('two records swapped', async () => {
      const n = 13;
      const r = await tampered(`
        UPDATE record SET id = 1 WHERE id = ${id(n)};
        UPDATE record SET id = ${id(n)} WHERE id = ${id(n + 1)};
        UPDATE record SET id = ${id(n + 1)} WHERE id = 1;`);
      assert.equal(r.code, 1, r.out);
      assert.deepEqual(r.range, [n, n], r.out);
      assert.match(r.out, /reordered/);
    });

    it('two records swapped with their sequence numbers and hashes rewritten', async () => {
      const n = 15;
      const a = body(n).replace(`"seq":${n},`, `"seq":${n + 1},`);
      const b2 = body(n + 1).replace(`"seq":${n + 1},`, `"seq":${n},`);
      const r = await tampered(`
        UPDATE record SET id = 1 WHERE id = ${id(n)};
        UPDATE record SET id = ${id(n)}, body = ${q(b2)}, leaf = ${hex(leafHash(b2))} WHERE id = ${id(n + 1)};
        UPDATE record SET id = ${id(n + 1)}, body = ${q(a)}, leaf = ${hex(leafHash(a))} WHERE id = 1;`);
      assert.equal(r.code, 1, r.out);
      assert.ok(r.range && r.range[0] <= n && n <= r.range[1], `range ${r.range} holds ${n}: ${r.out}`);
    });

    it('the tail cut off', async () => {
      const n = size - 4;
      const r = await tampered(`DELETE FROM record WHERE id >= ${id(n)} AND id < ${id(size)};`);
      assert.equal(r.code, 1, r.out);
      assert.equal(r.range?.[0], n, r.out);
      assert.match(r.out, new RegExp(`ends at record ${n} but a checkpoint covers`), r.out);
    });

    it('the tail cut off with the later checkpoints: only a checkpoint kept elsewhere catches it', async () => {
      const sizes = sql(path.join(dir, 'audit.db'), "SELECT size FROM checkpoint WHERE node = 'node-1' ORDER BY size;").split('\n').filter(Boolean).map(Number);
      const cut = sizes.filter((s) => s < size - 2).at(-1);
      assert.ok(cut > 0, `an earlier checkpoint to cut back to (${sizes})`);
      const saved = sql(path.join(dir, 'audit.db'), `SELECT jws FROM checkpoint WHERE node = 'node-1' AND size = ${size};`).trim();
      assert.ok(saved.split('.').length === 3, 'the final checkpoint JWS');
      const file = path.join(await makeTempDir('veranda-audit-ckpt-'), 'checkpoint.jws');
      copies.push(path.dirname(file));
      await fsp.writeFile(file, saved);
      const stmts = `DELETE FROM record WHERE id >= ${id(cut)} AND id < ${id(size)};
        DELETE FROM checkpoint WHERE node = 'node-1' AND size > ${cut};`;
      const plain = await tampered(stmts);
      assert.equal(plain.code, 0, `a consistent shorter log verifies on its own: ${plain.out}`);
      const r = await tampered(stmts, ['--checkpoint', file]);
      assert.equal(r.code, 1, r.out);
      assert.match(r.out, new RegExp(`${size}`), `names the saved checkpoint's size: ${r.out}`);
    });
  });
});

/* ---- checkpoints and proofs over HTTP ---- */

describe('signed checkpoints and proofs', () => {
  let srv;

  before(async () => {
    requireBinary();
    srv = await startServer({ seed: true, args: ['--audit-checkpoint-records', '4', '--audit-checkpoint-seconds', '1'] });
  });
  after(async () => {
    await srv?.stop();
  });

  async function latest() {
    const r = await srv.fetch('/audit/checkpoints');
    assert.equal(r.status, 200, r.text);
    // the server's stream; the command line's ("cli", the harness registering its app) aside
    const mine = r.json.checkpoints.filter((c) => c.node !== 'cli');
    if (mine.length === 0) return { size: 0 }; // none signed yet
    assert.equal(mine.length, 1, 'one server stream');
    const c = mine[0];
    const payload = await verifiedCheckpoint(srv, c.jws);
    assert.equal(payload.log, 'veranda-audit');
    assert.equal(payload.node, c.node);
    assert.equal(payload.size, c.size);
    assert.equal(payload.root, c.root);
    return c;
  }

  /* The latest checkpoint once it covers at least 'size' records. */
  async function covering(size) {
    for (let i = 0; i < 60; i++) {
      const c = await latest();
      if (c.size >= size) return c;
      await sleep(100);
    }
    throw new Error(`no checkpoint of ${size} records within 6 s`);
  }

  it('GET /audit/checkpoints: a JWS the server\'s JWKS verifies, whose size grows with more requests', async () => {
    const first = await covering(1);
    for (let i = 0; i < 5; i++) assert.equal((await srv.fhirFetch('/Patient/alice')).status, 200);
    const second = await covering(first.size + 5);
    assert.ok(second.size >= first.size + 5, `${second.size} >= ${first.size} + 5`);
    assert.notEqual(second.root, first.root);
    const forged = second.jws.replace(/\.[^.]+\./, `.${Buffer.from(JSON.stringify({ ...JSON.parse(b64u(second.jws.split('.')[1])), size: 1 })).toString('base64url')}.`);
    await assert.rejects(verifiedCheckpoint(srv, forged), /signature/i, 'a changed payload does not verify');
  });

  it('GET /audit/proof: an inclusion proof that leads to the signed root; GET /audit/consistency links two checkpoints', async () => {
    const r = await srv.fhirFetch('/Patient/bob-self');
    assert.equal(r.status, 200);
    const rid = r.headers.get('x-request-id');
    const cp = await covering((await latest()).size + 1);
    // the record's exact bytes, from the command line (the log is shared with the running server)
    const { lines } = await queryLog(srv.dataDir, '--type', 'fhir.read');
    const line = lines.find((l) => JSON.parse(l).correlation?.request === rid);
    assert.ok(line, 'the read is in the log');
    const rec = JSON.parse(line);
    assert.equal(rec.patient, 'bob-self');

    const p = await srv.fetch(`/audit/proof?node=${rec.node}&seq=${rec.seq}`);
    assert.equal(p.status, 200, p.text);
    assert.equal(p.json.seq, rec.seq);
    assert.equal(p.json.leaf_hash, leafHash(line).toString('base64url'), 'leaf = SHA-256(0x00 || record)');
    const payload = await verifiedCheckpoint(srv, p.json.checkpoint);
    assert.equal(payload.size, p.json.tree_size);
    assert.ok(payload.size >= cp.size);
    const root = rootFromInclusion(rec.seq, payload.size, leafHash(line), p.json.hashes.map(b64u));
    assert.equal(root.toString('base64url'), payload.root, 'the proof folds to the signed root');
    // the same proof does not fit a changed record
    const other = rootFromInclusion(rec.seq, payload.size, leafHash(line.replace('bob-self', 'alice')), p.json.hashes.map(b64u));
    assert.notEqual(other.toString('base64url'), payload.root);

    assert.equal((await srv.fetch(`/audit/proof?node=${rec.node}&seq=999999`)).status, 404);
    assert.equal((await srv.fetch('/audit/proof?node=node-1&seq=x')).status, 400);

    const hist = await srv.fetch('/audit/checkpoints?history=1');
    assert.equal(hist.status, 200);
    const sizes = hist.json.checkpoints.filter((c) => c.node === 'node-1').map((c) => c.size);
    assert.ok(sizes.length >= 2, `several checkpoints (${sizes})`);
    const [s1, s2] = [sizes[0], sizes.at(-1)];
    const c = await srv.fetch(`/audit/consistency?node=node-1&from=${s1}&to=${s2}`);
    assert.equal(c.status, 200, c.text);
    const p1 = await verifiedCheckpoint(srv, c.json.checkpoint1);
    const p2 = await verifiedCheckpoint(srv, c.json.checkpoint2);
    assert.deepEqual([p1.size, p2.size], [s1, s2]);
    const proof = c.json.hashes.map(b64u);
    assert.ok(consistencyHolds(s1, s2, b64u(p1.root), b64u(p2.root), proof), 'the consistency proof holds');
    assert.ok(!consistencyHolds(s1, s2, b64u(p1.root), sha256(Buffer.from('other')), proof), 'and not for another root');
  });

  it('veranda audit proof gives a receipt that check-receipt accepts with the server\'s keys, and refuses once altered', async () => {
    const dir = srv.dataDir;
    const tmp = await makeTempDir('veranda-audit-receipt-');
    try {
      const cp = await latest();
      const seq = cp.size - 1;
      const pr = await runCli(['audit', 'proof', '--data', dir, '--node', 'node-1', '--seq', String(seq)]);
      assert.equal(pr.code, 0, pr.stderr);
      const receipt = JSON.parse(pr.stdout);
      assert.equal(receipt.receipt, 'veranda-audit-receipt/1');
      assert.equal(receipt.seq, seq);
      const jwks = (await srv.fetch('/oauth/jwks')).text;
      await fsp.writeFile(path.join(tmp, 'jwks.json'), jwks);
      await fsp.writeFile(path.join(tmp, 'receipt.json'), pr.stdout);
      const ok = await runCli(['audit', 'check-receipt', path.join(tmp, 'receipt.json'), '--jwks', path.join(tmp, 'jwks.json'), '--data', dir]);
      assert.equal(ok.code, 0, ok.stdout + ok.stderr);
      assert.match(ok.stdout, new RegExp(`receipt checks: record ${seq} `));
      // by hand as docs/audit.md says
      const payload = await verifiedCheckpoint(srv, receipt.checkpoint);
      assert.equal(rootFromInclusion(seq, receipt.tree_size, leafHash(receipt.record), receipt.hashes.map(b64u)).toString('base64url'), payload.root);

      const altered = { ...receipt, record: receipt.record.replace('"outcome":0', '"outcome":4') };
      assert.notEqual(altered.record, receipt.record);
      await fsp.writeFile(path.join(tmp, 'altered.json'), JSON.stringify(altered));
      const bad = await runCli(['audit', 'check-receipt', path.join(tmp, 'altered.json'), '--jwks', path.join(tmp, 'jwks.json'), '--data', dir]);
      assert.equal(bad.code, 1, bad.stdout + bad.stderr);
      assert.match(bad.stdout, /does NOT check/);
    } finally {
      await removeDir(tmp);
    }
  });

  it('check-receipt works offline, without a data directory', async () => {
    const tmp = await makeTempDir('veranda-audit-receipt-');
    try {
      const pr = await runCli(['audit', 'proof', '--data', srv.dataDir, '--node', 'node-1', '--seq', '0']);
      assert.equal(pr.code, 0, pr.stderr);
      await fsp.writeFile(path.join(tmp, 'receipt.json'), pr.stdout);
      await fsp.writeFile(path.join(tmp, 'jwks.json'), (await srv.fetch('/oauth/jwks')).text);
      const ok = await runCli(['audit', 'check-receipt', path.join(tmp, 'receipt.json'), '--jwks', path.join(tmp, 'jwks.json')], { cwd: tmp });
      assert.equal(ok.code, 0, ok.stdout + ok.stderr);
    } finally {
      await removeDir(tmp);
    }
  });
});

/* ---- fail closed ---- */

// Records are durable once in the audit journal and reach audit.db a moment
// later, so a lock on audit.db holds nothing back until the journal is full.
// These servers run with the smallest journal (two files of 64 KiB, a few
// hundred records) so that it fills in a second.
describe('fail closed while the writer cannot commit', { skip: NO_SQLITE }, () => {
  const SMALL_JOURNAL = ['--audit-journal-kib', '64'];
  /* Hold SQLite's write lock on audit.db from a sqlite3 shell until release(). */
  const shells = new Set();
  after(() => {
    for (const c of shells) c.kill('SIGKILL');
  });
  const lockLog = (dir) => holdDbLock(path.join(dir, 'audit.db'), shells);

  const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
  function get(srv, p, timeout = 30000) {
    return new Promise((resolve) => {
      const req = http.get(`${srv.fhirBase}${p}`, { agent, headers: { ...srv.authHeaders, accept: 'application/fhir+json' }, timeout }, (res) => {
        let b = '';
        res.setEncoding('utf8');
        res.on('data', (d) => (b += d));
        res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, text: b }));
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', (e) => resolve({ status: `error: ${e.message}`, headers: {}, text: '' }));
    });
  }

  // With audit.db locked, fill the journal: 400 reads at once, of which a few
  // hundred go into the journal and the rest wait or are refused. Returns
  // their answers, to await once the lock is gone.
  async function jamJournal(srv) {
    const fired = [];
    for (let i = 0; i < 400; i++) fired.push(get(srv, '/Patient/alice', 30000));
    await sleep(1500);
    return fired;
  }

  async function until200(srv, ms = 5000) {
    const end = Date.now() + ms;
    let r;
    while (Date.now() < end) {
      r = await get(srv, '/Patient/alice', 5000);
      if (r.status === 200) return r;
      await sleep(100);
    }
    return r;
  }

  function checkRefusal(r) {
    assert.equal(r.headers['retry-after'], '1', 'Retry-After on a 503');
    const oo = JSON.parse(r.text);
    assert.equal(oo.resourceType, 'OperationOutcome');
    assert.equal(oo.issue[0].code, 'transient');
    for (const v of ['"Patient"', 'Walker', 'RH1000001', '"birthDate"', '555-0142']) assert.ok(!r.text.includes(v), `patient data (${v}) in a 503`);
  }

  async function recordsOf(dir) {
    const { records } = await queryLog(dir);
    return { records, reads: new Set(records.filter((r) => r.type === 'fhir.read').map((r) => r.correlation.request)) };
  }

  it('a full queue answers 503 with Retry-After and no data; reads resume once the lock goes; every 200 has its record', async () => {
    // enough workers that more requests wait for the writer than the queue holds
    let lock;
    const srv = await startServer({ seed: true, args: ['--audit-queue', '64', '--workers', '256', ...SMALL_JOURNAL] });
    try {
      assert.equal((await get(srv, '/Patient/alice')).status, 200);
      lock = await lockLog(srv.dataDir);
      // waves of concurrent reads until the queue overflows (how many reach a
      // worker at once depends on how connections spread over the workers);
      // under 4.5 s, so that no read gives up waiting (5 s) instead
      const pending = [];
      let refused = 0;
      const t0 = Date.now();
      while (Date.now() - t0 < 4000 && !(refused && pending.length >= 200)) {
        for (let i = 0; i < 50; i++) {
          pending.push(get(srv, '/Patient/alice').then((r) => {
            if (r.status === 503) refused++;
            return r;
          }));
        }
        await sleep(200);
      }
      await lock.release();
      const res = await Promise.all(pending);
      const by = {};
      for (const r of res) by[r.status] = (by[r.status] || 0) + 1;
      assert.ok(by[503] > 0, `some reads refused: ${JSON.stringify(by)}`);
      assert.ok(by[200] > 0, `some reads waited for the lock and were answered: ${JSON.stringify(by)}`);
      assert.equal(by[200] + by[503], res.length, `only 200s and 503s: ${JSON.stringify(by)}`);
      for (const r of res.filter((x) => x.status === 503)) checkRefusal(r);
      const after = await until200(srv);
      assert.equal(after.status, 200, 'reads answer 200 again once the lock is gone');
      await srv.stop({ keepData: true });

      const v = await runCli(['audit', 'verify', '--data', srv.dataDir]);
      assert.equal(v.code, 0, v.stdout + v.stderr);
      const { records, reads } = await recordsOf(srv.dataDir);
      for (const r of res.filter((x) => x.status === 200)) assert.ok(reads.has(r.headers['x-request-id']), `the 200 read ${r.headers['x-request-id']} has its record`);
      assert.ok(reads.has(after.headers['x-request-id']));
      const rejected = records.filter((r) => r.type === 'system.audit-backlog')
        .reduce((n, r) => n + Number(/rejected=(\d+)/.exec(r.entity[0].query)[1]), 0);
      assert.equal(rejected, by[503], 'the backlog records count the refusals');
    } finally {
      await lock?.release();
      await srv.stop();
      await removeDir(srv.dataDir);
    }
  });

  it('a write the log cannot record is not made (or is recorded): every stored create has its fhir.create record',
    async () => {
      let lock;
      const srv = await startServer({ seed: true, args: ['--audit-queue', '64', '--workers', '256', ...SMALL_JOURNAL] });
      try {
        const code = `lock-${crypto.randomBytes(4).toString('hex')}`;
        const body = JSON.stringify({ resourceType: 'Observation', status: 'final', code: { coding: [{ system: 'urn:e2e', code }] },
          subject: { reference: 'Patient/alice' } });
        // every other create inside a transaction, whose entries' records are queued before it commits
        const tx = JSON.stringify({ resourceType: 'Bundle', type: 'transaction',
          entry: [{ fullUrl: 'urn:uuid:00000000-0000-4000-8000-0000000000b1', resource: JSON.parse(body), request: { method: 'POST', url: 'Observation' } }] });
        let n = 0;
        const txSeen = {};
        const post = () => new Promise((resolve) => {
          const inTx = n++ % 2 === 1;
          const req = http.request(`${srv.fhirBase}${inTx ? '' : '/Observation'}`, { method: 'POST', agent, timeout: 30000,
            headers: { ...srv.authHeaders, 'content-type': 'application/fhir+json' } }, (res) => {
            res.resume();
            res.on('end', () => {
              if (inTx) txSeen[res.statusCode] = (txSeen[res.statusCode] || 0) + 1;
              resolve(res.statusCode === 200 && inTx ? 201 : res.statusCode);
            });
          });
          req.on('error', () => resolve('error'));
          req.end(inTx ? tx : body);
        });
        lock = await lockLog(srv.dataDir);
        const pending = [];
        let refused = 0;
        const t0 = Date.now();
        while (Date.now() - t0 < 4000 && !(refused && pending.length >= 200)) {
          for (let i = 0; i < 50; i++) pending.push(post().then((st) => ((refused += st === 503), st)));
          await sleep(200);
        }
        await lock.release();
        const statuses = await Promise.all(pending);
        assert.ok(refused > 0, 'some creates refused');
        assert.ok(txSeen[503] > 0 && txSeen[200] > 0, `transactions refused and made: ${JSON.stringify(txSeen)}`);
        // the log drains its backlog after the lock goes: retry the count until it is answered
        let stored = '';
        for (const end = Date.now() + 15000; Date.now() < end;) {
          const r = await get(srv, `/Observation?code=${encodeURIComponent(`urn:e2e|${code}`)}&_summary=count&_total=accurate`);
          stored = r.text;
          if (r.status === 200) break;
          await sleep(250);
        }
        const total = JSON.parse(stored).total;
        assert.ok(Number.isInteger(total), `count search: ${stored.slice(0, 300)}`);
        await srv.stop({ keepData: true });
        const creates = (await queryLog(srv.dataDir, '--type', 'fhir.create')).records.length;
        assert.equal(total, creates, `${total} stored, ${creates} create records, ${statuses.filter((x) => x === 201).length} answered 201`);
      } finally {
        await lock?.release();
        await srv.stop();
        await removeDir(srv.dataDir);
      }
    });

  it('a create, an update and a delete are answered only once their records are durable', async () => {
    let lock;
    const srv = await startServer({ seed: true, args: SMALL_JOURNAL });
    try {
      const send = (method, p, body) => new Promise((resolve) => {
        const req = http.request(`${srv.fhirBase}${p}`, { method, agent, timeout: 30000,
          headers: { ...srv.authHeaders, 'content-type': 'application/fhir+json', accept: 'application/fhir+json' } }, (res) => {
          res.resume();
          res.on('end', () => resolve({ status: res.statusCode, id: res.headers['x-request-id'], at: Date.now() }));
        });
        req.on('error', (e) => resolve({ status: `error: ${e.message}`, at: Date.now() }));
        req.end(body);
      });
      const obs = (id) => JSON.stringify({ resourceType: 'Observation', id, status: 'final', code: { text: 'held' }, subject: { reference: 'Patient/alice' } });
      assert.equal((await send('PUT', '/Observation/held-upd', obs('held-upd'))).status, 201);
      assert.equal((await send('PUT', '/Observation/held-del', obs('held-del'))).status, 201);
      lock = await lockLog(srv.dataDir);
      const jam = await jamJournal(srv);
      const answers = [
        send('POST', '/Observation', obs(undefined)),
        send('PUT', '/Observation/held-upd', obs('held-upd')),
        send('DELETE', '/Observation/held-del'),
      ];
      await sleep(1500);
      const released = Date.now();
      await lock.release();
      const got = await Promise.all(answers);
      await Promise.all(jam);
      for (const [i, r] of got.entries()) {
        assert.ok([200, 201, 204].includes(r.status), `write ${i}: ${r.status}`);
        assert.ok(r.at >= released, `write ${i} was answered ${released - r.at} ms before its record could be written`);
      }
      await srv.stop({ keepData: true });
      const { records } = await queryLog(srv.dataDir);
      for (const r of got) assert.ok(records.some((x) => x.correlation?.request === r.id), `the record of ${r.id}`);
    } finally {
      await lock?.release();
      await srv.stop();
      await removeDir(srv.dataDir);
    }
  });

  it('a lock held past the busy timeout: waiting reads get 503 within seconds, not a hang, and the server recovers', async () => {
    let lock;
    const srv = await startServer({ seed: true, args: ['--audit-queue', '64', ...SMALL_JOURNAL] });
    try {
      lock = await lockLog(srv.dataDir);
      const jam = await jamJournal(srv);
      const t0 = Date.now();
      const first = await get(srv, '/Patient/alice', 20000);
      const waited = Date.now() - t0;
      assert.equal(first.status, 503, `a read while the log is locked: ${first.status} ${first.text.slice(0, 200)}`);
      checkRefusal(first);
      assert.ok(waited < 9000, `answered in ${waited} ms`);
      // past SQLite's busy timeout (10 s): the writer must not give up for good
      await sleep(Math.max(0, 11500 - (Date.now() - t0)));
      const during = await get(srv, '/Patient/alice', 20000);
      assert.equal(during.status, 503);
      await lock.release();
      await Promise.all(jam);
      const after = await until200(srv, 8000);
      assert.equal(after.status, 200, `reads answer 200 again after the lock is released: ${after.status} ${after.text.slice(0, 200)}`);
      await srv.stop({ keepData: true });
      const v = await runCli(['audit', 'verify', '--data', srv.dataDir]);
      assert.equal(v.code, 0, v.stdout + v.stderr);
      const { reads, records } = await recordsOf(srv.dataDir);
      assert.ok(reads.has(after.headers['x-request-id']), 'the read after recovery has its record');
      assert.equal(records.at(-1).type, 'system.stop', 'the server still closed its log');
    } finally {
      await lock?.release();
      await srv.stop();
      await removeDir(srv.dataDir);
    }
  });
});

/* ---- --audit off ---- */

describe('administrative changes from the command line', () => {
  let dir;
  before(async () => {
    requireBinary();
    dir = await makeTempDir('veranda-audit-admin-');
    await initDataDir(dir);
  });
  after(async () => {
    await removeDir(dir);
  });

  const cli = async (args, opts) => {
    const r = await runCli(args, opts);
    assert.equal(r.code, 0, `veranda ${args.join(' ')}: ${r.stderr}`);
    return r;
  };

  it('apps, accounts and key rotations are recorded in the cli stream by the operator who made them, and the log verifies', async () => {
    const me = os.userInfo().username;
    await cli(['client', 'add', '--data', dir, '--client-id', 'adm-app', '--redirect-uri', 'https://adm.example/cb', '--public']);
    await cli(['client', 'disable', '--data', dir, '--client-id=adm-app']);
    await cli(['client', 'enable', '--data', dir, '--client-id', 'adm-app']);
    await cli(['client', 'remove', '--data', dir, '--client-id', 'adm-app']);
    await cli(['client', 'list', '--data', dir]);
    await cli(['user', 'add', '--data', dir, '--username', 'adm-nurse', '--role', 'support', '--password-stdin'], { input: 'adm-password-123\n' });
    await cli(['user', 'reset-password', '--data', dir, '--username', 'adm-nurse', '--password-stdin'], { input: 'adm-password-456\n' });
    await cli(['user', 'reset-mfa', '--data', dir, '--username', 'adm-nurse']);
    await cli(['user', 'check-password', '--data', dir, '--username', 'adm-nurse', '--password-stdin'], { input: 'adm-password-456\n' });
    await cli(['user', 'disable', '--data', dir, '--username', 'adm-nurse']);
    await cli(['user', 'list', '--data', dir]);
    await cli(['keys', 'rotate', '--data', dir]);
    await cli(['keys', 'list', '--data', dir]);

    const { records, text } = await queryLog(dir, '--node', 'cli');
    const admin = records.filter((r) => r.type.startsWith('admin.'));
    assert.deepEqual(admin.map((r) => [r.node, r.type, r.action, r.entity[0].type, r.entity[0].id]), [
      ['cli', 'admin.client', 'C', 'Client', 'adm-app'],
      ['cli', 'admin.client', 'U', 'Client', 'adm-app'],
      ['cli', 'admin.client', 'U', 'Client', 'adm-app'],
      ['cli', 'admin.client', 'D', 'Client', 'adm-app'],
      ['cli', 'admin.user', 'C', 'User', 'adm-nurse'],
      ['cli', 'admin.user', 'U', 'User', 'adm-nurse'],
      ['cli', 'admin.user', 'U', 'User', 'adm-nurse'],
      ['cli', 'admin.user', 'U', 'User', 'adm-nurse'],
      ['cli', 'admin.key', 'U', 'SigningKeys', 'rotate'],
    ], 'one record per change, none for list or check-password');
    for (const r of admin) {
      assert.equal(r.agent.user, `os:${me}`);
      assert.equal(r.agent.role, 'operator');
      assert.equal(r.outcome, 0);
    }
    assert.deepEqual(admin.map((r) => r.seq), admin.map((_, i) => i), 'one stream, numbered from 0');
    for (const secret of ['adm-password-123', 'adm-password-456']) assert.ok(!text.includes(secret), 'no password in the log');
    // checkpoints signed before the rotation verify with the keys the server still publishes
    const v = await runCli(['audit', 'verify', '--data', dir]);
    assert.equal(v.code, 0, v.stdout + v.stderr);
    assert.match(v.stdout, /verified/);
  });

  it('seeding records each demo account it creates or resets (they have a known password)', async () => {
    const users = async () => (await queryLog(dir, '--node', 'cli', '--type', 'admin.user')).records;
    const before = (await users()).length;
    await cli(['seed', '--data', dir, '--patients', '0']);
    await cli(['seed', '--data', dir, '--patients', '0']);
    const added = (await users()).slice(before);
    const demo = ['alice', 'bob', 'erin', 'frank', 'drsmith', 'sam', 'carol', 'admin'];
    assert.deepEqual(added.map((r) => [r.action, r.entity[0].id]),
      [...demo.map((u) => ['C', u]), ...demo.map((u) => ['U', u])], 'created, then reset');
    assert.ok(added.every((r) => r.agent.role === 'operator'));
  });

  it('the configuration a server starts with is recorded when it is new or changed', async () => {
    const port = await freePort();
    const configs = async () => (await queryLog(dir, '--type', 'admin.config')).records;
    const start = async (args) => {
      const s = await serveFixed({ dataDir: dir, port, args: ['--log-level', 'warn', ...args] });
      await s.stop();
    };
    await start([]);
    const first = await configs();
    assert.equal(first.length, 1, 'the first start records its configuration');
    assert.equal(first[0].action, 'C');
    assert.equal(first[0].agent.user, 'veranda');
    assert.equal(first[0].entity[0].type, 'Configuration');
    assert.match(first[0].entity[0].id, /^sha256:[A-Za-z0-9_-]{43}$/, 'a fingerprint, not the settings');
    await start([]);
    assert.equal((await configs()).length, 1, 'the same configuration again: nothing new');
    await start(['--page-size', '20']);
    const after = await configs();
    assert.equal(after.length, 2, 'a changed setting is recorded');
    assert.equal(after[1].action, 'U');
    assert.notEqual(after[1].entity[0].id, first[0].entity[0].id);
    await start(['--page-size', '20']);
    assert.equal((await configs()).length, 2);
  });

  it('a change that cannot be recorded fails the command and says the change was made', async () => {
    const lock = path.join(dir, 'audit-cli.lock');
    await fs.promises.rm(lock, { force: true });
    await fs.promises.mkdir(lock); // open(2) of the lock file fails
    try {
      const r = await runCli(['client', 'add', '--data', dir, '--client-id', 'adm-app2', '--redirect-uri', 'https://adm.example/cb', '--public']);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /the change was made, but it could not be recorded in the audit log/);
      const list = await cli(['client', 'list', '--data', dir]);
      assert.match(list.stdout, /adm-app2/, 'the change itself was made');
    } finally {
      await fs.promises.rmdir(lock);
    }
    const before = (await queryLog(dir, '--node', 'cli')).records.filter((r) => r.type === 'admin.client').length;
    await cli(['client', 'remove', '--data', dir, '--client-id', 'adm-app2']);
    assert.equal((await queryLog(dir, '--node', 'cli')).records.filter((r) => r.type === 'admin.client').length, before + 1, 'recorded again once the lock file is usable');
  });
});

describe('storage failures', { skip: NO_SQLITE }, () => {
  it('a request that fails in the store is answered 500 and recorded as system.store-error, at most one a second', async () => {
    const srv = await startServer({ seed: true, patients: 0 });
    let ids;
    try {
      assert.equal((await srv.fhirFetch('/Observation?code=x')).status, 200);
      sql(path.join(srv.dataDir, 'veranda.db'), 'DROP TABLE ix_token;');
      const failed = [];
      for (let i = 0; i < 3; i++) {
        const r = await srv.fhirFetch(`/Observation?code=x${i}`);
        assert.equal(r.status, 500, r.text);
        assert.equal(JSON.parse(r.text).resourceType, 'OperationOutcome');
        assert.ok(!/ix_token|sqlite|table/i.test(r.text), `no internals in the answer: ${r.text}`);
        failed.push(r.headers.get('x-request-id'));
      }
      ids = failed;
      assert.ok(srv.logs.some((l) => l.includes('no such table: ix_token') && l.includes(failed[0])),
        'the detail is in the server log, under the request id');
      await srv.stop({ keepData: true });
      const { records } = await queryLog(srv.dataDir, '--type', 'system.store-error');
      assert.equal(records.length, 1, 'three failures within a second: one record');
      const [rec] = records;
      assert.equal(rec.outcome, 8);
      assert.equal(rec.outcomeCode, 'io');
      assert.equal(rec.agent.user, 'veranda');
      assert.equal(rec.correlation.request, ids[0], 'the first failing request');
      const v = await runCli(['audit', 'verify', '--data', srv.dataDir]);
      assert.equal(v.code, 0, v.stdout + v.stderr);
    } finally {
      await srv.stop();
      await removeDir(srv.dataDir);
    }
  });
});

describe('refusals of requests without a token', () => {
  it('are recorded at most 50 a second; the rest are counted in a "suppressed" record, so none is lost from the count', async () => {
    const srv = await startServer({ seed: true, patients: 0 });
    try {
      const anon = () => fetch(`${srv.fhirBase}/Patient/alice`, { headers: { accept: 'application/fhir+json', authorization: '' } })
        .then(async (r) => { await r.arrayBuffer(); return r.status; });
      let sent = 0;
      for (let wave = 0; wave < 8; wave++) {
        const st = await Promise.all(Array.from({ length: 50 }, anon));
        assert.ok(st.every((x) => x === 401), `401s: ${st}`);
        sent += st.length;
      }
      // a refusal in a later second reports what the earlier ones left out
      await sleep(1100);
      assert.equal(await anon(), 401);
      sent++;
      await srv.stop({ keepData: true });
      const { records } = await queryLog(srv.dataDir, '--type', 'policy.denied');
      const each = records.filter((r) => r.outcomeCode === 'no-token');
      const summaries = records.filter((r) => r.outcomeCode === 'suppressed');
      const left = summaries.reduce((n, r) => n + Number(/^suppressed=(\d+)$/.exec(r.entity[0].query)[1]), 0);
      assert.ok(left > 0, `some refusals were left out (${each.length} recorded of ${sent})`);
      assert.equal(each.length + left, sent, 'recorded + counted = every refusal');
      const perSecond = {};
      for (const r of each) perSecond[r.time.slice(0, 19)] = (perSecond[r.time.slice(0, 19)] || 0) + 1;
      assert.ok(Object.values(perSecond).every((n) => n <= 50), `at most 50 a second: ${JSON.stringify(perSecond)}`);
      const v = await runCli(['audit', 'verify', '--data', srv.dataDir]);
      assert.equal(v.code, 0, v.stdout + v.stderr);
    } finally {
      await srv.stop();
      await removeDir(srv.dataDir);
    }
  });
});

/* ---- security plan case 73: replays, reuse and revocations on record ---- */

// What an investigation of a stolen code or refresh token needs from the log:
// the replayed code and the reused (rotated-out) refresh token each leave a
// failure record (outcome 4, the OAuth error) of the app that presented it,
// the user's "Remove access" a record naming her, the app and the grant, and
// none of them holds token text.  Which event each path records:
// handle_token, handle_revoke and handle_account_revoke in
// src/auth/endpoints.c.
describe('a replayed code, a reused refresh token and revocations are on record (security plan case 73)', () => {
  const APP = 'replay-app';
  let dir, srv, log;
  const seen = {};          // request ids and grants of what the test did
  const secrets = [];       // token text that must be in no record

  before(async () => {
    requireBinary();
    dir = await makeTempDir('veranda-audit-replay-');
    await initDataDir(dir);
    await seedDataDir(dir, { patients: 0 });
    await registerClient(dir, { clientId: APP, public: true, redirectUris: [CB] });
    srv = await startServer({ dataDir: dir });
  });

  after(async () => {
    await srv?.stop();
    await removeDir(dir);
  });

  /* alice allows the app in 'browser' and it redeems the code: { code, verifier, tokens, grant, requestId } */
  async function allowed(browser) {
    const a = await authorize(browser, srv, { clientId: APP, redirectUri: CB, scope: SCOPE, user: 'alice' });
    assert.ok(a.code, `no code: ${JSON.stringify(a.walk.pages)}`);
    const t = await redeem(srv, { code: a.code, verifier: a.verifier, redirectUri: CB, clientId: APP });
    assert.equal(t.status, 200, t.text);
    assert.ok(t.json.refresh_token, 'offline_access gives a refresh token');
    secrets.push(a.code, a.verifier, t.json.access_token, t.json.refresh_token, t.json.id_token);
    return { code: a.code, verifier: a.verifier, tokens: t.json, grant: jose.decodeJwt(t.json.access_token).grant,
      requestId: t.headers.get('x-request-id') };
  }
  const refresh = (token) => postForm(`${srv.baseUrl}/oauth/token`, { grant_type: 'refresh_token', refresh_token: token, client_id: APP });

  /*
   * The oauth.* record of the request 'rid' (the log read once the server has
   * stopped), and its line; a replay's second record, the grant it ended
   * (oauth.token-revoked, replay-detected), is looked at on its own below.
   */
  function oauthRecord(rid) {
    const hits = log.records.map((r, i) => [r, log.lines[i]]).filter(([r]) => r.correlation?.request === rid && r.type.startsWith('oauth.') &&
      r.outcomeCode !== 'replay-detected');
    assert.equal(hits.length, 1, `one oauth record for request ${rid}: ${JSON.stringify(hits.map(([r]) => r))}`);
    return { record: hits[0][0], line: hits[0][1] };
  }

  it('the replayed code and the reused refresh token are refused and end their grants; both revocations end theirs', async () => {
    const b = new Browser(srv.baseUrl);

    // a code redeemed twice: the second attempt fails and revokes what the first got (RFC 6749 4.1.2)
    const replayed = await allowed(b);
    const again = await redeem(srv, { code: replayed.code, verifier: replayed.verifier, redirectUri: CB, clientId: APP });
    assert.equal(again.status, 400, again.text);
    assert.equal(again.json?.error, 'invalid_grant');
    assert.equal((await fhir(srv, 'GET', 'Patient/alice', replayed.tokens.access_token)).status, 401, 'the replay ended the grant');
    seen.redeem = replayed.requestId;
    seen.replay = { rid: again.headers.get('x-request-id'), grant: replayed.grant };

    // a refresh token used, then presented again once rotated out: refused, and its successor dies with the grant
    const reused = await allowed(b);
    const rf = await refresh(reused.tokens.refresh_token);
    assert.equal(rf.status, 200, rf.text);
    assert.ok(rf.json.refresh_token && rf.json.refresh_token !== reused.tokens.refresh_token, 'the refresh token rotates');
    secrets.push(rf.json.access_token, rf.json.refresh_token);
    const reuse = await refresh(reused.tokens.refresh_token);
    assert.equal(reuse.status, 400, reuse.text);
    assert.equal(reuse.json?.error, 'invalid_grant');
    assert.equal((await refresh(rf.json.refresh_token)).status, 400, 'the reuse ended the whole family');
    seen.refresh = rf.headers.get('x-request-id');
    seen.reuse = { rid: reuse.headers.get('x-request-id'), grant: reused.grant };

    // "Remove access" on /account
    const removed = await allowed(b);
    const f = (await accountPage(b)).forms.find((x) => x.action === '/account/revoke' && field(x, 'grant') === removed.grant);
    assert.ok(f, 'the grant is listed on /account');
    const rm = await b.post('/account/revoke', new URLSearchParams(f.fields));
    assert.equal(rm.status, 303);
    assert.equal((await fhir(srv, 'GET', 'Patient/alice', removed.tokens.access_token)).status, 401, 'access removed');
    seen.remove = { rid: rm.headers.get('x-request-id'), grant: removed.grant };

    // the app revokes its refresh token at /oauth/revoke (RFC 7009)
    const revoked = await allowed(b);
    const rv = await postForm(`${srv.baseUrl}/oauth/revoke`, { token: revoked.tokens.refresh_token, client_id: APP });
    assert.equal(rv.status, 200, rv.text);
    assert.equal((await refresh(revoked.tokens.refresh_token)).status, 400, 'revoked');
    seen.revoke = { rid: rv.headers.get('x-request-id'), grant: revoked.grant };
    for (const rid of [seen.redeem, seen.replay.rid, seen.refresh, seen.reuse.rid, seen.remove.rid, seen.revoke.rid]) {
      assert.match(rid ?? '', /^[0-9a-f]{16}$/, 'every response carries its request id');
    }
  });

  it('each leaves its oauth.* record: type, outcome (non-zero for the replay and the reuse), the app, the user who removed access, no token text', async () => {
    // the authorization server queues its records without waiting: stopping the server flushes them
    await srv.stop({ keepData: true });
    log = await queryLog(dir);

    // the replayed code: a failed oauth.token-issued, where the first redemption succeeded
    assert.equal(oauthRecord(seen.redeem).record.type, 'oauth.token-issued');
    assert.equal(oauthRecord(seen.redeem).record.outcome, 0, 'the first redemption succeeded');
    const replay = oauthRecord(seen.replay.rid).record;
    assert.equal(replay.type, 'oauth.token-issued');
    assert.equal(replay.outcome, 4, `a failure: ${JSON.stringify(replay)}`);
    assert.equal(replay.outcomeCode, 'invalid_grant');
    assert.equal(replay.agent?.client, APP);

    // the reused refresh token: a failed oauth.token-refreshed, where its first use succeeded
    assert.equal(oauthRecord(seen.refresh).record.type, 'oauth.token-refreshed');
    assert.equal(oauthRecord(seen.refresh).record.outcome, 0, 'the first refresh succeeded');
    const reuse = oauthRecord(seen.reuse.rid).record;
    assert.equal(reuse.type, 'oauth.token-refreshed');
    assert.equal(reuse.outcome, 4, `a failure: ${JSON.stringify(reuse)}`);
    assert.equal(reuse.outcomeCode, 'invalid_grant');
    assert.equal(reuse.agent?.client, APP);

    // "Remove access": alice, the app and the grant she removed
    const remove = oauthRecord(seen.remove.rid).record;
    assert.equal(remove.type, 'oauth.token-revoked');
    assert.equal(remove.outcome, 0);
    assert.equal(remove.outcomeCode, 'removed-by-user');
    assert.deepEqual(remove.agent, { username: 'alice', role: 'patient', fhirUser: 'Patient/alice', client: APP });
    assert.equal(remove.authority?.grant, seen.remove.grant);

    // /oauth/revoke: the app that revoked
    const revoke = oauthRecord(seen.revoke.rid).record;
    assert.equal(revoke.type, 'oauth.token-revoked');
    assert.equal(revoke.outcome, 0);
    assert.equal(revoke.agent?.client, APP);

    // no token text: no JWT, no refresh token, code or verifier, in these records or any other
    for (const rid of [seen.replay.rid, seen.reuse.rid, seen.remove.rid, seen.revoke.rid]) {
      const { line } = oauthRecord(rid);
      assert.ok(!line.includes('eyJ'), `a JWT in ${line}`);
    }
    assert.ok(secrets.length >= 20 && secrets.every(Boolean), `the secrets to look for (${secrets.length})`);
    for (const v of secrets) {
      const line = log.lines.find((l) => l.includes(v));
      assert.equal(line, undefined, `token text (${v.slice(0, 12)}...) is in the audit log: ${line}`);
    }
    assert.ok(!log.text.includes('eyJ'), 'no JWT anywhere in the log');
  });

  // The token endpoint and /oauth/revoke name whose grant they touched: an
  // investigation should not have to guess it from the neighbouring records.
  it('the records of the replay, the reuse and /oauth/revoke name alice and the grant they ended', () => {
    for (const what of ['replay', 'reuse', 'revoke']) {
      const r = oauthRecord(seen[what].rid).record;
      assert.equal(r.agent?.username, 'alice', `${what}: alice is named in ${JSON.stringify(r)}`);
      assert.equal(r.patient, 'alice', `${what}: her record in ${JSON.stringify(r)}`);
      assert.equal(r.authority?.grant, seen[what].grant, `${what}: the grant in ${JSON.stringify(r)}`);
    }
  });

  // docs/audit.md: oauth.token-revoked "a token or a whole grant was revoked
  // (also on refresh-token replay)".
  it('the grants ended by the replayed code and the reused refresh token are also recorded as oauth.token-revoked', () => {
    for (const what of ['replay', 'reuse']) {
      const revoked = log.records.filter((r) => r.correlation?.request === seen[what].rid && r.type === 'oauth.token-revoked');
      assert.equal(revoked.length, 1, `oauth.token-revoked for the ${what}: ${JSON.stringify(revoked)}`);
      assert.equal(revoked[0].outcomeCode, 'replay-detected');
      assert.equal(revoked[0].agent?.client, APP);
      assert.equal(revoked[0].agent?.username, 'alice');
      assert.equal(revoked[0].authority?.grant, seen[what].grant);
    }
  });
});

describe('one writer per audit stream', () => {
  it('a second server on the same data directory and node id is refused, saying why; the first goes on', async () => {
    const srv = await startServer({ seed: true });
    try {
      await assert.rejects(startServer({ dataDir: srv.dataDir, auth: null }), /being written by another process/);
      const r = await fetch(`${srv.fhirBase}/Patient/alice`, { headers: srv.authHeaders });
      assert.equal(r.status, 200);
      await srv.stop({ keepData: true });
      const v = await runCli(['audit', 'verify', '--data', srv.dataDir]);
      assert.equal(v.code, 0, v.stdout + v.stderr);
    } finally {
      await srv.stop();
      await removeDir(srv.dataDir);
    }
  });
});

describe('--audit off', () => {
  let dir;
  before(async () => {
    requireBinary();
    dir = await makeTempDir('veranda-audit-off-');
    await initDataDir(dir);
  });
  after(async () => {
    await removeDir(dir);
  });

  it('is refused with --allow-remote on a non-loopback address, before listening', async () => {
    const r = await runCli(['serve', '--data', dir, '--audit', 'off', '--allow-remote', '--listen', '0.0.0.0:0'], { timeout: 5000 });
    assert.equal(r.timedOut, false, 'refused at once, not serving');
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /--audit=off .*loopback/);
    assert.ok(!/listening/.test(r.stderr), r.stderr);
  });

  it('is refused with --allow-remote even on loopback, and --audit must be sync, async or off', async () => {
    const r = await runCli(['serve', '--data', dir, '--audit', 'off', '--allow-remote', '--listen', '127.0.0.1:0'], { timeout: 5000 });
    assert.equal(r.timedOut, false);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /audit/);
    const bad = await runCli(['serve', '--data', dir, '--audit', 'maybe', '--listen', '127.0.0.1:0'], { timeout: 5000 });
    assert.equal(bad.timedOut, false);
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /sync, async or off/);
  });

  it('on loopback serves without writing records', async () => {
    const before = (await queryLog(dir)).records.length;
    const srv = await startServer({ dataDir: dir, args: ['--audit', 'off'] });
    try {
      const r = await srv.fhirFetch('/Patient?_count=1');
      assert.equal(r.status, 200);
    } finally {
      await srv.stop();
    }
    assert.equal((await queryLog(dir)).records.length, before);
  });
});

describe('a server that cannot listen', () => {
  it('has its start on record before any request could be, then a failed stop, and exits non-zero', async () => {
    const dir = await makeTempDir('veranda-listen-');
    const blocker = http.createServer();
    await new Promise((r) => blocker.listen(0, '127.0.0.1', r));
    try {
      await initDataDir(dir);
      const r = await runCli(['serve', '--data', dir, '--listen', `127.0.0.1:${blocker.address().port}`], { timeout: 20000 });
      assert.notEqual(r.code, 0, r.stderr);
      assert.match(r.stderr, /listen|address|in use/i, r.stderr);
      const q = await runCli(['audit', 'query', '--data', dir, '--node', 'node-1', '--format', 'ndjson']);
      assert.equal(q.code, 0, q.stderr);
      const recs = q.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l)).sort((a, b) => a.seq - b.seq);
      assert.deepEqual([recs[0].type, recs[0].outcome], ['system.start', 0], JSON.stringify(recs));
      assert.deepEqual([recs.at(-1).type, recs.at(-1).outcome, recs.at(-1).outcomeCode], ['system.stop', 12, 'listen-failed']);
      const v = await runCli(['audit', 'verify', '--data', dir]);
      assert.equal(v.code, 0, v.stdout + v.stderr);
    } finally {
      blocker.close();
      await removeDir(dir);
    }
  });
});
