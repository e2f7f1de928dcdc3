// What the discovery documents and the CapabilityStatement promise, each
// promise tried for real: every search parameter, include and operation the
// CapabilityStatement lists for a type (the audit log's included), the
// conditional interactions and version reads it claims, the authentication
// methods and algorithms the metadata lists for each endpoint (RFC 8414 2,
// OpenID Connect Discovery 3 and its defaults); and CORS where a browser app
// meets the server: public documents that a cache may keep, FHIR errors the
// HTTP layer answers, the request headers the FHIR API reads.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { makeTempDir, removeDir, initDataDir, seedDataDir, startServer, fetchRaw, runCli } from './lib/server.mjs';
import {
  Browser, authorize, redeem, registerClient, postForm, basic, keyPair, assertion, JWT_BEARER,
} from './lib/oauth.mjs';

const CB = 'http://127.0.0.1:9999/cb';
const ORIGIN = 'https://app.example';
const OFF_ORIGIN = 'https://disabled-app.example';
const SECRET = 'dc-secret-0123456789';
const FHIR_JSON = 'application/fhir+json';
const STRICT = { prefer: 'handling=strict', accept: FHIR_JSON };
// a value of each search parameter type that any parameter of that type parses
const VALUE = {
  token: 'http://example.org|x', string: 'abc', date: 'ge2020-01-01', reference: 'Patient/p-none',
  quantity: '5', number: '5', uri: 'http://example.org/x',
};
// values the audit log search takes (docs/audit.md: outcome codes, event types)
const AE_VALUE = { outcome: '0', type: 'fhir.read', patient: 'p-none', entity: 'Patient/p-none', agent: 'alice' };
const valueOf = (type, p) => (type === 'AuditEvent' && AE_VALUE[p.name]) || VALUE[p.type];

let dir, srv, cs, byType, carol, rsKey;

before(async () => {
  dir = await makeTempDir('veranda-discovery-');
  await initDataDir(dir);
  await seedDataDir(dir, { patients: 0 });
  rsKey = await keyPair('RS384');
  await registerClient(dir, { clientId: 'dc-pub', public: true, redirectUris: [CB], origins: [ORIGIN] });
  await registerClient(dir, { clientId: 'dc-conf', secret: SECRET, redirectUris: ['https://conf.example/cb'] });
  await registerClient(dir, { clientId: 'dc-jwt', jwks: { keys: [rsKey.publicJwk] }, scope: 'system/*.rs' });
  await registerClient(dir, { clientId: 'dc-off', public: true, redirectUris: [CB], origins: [OFF_ORIGIN] });
  const off = await runCli(['client', 'disable', '--data', dir, '--client-id', 'dc-off']);
  if (off.code !== 0) throw new Error(`client disable failed: ${off.stderr}`);
  srv = await startServer({ dataDir: dir, init: false });
  const b = new Browser(srv.baseUrl);
  const a = await authorize(b, srv, { clientId: 'dc-pub', redirectUri: CB, scope: 'openid fhirUser user/AuditEvent.rs', user: 'carol' });
  assert.ok(a.code, `a code for carol: ${a.walk.pages.join(' → ')}`);
  const t = await redeem(srv, { code: a.code, verifier: a.verifier, redirectUri: CB, clientId: 'dc-pub' });
  assert.equal(t.status, 200, t.text);
  carol = t.json.access_token;
  cs = (await srv.fhirFetch('/metadata')).json;
  byType = new Map(cs.rest[0].resource.map((r) => [r.type, r]));
});

after(async () => {
  if (srv) await srv.stop();
  await removeDir(dir);
});

/* A search under Prefer: handling=strict, as the compliance officer for the audit log. */
function strictSearch(type, query) {
  const headers = { ...STRICT };
  if (type === 'AuditEvent') headers.authorization = `Bearer ${carol}`;
  return srv.fhirFetch(`/${type}?${query}`, { headers });
}

/* Accepted: 200 and no OperationOutcome entry saying something was not applied. */
function accepted(r) {
  if (r.status !== 200) return false;
  return !(r.json.entry || []).some((e) => e.search && e.search.mode === 'outcome');
}

const q = (name, value) => `${encodeURIComponent(name)}=${encodeURIComponent(value)}&_count=1`;

describe('the CapabilityStatement against the searches', () => {
  it('every parameter listed for a type is applied by its search, the audit log\'s too', async () => {
    const refused = [];
    for (const r of cs.rest[0].resource) {
      for (const p of r.searchParam || []) {
        const res = await strictSearch(r.type, q(p.name, valueOf(r.type, p)));
        if (!accepted(res)) refused.push(`${r.type}?${p.name} (${p.type}): ${res.status} ${res.text.slice(0, 160)}`);
      }
    }
    assert.deepEqual(refused, [], 'listed in the CapabilityStatement, refused or ignored by the search');
  });

  it('every parameter the audit log search applies is listed for AuditEvent, and none other', async () => {
    const listed = new Map((byType.get('AuditEvent').searchParam || []).map((p) => [p.name, p.type]));
    // every name any type lists, and the ones docs/audit.md names
    const names = new Set(['client', 'request', 'patient', 'agent', 'date', 'type', 'outcome', 'entity']);
    for (const r of cs.rest[0].resource) for (const p of r.searchParam || []) names.add(p.name);
    const wrong = [];
    for (const n of names) {
      const res = await strictSearch('AuditEvent', q(n, AE_VALUE[n] ?? VALUE[listed.get(n)] ?? 'x'));
      if (accepted(res) !== listed.has(n)) wrong.push(`${n}: listed ${listed.has(n)}, search answers ${res.status}`);
    }
    assert.deepEqual(wrong, []);
  });

  it('every _include and _revinclude listed for a type is followed by its search', async () => {
    const refused = [];
    for (const r of cs.rest[0].resource) {
      for (const [k, list] of [['_include', r.searchInclude], ['_revinclude', r.searchRevInclude]]) {
        for (const v of list || []) {
          const res = await strictSearch(r.type, q(k, v));
          if (!accepted(res)) refused.push(`${r.type}?${k}=${v}: ${res.status}`);
        }
      }
    }
    assert.deepEqual(refused, []);
    // the audit log is not kept with the records: no search of them can bring AuditEvents in
    const patientAudit = await srv.fhirFetch('/Patient/p-none/AuditEvent', { headers: { accept: FHIR_JSON } });
    assert.notEqual(patientAudit.status, 200, 'the audit log is searched at /fhir/AuditEvent only');
    for (const r of cs.rest[0].resource) {
      for (const v of r.searchRevInclude || []) assert.ok(!v.startsWith('AuditEvent:'), `${r.type} offers _revinclude=${v}`);
    }
  });

  it('$everything is an operation of the Patient type, not of the system', async () => {
    const p = await srv.fhirFetch('/Patient', { method: 'POST', headers: { 'content-type': FHIR_JSON }, body: JSON.stringify({ resourceType: 'Patient' }) });
    assert.equal(p.status, 201);
    const ev = await srv.fhirFetch(`/Patient/${p.json.id}/$everything`, { headers: { accept: FHIR_JSON } });
    assert.equal(ev.status, 200, ev.text);
    const sys = await srv.fhirFetch('/$everything', { headers: { accept: FHIR_JSON } });
    assert.notEqual(sys.status, 200, 'no system-level $everything');
    // R4: rest.operation is for operations invoked at the system level
    assert.ok(!(cs.rest[0].operation || []).some((o) => o.name === 'everything'), 'rest.operation names $everything');
    const ops = byType.get('Patient').operation || [];
    assert.ok(ops.some((o) => o.name === 'everything' && o.definition === 'http://hl7.org/fhir/OperationDefinition/Patient-everything'),
      `Patient operations: ${JSON.stringify(ops)}`);
  });

  it('conditional interactions and version reads are claimed only where they work', async () => {
    const ident = `http://example.org/dc|${process.pid}-${Date.now()}`;
    const body = JSON.stringify({ resourceType: 'Patient', identifier: [{ system: ident.split('|')[0], value: ident.split('|')[1] }] });
    const patient = byType.get('Patient');
    if (patient.conditionalCreate) {
      for (let i = 0; i < 2; i++) {
        const r = await srv.fhirFetch('/Patient', { method: 'POST', headers: { 'content-type': FHIR_JSON, 'if-none-exist': `identifier=${ident}` }, body });
        assert.ok(r.status === 200 || r.status === 201, r.text);
      }
      const n = await srv.fhirFetch(`/Patient?identifier=${encodeURIComponent(ident)}&_summary=count`, { headers: { accept: FHIR_JSON } });
      assert.equal(n.json.total, 1, 'conditionalCreate is claimed, but If-None-Exist made a second Patient');
    }
    if (patient.conditionalUpdate) {
      const r = await srv.fhirFetch(`/Patient?identifier=${encodeURIComponent(ident)}`, { method: 'PUT', headers: { 'content-type': FHIR_JSON }, body });
      assert.ok(r.status === 200 || r.status === 201, `conditionalUpdate is claimed, but PUT Patient?identifier answers ${r.status}`);
    }
    if (patient.conditionalDelete && patient.conditionalDelete !== 'not-supported') {
      const r = await srv.fhirFetch(`/Patient?identifier=${encodeURIComponent(ident)}`, { method: 'DELETE' });
      assert.ok(r.status === 200 || r.status === 204, `conditionalDelete is claimed, but DELETE Patient?identifier answers ${r.status}`);
    }
    // readHistory: vread of a version
    for (const r of cs.rest[0].resource) {
      const codes = r.interaction.map((i) => i.code);
      assert.equal(!!r.readHistory, codes.includes('vread'), `${r.type}: readHistory ${r.readHistory} with ${codes}`);
      if (r.type === 'AuditEvent') {
        const e = await strictSearch('AuditEvent', '_count=1');
        assert.equal(e.status, 200);
        const id = e.json.entry[0].resource.id;
        const v = await srv.fhirFetch(`/AuditEvent/${id}/_history/1`, { headers: { accept: FHIR_JSON, authorization: `Bearer ${carol}` } });
        assert.equal(v.status === 200, !!r.readHistory, `AuditEvent vread answers ${v.status}, readHistory ${r.readHistory}`);
      }
    }
  });
});

describe('discovery metadata against the endpoints', () => {
  const DOCS = ['/fhir/.well-known/smart-configuration', '/.well-known/openid-configuration', '/.well-known/oauth-authorization-server'];
  const docs = async () => Promise.all(DOCS.map(async (p) => (await fetchRaw(srv.baseUrl + p)).json));

  it('a public client authenticates with "none", so every document lists it for the token endpoint', async () => {
    const b = new Browser(srv.baseUrl);
    const a = await authorize(b, srv, { clientId: 'dc-pub', redirectUri: CB, scope: 'launch/patient patient/Patient.rs' });
    const t = await redeem(srv, { code: a.code, verifier: a.verifier, redirectUri: CB, clientId: 'dc-pub' });
    assert.equal(t.status, 200, 'a public client, no authentication');
    for (const [i, d] of (await docs()).entries()) {
      assert.ok(d.token_endpoint_auth_methods_supported.includes('none'), `${DOCS[i]}: ${d.token_endpoint_auth_methods_supported}`);
    }
  });

  it('client_secret_post works at the introspection endpoint, so it is listed there', async () => {
    const r = await postForm(`${srv.baseUrl}/oauth/introspect`, { token: 'x', client_id: 'dc-conf', client_secret: SECRET });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json, { active: false });
    for (const [i, d] of (await docs()).entries()) {
      assert.ok(d.introspection_endpoint_auth_methods_supported.includes('client_secret_post'),
        `${DOCS[i]}: ${d.introspection_endpoint_auth_methods_supported}`);
    }
  });

  it('RFC 8414 2: private_key_jwt at revocation and introspection comes with the algorithms, and each works', async () => {
    for (const [i, d] of (await docs()).entries()) {
      for (const ep of ['revocation', 'introspection']) {
        if (!d[`${ep}_endpoint_auth_methods_supported`].includes('private_key_jwt')) continue;
        const algs = d[`${ep}_endpoint_auth_signing_alg_values_supported`];
        assert.ok(Array.isArray(algs) && algs.length, `${DOCS[i]}: ${ep}_endpoint_auth_signing_alg_values_supported missing`);
        assert.deepEqual([...algs].sort(), [...d.token_endpoint_auth_signing_alg_values_supported].sort(), `${DOCS[i]} ${ep}`);
      }
    }
    // an RS384 assertion (aud: the token endpoint) authenticates at both
    const tokenUrl = `${srv.baseUrl}/oauth/token`;
    const auth = async () => ({ client_id: 'dc-jwt', client_assertion_type: JWT_BEARER, client_assertion: await assertion(tokenUrl, 'dc-jwt', rsKey) });
    let r = await postForm(`${srv.baseUrl}/oauth/introspect`, { token: 'x', ...(await auth()) });
    assert.equal(r.status, 200, r.text);
    r = await postForm(`${srv.baseUrl}/oauth/revoke`, { token: 'x', ...(await auth()) });
    assert.equal(r.status, 200, r.text);
  });

  it('OIDC Discovery: request_uri support (true when the member is absent) is claimed only if request_uri is fetched', async () => {
    let hits = 0;
    const ro = http.createServer((req, res) => {
      hits++;
      res.end('x');
    });
    await new Promise((resolve) => ro.listen(0, '127.0.0.1', resolve));
    try {
      const d = (await fetchRaw(`${srv.baseUrl}/.well-known/openid-configuration`)).json;
      const b = new Browser(srv.baseUrl);
      const u = `${srv.baseUrl}/oauth/authorize?client_id=dc-pub&request_uri=${encodeURIComponent(`http://127.0.0.1:${ro.address().port}/req.jwt`)}`;
      const r = await b.get(u);
      assert.ok(r.status < 500, `${r.status}`);
      const claimed = d.request_uri_parameter_supported ?? true;
      assert.equal(claimed, hits > 0, `request_uri_parameter_supported ${d.request_uri_parameter_supported}, request object fetched ${hits} times`);
    } finally {
      await new Promise((resolve) => ro.close(resolve));
    }
  });
});

describe('CORS where browser apps meet the server', () => {
  it('public documents a cache may keep are the same for every origin, or say they vary by it', async () => {
    for (const p of ['/fhir/.well-known/smart-configuration', '/.well-known/openid-configuration',
      '/.well-known/oauth-authorization-server', '/oauth/jwks', '/smart-style.json', '/fhir/metadata']) {
      // a response fetched without Origin (a navigation, a server) and kept by a cache...
      const plain = await fetchRaw(srv.baseUrl + p);
      assert.equal(plain.status, 200, p);
      assert.match(plain.headers.get('cache-control') || '', /max-age=\d+/, `${p} is cacheable`);
      const vary = (plain.headers.get('vary') || '').toLowerCase().split(/\s*,\s*/);
      // ...is served to a browser app's CORS read: it must allow it, or not be reused for it
      assert.ok(plain.headers.get('access-control-allow-origin') === '*' || vary.includes('origin'),
        `${p} without Origin: Access-Control-Allow-Origin ${plain.headers.get('access-control-allow-origin')}, Vary ${plain.headers.get('vary')}`);
      const cors = await fetchRaw(srv.baseUrl + p, { headers: { origin: 'https://any.example' } });
      assert.equal(cors.headers.get('access-control-allow-origin'), '*', p);
      assert.equal(cors.headers.get('access-control-allow-credentials'), null, p);
    }
  });

  it('FHIR errors of the HTTP layer (404, 405, 406, 415) are readable by a registered origin, and only by it', async () => {
    const reqs = [
      ['404 no such path', '/fhir/Patient/x/y/z/w', {}],
      ['405 PATCH', '/fhir/Patient/x', { method: 'PATCH', headers: { 'content-type': 'application/json-patch+json' }, body: '[]' }],
      ['406 XML', '/fhir/Patient', { headers: { accept: 'application/fhir+xml' } }],
      ['415 text/plain', '/fhir/Patient', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'x' }],
    ];
    for (const [what, p, init] of reqs) {
      const r = await fetchRaw(srv.baseUrl + p, { ...init, headers: { ...(init.headers || {}), origin: ORIGIN } });
      assert.equal(String(r.status), what.slice(0, 3), `${what}: ${r.status}`);
      assert.equal(r.json && r.json.resourceType, 'OperationOutcome', what);
      assert.equal(r.headers.get('access-control-allow-origin'), ORIGIN, `${what}: Access-Control-Allow-Origin`);
      assert.match(r.headers.get('vary') || '', /origin/i, `${what}: Vary`);
      const other = await fetchRaw(srv.baseUrl + p, { ...init, headers: { ...(init.headers || {}), origin: 'https://app.example.evil.example' } });
      assert.equal(other.headers.get('access-control-allow-origin'), null, `${what}: an unregistered origin`);
    }
  });

  it('a FHIR preflight allows the request headers the API reads (conditional reads, request ids, trace context)', async () => {
    const want = ['authorization', 'content-type', 'if-modified-since', 'if-none-match', 'if-match', 'prefer', 'x-request-id', 'traceparent'];
    const r = await fetchRaw(`${srv.fhirBase}/Patient/x`, { method: 'OPTIONS', headers: { origin: ORIGIN,
      'access-control-request-method': 'GET', 'access-control-request-headers': want.join(',') } });
    assert.equal(r.status, 204);
    assert.equal(r.headers.get('access-control-allow-origin'), ORIGIN);
    const allowed = (r.headers.get('access-control-allow-headers') || '').toLowerCase().split(/\s*,\s*/);
    for (const h of want) assert.ok(allowed.includes(h), `${h} not in ${allowed}`);
    // the request id of an answer, which 5xx OperationOutcomes tell the reader to quote, can be read
    const g = await fetchRaw(`${srv.fhirBase}/metadata`, { headers: { origin: ORIGIN } });
    const p = await srv.fhirFetch('/Patient/x', { headers: { origin: ORIGIN, accept: FHIR_JSON } });
    assert.equal(p.headers.get('access-control-allow-origin'), ORIGIN);
    const exposed = (p.headers.get('access-control-expose-headers') || '').toLowerCase().split(/\s*,\s*/);
    assert.ok(exposed.includes('x-request-id'), `exposed: ${exposed}`);
    // a 401's challenge says why (invalid_token, insufficient_scope): an app in a browser may read it
    const u = await fetchRaw(`${srv.fhirBase}/Patient/x`, { headers: { origin: ORIGIN, accept: FHIR_JSON, authorization: 'Bearer nonsense' } });
    assert.equal(u.status, 401);
    assert.match(u.headers.get('www-authenticate') || '', /^Bearer /);
    assert.ok((u.headers.get('access-control-expose-headers') || '').toLowerCase().split(/\s*,\s*/).includes('www-authenticate'));
    assert.ok(g.headers.get('x-request-id'));
    // the wrong port, scheme or a look-alike is no registered origin, nor is a disabled app's
    for (const o of ['https://app.example:8443', 'http://app.example', 'https://app.example.evil.example', 'https://evilapp.example', 'null', OFF_ORIGIN]) {
      const x = await fetchRaw(`${srv.fhirBase}/Patient/x`, { method: 'OPTIONS', headers: { origin: o, 'access-control-request-method': 'GET' } });
      assert.equal(x.headers.get('access-control-allow-origin'), null, o);
    }
    for (const [o, want] of [[ORIGIN, ORIGIN], [OFF_ORIGIN, null]]) {
      const t = await fetchRaw(`${srv.baseUrl}/oauth/token`, { method: 'OPTIONS', headers: { origin: o, 'access-control-request-method': 'POST' } });
      assert.equal(t.headers.get('access-control-allow-origin'), want, `token endpoint preflight from ${o}`);
    }
  });
});
