// No sensitive data in logs.  Named to sort last, though it needs no other
// test file (they may run beside it): seeds a data directory, drives one
// server (at --log-level debug, the most it ever says) through a broad
// workload — sign-in, a failed sign-in, consent, code exchange, refresh,
// introspection, revocation, FHIR reads and searches by name, birth date,
// phone, identifier and address, $everything, writes that carry clinical text,
// refusals and errors — then scans every line the server wrote (stderr and
// stdout), every record of `veranda audit export` and the text in the audit
// journal's files for the seeded patients'
// names, birth dates, addresses, phone numbers, e-mail addresses, record
// numbers, lab values, note text and diagnoses (read first through the FHIR
// API), for the clinical text the workload wrote, and for passwords and
// tokens.  Any hit fails the test and prints the offending line.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { makeTempDir, removeDir, initDataDir, seedDataDir, startServer, runCli, requireBinary } from './lib/server.mjs';
import { Browser, authorize, redeem, postForm, registerClient, signIn, keyPair, assertion, basic, JWT_BEARER, DEMO_PASSWORD } from './lib/oauth.mjs';

const CB = 'http://127.0.0.1:9999/cb';
const SCAN_SECRET = 'scan-conf-secret-7c1d9e2b44';
const WRONG_PASSWORD = 'Walker-wrong-password-1991';
const ALICE_SCOPE = 'launch/patient openid fhirUser offline_access patient/*.cruds';
const BOB_SCOPE = 'launch/patient openid fhirUser offline_access patient/*.rs';

/*
 * A value to look for, and where a match counts: not inside a longer run of
 * the characters around it (a name inside a random base64url id, a date
 * inside a timestamp, digits inside a longer number are not hits).
 */
function needle(kind, value, { boundary = /[A-Za-z0-9_-]/, after: notAfter } = {}) {
  const esc = value.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const b = boundary.source;
  const tail = notAfter ? `(?!${notAfter.source})` : '';
  return { kind, value, re: new RegExp(`(?<!${b})${esc}(?!${b})${tail}`) };
}

/* Every string inside a JSON value (log lines and records are JSON: look at their unescaped text too). */
function strings(v, out = []) {
  if (typeof v === 'string') out.push(v);
  else if (Array.isArray(v)) v.forEach((x) => strings(x, out));
  else if (v && typeof v === 'object') Object.values(v).forEach((x) => strings(x, out));
  return out;
}

function haystacks(line) {
  const out = [line];
  try {
    const j = JSON.parse(line);
    out.push(...strings(j));
    if (typeof j?.record === 'string') out.push(...strings(JSON.parse(j.record)));
  } catch {
    /* not JSON: the line itself */
  }
  // and percent-decoded (a search value written as the URL had it)
  for (const h of out.slice()) {
    if (!h.includes('%') && !h.includes('+')) continue;
    try {
      out.push(decodeURIComponent(h.replace(/\+/g, ' ')));
    } catch {
      out.push(h.replace(/\+/g, ' ').replace(/%([0-9A-Fa-f]{2})/g, (_, x) => String.fromCharCode(parseInt(x, 16))));
    }
  }
  return out;
}

function sentences(text) {
  return text.split(/(?<=[.!?:])\s+|\n+/).map((s) => s.trim()).filter((s) => s.length >= 20);
}

describe('no sensitive data in server logs or audit records', () => {
  let dir, srv, scanKey;
  let exportLines = [];
  let journalLines = [];
  const needles = [];
  const written = [];      // clinical text this workload sent
  const secrets = [];      // tokens, codes, passwords
  const control = [];      // the texts the values were read from: every kind of value must be found there

  before(async () => {
    requireBinary();
    dir = await makeTempDir('veranda-scan-');
    await initDataDir(dir);
    await seedDataDir(dir, { patients: 3 });
    await registerClient(dir, { clientId: 'scan-app', public: true, redirectUris: [CB] });
    await registerClient(dir, { clientId: 'scan-conf', secret: SCAN_SECRET, redirectUris: ['https://conf.example/cb'] });
    scanKey = await keyPair('ES384');
    await registerClient(dir, { clientId: 'scan-backend', jwks: { keys: [scanKey.publicJwk] }, scope: 'system/Patient.rs' });
    srv = await startServer({ dataDir: dir, args: ['--log-level', 'debug', '--audit-checkpoint-seconds', '1'] });
  });

  after(async () => {
    await srv?.stop();
    await removeDir(dir);
  });

  it('reads the seeded patients\' identifying and clinical values through the API', async () => {
    const get = async (p) => {
      const r = await srv.fhirFetch(p);
      assert.equal(r.status, 200, `${p}: ${r.text.slice(0, 300)}`);
      control.push(r.text);
      return (r.json.entry || []).map((e) => e.resource);
    };
    const patients = await get('/Patient?_count=100');
    assert.ok(patients.length >= 8, `demo and generated patients (${patients.length})`);
    for (const p of patients) {
      for (const n of p.name || []) {
        for (const g of n.given || []) if (g.length >= 3) needles.push(needle('given name', g));
        if (n.family?.length >= 3) needles.push(needle('family name', n.family));
        if (n.text) needles.push(needle('name', n.text));
      }
      // a birth date, but not the date part of a timestamp of today
      if (p.birthDate) needles.push(needle('birth date', p.birthDate, { boundary: /[0-9-]/, after: /T/ }));
      for (const a of p.address || []) {
        for (const l of a.line || []) needles.push(needle('address', l));
        // postal codes alone are five digits, as are byte counts: the line and city say enough
      }
      for (const t of p.telecom || []) {
        needles.push(needle(t.system === 'email' ? 'e-mail' : 'phone', t.value));
        const digits = t.value.replace(/\D/g, '');
        if (t.system === 'phone' && digits.length >= 7) {
          needles.push(needle('phone digits', digits, { boundary: /[0-9]/ }));
          needles.push(needle('phone', t.value.slice(-8), { boundary: /[0-9-]/ })); // 555-0142
        }
      }
      for (const id of p.identifier || []) if (id.value?.length >= 5) needles.push(needle('identifier', id.value));
    }
    const ids = patients.map((p) => p.id);
    for (const pid of ids.slice(0, 6)) {
      for (const o of await get(`/Observation?patient=${pid}&category=laboratory&_count=5`)) {
        const q = o.valueQuantity;
        if (!q || q.value === undefined || !q.unit) continue;
        needles.push(needle('lab value', `${q.value} ${q.unit}`, { boundary: /[0-9.]/ }));
        needles.push(needle('lab value', `"value":${q.value},"unit":"${q.unit}"`, { boundary: /[0-9.]/ }));
      }
      for (const d of await get(`/DocumentReference?patient=${pid}&_count=5`)) {
        for (const c of d.content || []) {
          if (!c.attachment?.data) continue;
          needles.push(needle('note (base64)', c.attachment.data.slice(0, 48), { boundary: /[A-Za-z0-9+/=]/ }));
          const text = Buffer.from(c.attachment.data, 'base64').toString('utf8');
          control.push(text);
          for (const s of sentences(text)) needles.push(needle('note text', s, { boundary: /$^/ }));
        }
      }
      for (const m of await get(`/Communication?patient=${pid}&_count=5`)) {
        for (const pl of m.payload || []) if (pl.contentString) for (const s of sentences(pl.contentString)) needles.push(needle('message text', s, { boundary: /$^/ }));
      }
      for (const c of await get(`/Condition?patient=${pid}&_count=10`)) {
        if (c.code?.text?.length >= 6) needles.push(needle('diagnosis', c.code.text));
      }
    }
    // the matcher finds each kind of value where it came from (so a miss in the logs means something)
    const hay = control.flatMap(haystacks);
    const kinds = new Set(needles.filter((n) => hay.some((h) => n.re.test(h))).map((n) => n.kind));
    for (const k of ['given name', 'family name', 'birth date', 'address', 'phone', 'e-mail', 'identifier', 'lab value', 'note text', 'message text', 'diagnosis']) {
      assert.ok(kinds.has(k), `the seed has ${k} values to look for, found where they came from`);
    }
  });

  it('runs a workload of sign-ins, tokens, reads, searches and writes', async () => {
    const alice = await (async () => {
      // a failed sign-in first, and one with an e-mail address typed as the user name
      const bad = await authorize(new Browser(srv.baseUrl), srv, { clientId: 'scan-app', redirectUri: CB, scope: ALICE_SCOPE, user: 'alice', password: WRONG_PASSWORD });
      assert.equal(bad.code, null);

      const b = new Browser(srv.baseUrl);
      const a = await authorize(b, srv, { clientId: 'scan-app', redirectUri: CB, scope: ALICE_SCOPE, user: 'alice', nonce: crypto.randomUUID() });
      assert.ok(a.code, JSON.stringify(a.walk.pages));
      secrets.push(a.code, a.verifier, ...b.jar.values());
      const t = await redeem(srv, { code: a.code, verifier: a.verifier, redirectUri: CB, clientId: 'scan-app' });
      assert.equal(t.status, 200, t.text);
      return t.json;
    })();
    const bob = await (async () => {
      const b = new Browser(srv.baseUrl);
      const a = await authorize(b, srv, { clientId: 'scan-app', redirectUri: CB, scope: BOB_SCOPE, user: 'bob', patient: 'bob-child' });
      assert.ok(a.code, JSON.stringify(a.walk.pages));
      assert.ok(a.walk.pages.includes('picker'), 'bob picks whose record');
      secrets.push(a.code, a.verifier, ...b.jar.values());
      const t = await redeem(srv, { code: a.code, verifier: a.verifier, redirectUri: CB, clientId: 'scan-app' });
      assert.equal(t.status, 200, t.text);
      assert.equal(t.json.patient, 'bob-child');
      return t.json;
    })();
    for (const t of [alice, bob]) secrets.push(t.access_token, t.refresh_token, t.id_token);

    // refresh both; introspect and revoke
    const refreshed = {};
    for (const [who, t] of Object.entries({ alice, bob })) {
      const r = await postForm(`${srv.baseUrl}/oauth/token`, { grant_type: 'refresh_token', refresh_token: t.refresh_token, client_id: 'scan-app' });
      assert.equal(r.status, 200, r.text);
      secrets.push(r.json.access_token, r.json.refresh_token, r.json.id_token);
      refreshed[who] = r.json;
    }
    const intro = await postForm(`${srv.baseUrl}/oauth/introspect`, { token: refreshed.alice.access_token }, { auth: srv.authHeaders.authorization });
    assert.equal(intro.status, 200, intro.text);
    assert.equal(intro.json.active, true);
    secrets.push(srv.token);
    // a confidential app's secret (right and wrong), and a backend app's signed assertion
    const ci = await postForm(`${srv.baseUrl}/oauth/introspect`, { token: refreshed.bob.access_token }, { auth: basic('scan-conf', SCAN_SECRET) });
    assert.equal(ci.status, 200, ci.text);
    const bad = await postForm(`${srv.baseUrl}/oauth/introspect`, { token: 'x' }, { auth: basic('scan-conf', `${SCAN_SECRET}-wrong`) });
    assert.equal(bad.status, 401, bad.text);
    const conf = await (await fetch(`${srv.baseUrl}/.well-known/openid-configuration`)).json();
    const jwt = await assertion(conf.token_endpoint, 'scan-backend', scanKey);
    const cc = await postForm(conf.token_endpoint, { grant_type: 'client_credentials', scope: 'system/Patient.rs',
      client_assertion_type: JWT_BEARER, client_assertion: jwt });
    assert.equal(cc.status, 200, cc.text);
    const replay = await postForm(conf.token_endpoint, { grant_type: 'client_credentials', scope: 'system/Patient.rs',
      client_assertion_type: JWT_BEARER, client_assertion: jwt });
    assert.equal(replay.status, 401, `a replayed assertion: ${replay.text}`);
    secrets.push(SCAN_SECRET, `${SCAN_SECRET}-wrong`, jwt, cc.json.access_token);

    const A = refreshed.alice.access_token;
    const B = refreshed.bob.access_token;
    const call = async (method, p, token, body) => {
      const headers = { accept: 'application/fhir+json', authorization: token === undefined ? undefined : token ? `Bearer ${token}` : '' };
      if (token === undefined) delete headers.authorization; // the harness's backend token
      if (body) headers['content-type'] = 'application/fhir+json';
      const r = await fetch(`${srv.fhirBase}/${p.replace(/^\//, '')}`, { method, headers, body: body ? JSON.stringify(body) : undefined });
      const text = await r.text();
      return { status: r.status, text };
    };

    // the patients' own records
    for (const p of ['Patient/alice', 'Observation?category=laboratory&_count=20', 'DocumentReference', 'Communication',
      'Condition', 'MedicationRequest', 'Patient/alice/$everything', 'Observation?code=http://loinc.org|6690-2']) {
      const r = await call('GET', p, A);
      assert.equal(r.status, 200, `${p}: ${r.text.slice(0, 200)}`);
    }
    for (const p of ['Patient/bob-child', 'Observation?_count=20', 'Patient/bob-child/$everything', 'Immunization']) {
      const r = await call('GET', p, B);
      assert.equal(r.status, 200, `${p}: ${r.text.slice(0, 200)}`);
    }
    assert.equal((await call('GET', 'Patient/bob-self', A)).status, 404, 'another record is hidden');

    // searches by identifying values, by the backend service, for every seeded patient
    const pats = JSON.parse((await call('GET', 'Patient?_count=100')).text).entry.map((e) => e.resource);
    for (const p of pats) {
      const n = p.name?.[0] || {};
      const phone = p.telecom?.find((t) => t.system === 'phone')?.value;
      const email = p.telecom?.find((t) => t.system === 'email')?.value;
      const mrn = p.identifier?.[0];
      const line = p.address?.[0]?.line?.[0];
      const qs = [
        n.family && `Patient?name=${encodeURIComponent(n.family)}`,
        n.given?.[0] && `Patient?given=${encodeURIComponent(n.given[0])}&family=${encodeURIComponent(n.family)}`,
        p.birthDate && `Patient?birthdate=${p.birthDate}`,
        phone && `Patient?telecom=${encodeURIComponent(phone)}`,
        phone && `Patient?phone=${encodeURIComponent(phone)}`,
        email && `Patient?email=${encodeURIComponent(email)}`,
        mrn && `Patient?identifier=${encodeURIComponent(`${mrn.system}|${mrn.value}`)}`,
        mrn && `Patient?identifier=${encodeURIComponent(mrn.value)}`,
        line && `Patient?address=${encodeURIComponent(line)}`,
        n.family && `Observation?subject:Patient.name=${encodeURIComponent(n.family)}&_count=1`,
        mrn && `Observation?patient.identifier=${encodeURIComponent(mrn.value)}&_count=1`,
        p.birthDate && `Patient?birthdate=${p.birthDate}x`,               // a malformed date: an error answer
        n.family && `Patient?name:nosuchmodifier=${encodeURIComponent(n.family)}`, // an unknown modifier
      ].filter(Boolean);
      for (const q of qs) {
        const r = await call('GET', q);
        assert.ok([200, 400].includes(r.status), `${q}: ${r.status} ${r.text.slice(0, 200)}`);
      }
    }
    // the seed dates people relative to today: take alice's birth date from the data
    const aliceBirth = pats.find((p) => p.id === 'alice').birthDate;
    const found = JSON.parse((await call('GET', `Patient?name=Walker&birthdate=${aliceBirth}`)).text);
    assert.equal(found.entry?.[0]?.resource?.id, 'alice', 'the searches do search');
    assert.equal((await call('GET', `Patient/${pats[pats.length - 1].id}/$everything`)).status, 200);

    // writes that carry clinical text, a refused one and an invalid one
    const tag = crypto.randomBytes(3).toString('hex');
    const note = `Patient reports crushing substernal chest pain radiating to the left arm since ${tag}`;
    const msg = `Please call me about my biopsy result, I am worried about the lump ${tag}`;
    const doc = `Discharge summary: admitted with diabetic ketoacidosis, glucose 612 mg/dL, ${tag}`;
    written.push(note, msg, doc, '612 mg/dL');
    const obs = { resourceType: 'Observation', status: 'final', code: { text: 'Patient note' },
      subject: { reference: 'Patient/alice' }, valueString: note, note: [{ text: note }] };
    const c1 = await call('POST', 'Observation', A, obs);
    assert.equal(c1.status, 201, c1.text);
    const id = JSON.parse(c1.text).id;
    assert.equal((await call('PUT', `Observation/${id}`, A, { ...obs, id, status: 'amended' })).status, 200);
    assert.equal((await call('POST', 'Communication', A, { resourceType: 'Communication', status: 'completed',
      subject: { reference: 'Patient/alice' }, sender: { reference: 'Patient/alice' }, payload: [{ contentString: msg }] })).status, 201);
    assert.equal((await call('POST', 'DocumentReference', undefined, { resourceType: 'DocumentReference', status: 'current',
      subject: { reference: 'Patient/alice' }, content: [{ attachment: { contentType: 'text/plain', data: Buffer.from(doc).toString('base64') } }] })).status, 201);
    const refused = await call('POST', 'Observation', A, { ...obs, subject: { reference: 'Patient/bob-self' } });
    assert.equal(refused.status, 403);
    // resources a strict validator would refuse (an unknown element, wrong types): whatever the
    // answer, a message about them must not quote them into the log
    for (const bad of [{ ...obs, clinicalNote: note }, { ...obs, note: note }, { ...obs, valueString: [note] }]) {
      const r = await call('POST', 'Observation', A, bad);
      assert.ok([201, 400, 422].includes(r.status), `${r.status} ${r.text.slice(0, 200)}`);
    }
    const broken = await call('POST', 'Observation', A, undefined);
    assert.ok(broken.status >= 400);
    const garbage = await fetch(`${srv.fhirBase}/Observation`, { method: 'POST', headers: { authorization: `Bearer ${A}`,
      'content-type': 'application/fhir+json' }, body: `{"resourceType":"Observation","note":[{"text":"${note}"}],` });
    assert.equal(garbage.status, 400);
    await garbage.text();
    assert.equal((await call('DELETE', `Observation/${id}`, A)).status, 204);

    // a token in the query string (alone, and beside the header), a bad token, no token
    assert.equal((await fetch(`${srv.fhirBase}/Patient/alice?access_token=${A}`, { headers: { authorization: '' } })).status, 400);
    assert.equal((await fetch(`${srv.fhirBase}/Observation?patient=alice&access_token=${A}`, { headers: { authorization: `Bearer ${A}` } })).status, 400);
    assert.equal((await call('GET', 'Patient/alice', `${A.slice(0, -4)}AAAA`)).status, 401);
    assert.equal((await call('GET', 'Patient/alice', '')).status, 401);

    // sign-in attempts with identifying values typed as the user name (no such accounts; after the
    // successful sign-ins: failures from one address soon make the next attempt wait)
    for (const typed of ['alice.walker@example.com', 'Alice Walker']) {
      const r = await signIn(new Browser(srv.baseUrl), typed, DEMO_PASSWORD);
      assert.ok([401, 429].includes(r.status), `no account '${typed}': ${r.status}`);
    }

    // revoke alice's refresh token
    const rv = await postForm(`${srv.baseUrl}/oauth/revoke`, { token: refreshed.alice.refresh_token, client_id: 'scan-app' });
    assert.equal(rv.status, 200, rv.text);
    await srv.stop({ keepData: true });

    const ex = await runCli(['audit', 'export', '--data', dir]);
    assert.equal(ex.code, 0, ex.stderr);
    exportLines = ex.stdout.split('\n').filter(Boolean);
    // the audit journal's files as they are on disk: their text runs (records pass through them)
    const jdir = path.join(dir, 'audit-journal');
    for (const f of fs.readdirSync(jdir)) {
      const text = fs.readFileSync(path.join(jdir, f)).toString('utf8');
      journalLines.push(...text.split(/[\x00-\x1f\x7f\ufffd]+/).filter((x) => x.length >= 4));
    }
    const types = new Set(exportLines.map((l) => JSON.parse(l)).filter((j) => j.record).map((j) => JSON.parse(j.record).type));
    for (const t of ['session.signin', 'session.signin-failed', 'oauth.authorize-granted', 'oauth.token-issued', 'oauth.token-refreshed',
      'oauth.token-introspected', 'oauth.token-revoked', 'fhir.read', 'fhir.search', 'fhir.everything', 'fhir.create', 'fhir.update',
      'fhir.delete', 'policy.denied', 'system.start', 'system.stop']) {
      assert.ok(types.has(t), `the workload left ${t} records`);
    }
  });

  it('no log line or audit record holds a name, birth date, address, phone, e-mail, record number, lab value, note or diagnosis', (t) => {
    assert.ok(exportLines.length > 100, `audit records to scan (${exportLines.length})`);
    const logLines = [...srv.logs, ...srv.stdout.split('\n')].filter(Boolean);
    assert.ok(logLines.length > 100, `log lines to scan (${logLines.length})`);
    const all = [
      ...needles,
      ...written.map((w) => needle('clinical text written', w, { boundary: /$^/ })),
    ];
    const hits = [];
    assert.ok(journalLines.length > 100, `audit journal text to scan (${journalLines.length})`);
    for (const [where, lines] of [['server log', logLines], ['audit record', exportLines], ['audit journal', journalLines]]) {
      for (const line of lines) {
        const hay = haystacks(line);
        for (const n of all) {
          if (hay.some((h) => n.re.test(h))) hits.push(`${where}: ${n.kind} '${n.value}' in: ${line}`);
        }
      }
    }
    t.diagnostic(`${all.length} values, ${logLines.length} log lines, ${exportLines.length} export lines`);
    assert.deepEqual(hits.slice(0, 20), [], `${hits.length} hits`);
  });

  it('no log line or audit record holds a password, a password hash, a client secret, an assertion or a token', () => {
    const lines = [...srv.logs, ...srv.stdout.split('\n'), ...exportLines, ...journalLines].filter(Boolean);
    // an Argon2id hash of any account (PHC string), in any line
    assert.deepEqual(lines.filter((l) => /\$argon2(id|i|d)\$/.test(l)).slice(0, 5), [], 'no password hash');
    const values = [DEMO_PASSWORD, WRONG_PASSWORD, ...secrets.filter((s) => typeof s === 'string' && s.length >= 8)];
    assert.ok(values.length >= 12, 'tokens, codes, cookies and passwords to look for');
    const hits = [];
    for (const line of lines) {
      for (const v of values) {
        // a JWT's pieces too: its signature alone identifies it
        const parts = v.split('.').length === 3 ? [v, v.split('.')[2]] : [v];
        if (parts.some((p) => line.includes(p))) hits.push(`'${v.slice(0, 10)}...' in: ${line}`);
      }
    }
    assert.deepEqual(hits.slice(0, 20), [], `${hits.length} hits`);
  });
});
