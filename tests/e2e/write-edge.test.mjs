// The write path at its edges: bodies that are JSON but not valid FHIR,
// charsets, If-Match forms, conditional updates whose body names another
// resource, decimals inside Bundles, and `veranda import` of files with a
// byte order mark, ids that are not strings, empty and binary files.  Each
// refused write is checked to keep nothing: no resource, no new version,
// nothing a search finds, and an audit record of the failure without the
// body's content.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { startServer, runCli, makeTempDir, removeDir, initDataDir, requireBinary, sleep } from './lib/server.mjs';

const FHIR_JSON = 'application/fhir+json';
const H = { 'content-type': FHIR_JSON, accept: FHIR_JSON };

before(() => requireBinary());

function assertOutcome(r, status, pattern) {
  assert.equal(r.status, status, `expected ${status}, got ${r.status}: ${r.text.slice(0, 300)}`);
  assert.equal(r.json?.resourceType, 'OperationOutcome', r.text.slice(0, 300));
  assert.match(r.json.issue[0].diagnostics, pattern);
}

describe('refused writes over REST', () => {
  let srv;
  const send = (method, p, body, headers = {}) =>
    srv.fhirFetch(p, { method, headers: { ...H, ...headers }, body });
  const count = async (query) => {
    const r = await srv.fhirFetch(`${query}&_summary=count`, { headers: { accept: FHIR_JSON } });
    assert.equal(r.status, 200, r.text);
    return r.json.total;
  };
  const historyTotal = async (p) => (await srv.fhirFetch(`${p}/_history`, { headers: { accept: FHIR_JSON } })).json.total;

  before(async () => {
    srv = await startServer();
  });
  after(async () => {
    if (srv) await srv.stop();
  });

  it('a body in a charset other than UTF-8 is 415 naming the charset, and nothing is stored', async () => {
    // "Ã©" in ISO-8859-1 is the bytes C3 A9, which read as UTF-8 would be "é"
    const body = Buffer.from('{"resourceType":"Patient","name":[{"family":"LatinÃ©"}]}', 'latin1');
    for (const ct of ['application/fhir+json; charset=iso-8859-1', 'application/json;charset="windows-1252"', 'application/fhir+json; charset=utf-16']) {
      const r = await send('POST', '/Patient', body, { 'content-type': ct });
      assertOutcome(r, 415, /charset|UTF-8/i);
    }
    const u = await send('PUT', '/Patient/cs-1', '{"resourceType":"Patient","id":"cs-1"}', { 'content-type': 'application/fhir+json; charset=latin1' });
    assertOutcome(u, 415, /charset|UTF-8/i);
    assert.equal((await srv.fhirFetch('/Patient/cs-1')).status, 404);
    assert.equal(await count('/Patient?family=Latin'), 0);
    // UTF-8 however it is spelled is fine
    for (const ct of ['application/fhir+json; charset=UTF-8', 'application/fhir+json;charset="utf-8"', 'application/json; fhirVersion=4.0; charset=utf-8']) {
      const r = await send('POST', '/Patient', '{"resourceType":"Patient","name":[{"family":"Utf"}]}', { 'content-type': ct });
      assert.equal(r.status, 201, `${ct}: ${r.text}`);
    }
  });

  it('an extension without a url at any depth is 422 naming it; an update keeps the previous version', async () => {
    const put = await send('PUT', '/Patient/ext-1', JSON.stringify({ resourceType: 'Patient', id: 'ext-1', name: [{ family: 'Extold' }] }));
    assert.equal(put.status, 201, put.text);
    const bodies = [
      [{ name: [{ family: 'Extnew', extension: [{ valueString: 'x' }] }] }, 'Patient.name[0].extension[0]'],
      [{ name: [{ family: 'Extnew' }], birthDate: '2000-01-01', _birthDate: { extension: [{ valueString: 'x' }] } }, 'Patient._birthDate.extension[0]'],
      [{ name: [{ family: 'Extnew' }], extension: [{ url: 'http://example.org/a', extension: [{ valueString: 'x' }] }] }, 'Patient.extension[0].extension[0]'],
      [{ name: [{ family: 'Extnew' }], address: [{ city: 'X', modifierExtension: [{ url: 5 }] }] }, 'Patient.address[0].modifierExtension[0]'],
      [{ name: [{ family: 'Extnew', extension: { url: 'http://example.org/a' } }] }, 'Patient.name[0].extension'],
      [{ name: [{ family: 'Extnew' }], contained: [{ resourceType: 'Organization', id: 'o1', extension: [{ valueString: 'x' }] }] }, 'Patient.contained[0].extension[0]'],
    ];
    for (const [extra, expr] of bodies) {
      const r = await send('PUT', '/Patient/ext-1', JSON.stringify({ resourceType: 'Patient', id: 'ext-1', ...extra }));
      assertOutcome(r, 422, /url|Extension/);
      assert.deepEqual(r.json.issue[0].expression, [expr], JSON.stringify(extra));
      const c = await send('POST', '/Patient', JSON.stringify({ resourceType: 'Patient', ...extra }));
      assertOutcome(c, 422, /url|Extension/);
    }
    const now = await srv.fhirFetch('/Patient/ext-1', { headers: { accept: FHIR_JSON } });
    assert.equal(now.json.meta.versionId, '1');
    assert.equal(await historyTotal('/Patient/ext-1'), 1);
    assert.equal(await count('/Patient?family=Extnew'), 0);
    // extensions with their url, nested ones included, are fine
    const ok = await send('PUT', '/Patient/ext-1', JSON.stringify({
      resourceType: 'Patient', id: 'ext-1', name: [{ family: 'Extnew', extension: [{ url: 'http://example.org/n', valueString: 'x' }] }],
      extension: [{ url: 'http://example.org/a', extension: [{ url: 'part', valueString: 'y' }] }],
    }));
    assert.equal(ok.status, 200, ok.text);
  });

  it('an element in the wrong JSON shape or a code outside its required value set is 422 naming it; nothing is kept', async () => {
    const base = { resourceType: 'Observation', id: 'shape-1', status: 'final', code: { text: 'Shapeold' }, subject: { reference: 'Patient/shape-p' } };
    const put = await send('PUT', '/Observation/shape-1', JSON.stringify(base));
    assert.equal(put.status, 201, put.text);
    const bodies = [
      [{ code: 'Shapenew' }, 'Observation.code', /one JSON object/],
      [{ code: [{ text: 'Shapenew' }] }, 'Observation.code', /not a list/],
      [{ category: { text: 'Shapenew' } }, 'Observation.category', /list \(a JSON array\) of objects/],
      [{ status: 'done' }, 'Observation.status', /one of: registered, preliminary, final, .* \(found 'done'\)/],
      [{ status: 'FINAL' }, 'Observation.status', /found 'FINAL'/],
      [{ valueBoolean: 'true' }, 'Observation.valueBoolean', /true or false/],
    ];
    for (const [extra, expr, msg] of bodies) {
      const r = await send('PUT', '/Observation/shape-1', JSON.stringify({ ...base, code: { text: 'Shapenew' }, ...extra }));
      assertOutcome(r, 422, msg);
      assert.deepEqual(r.json.issue[0].expression, [expr], JSON.stringify(extra));
      const c = await send('POST', '/Observation', JSON.stringify({ ...base, id: undefined, code: { text: 'Shapenew' }, ...extra }));
      assertOutcome(c, 422, msg);
    }
    const now = await srv.fhirFetch('/Observation/shape-1', { headers: { accept: FHIR_JSON } });
    assert.equal(now.json.meta.versionId, '1');
    assert.equal(now.json.code.text, 'Shapeold');
    assert.equal(await count('/Observation?subject=Patient/shape-p'), 1, 'no refused create was kept');
    const g = await send('POST', '/Patient', JSON.stringify({ resourceType: 'Patient', gender: 'M', name: [{ family: 'Shapenew' }] }));
    assertOutcome(g, 422, /male, female, other, unknown/);
    assert.equal(await count('/Patient?family=Shapenew'), 0);
    // the same resource in the right shapes and codes is fine
    const ok = await send('PUT', '/Observation/shape-1', JSON.stringify({ ...base, status: 'amended', category: [{ text: 'Shapenew' }], valueBoolean: true }));
    assert.equal(ok.status, 200, ok.text);
  });

  it('the failed write is audited without the body', async () => {
    const r = await send('POST', '/Patient', JSON.stringify({ resourceType: 'Patient', name: [{ family: 'Auditsecret', extension: [{ valueString: 'Auditsecret' }] }] }));
    assert.equal(r.status, 422);
    await sleep(300);
    const q = await runCli(['audit', 'query', '--data', srv.dataDir, '--format', 'ndjson', '--node', 'node-1']);
    assert.equal(q.code, 0, q.stderr);
    const rec = q.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l))
      .find((x) => x.correlation?.request === r.headers.get('x-request-id'));
    assert.ok(rec, 'the refused create has a record');
    assert.equal(rec.type, 'fhir.create');
    assert.notEqual(rec.outcome, 0);
    assert.doesNotMatch(JSON.stringify(rec), /Auditsecret/);
  });

  it('an If-Match with anything after the ETag, or a list of ETags, is 400 and changes nothing', async () => {
    const put = await send('PUT', '/Patient/im-1', '{"resourceType":"Patient","id":"im-1"}');
    assert.equal(put.status, 201);
    for (const im of ['W/"1"junk', 'W/"1", W/"2"', 'W/"1" W/"2"', '"1"x']) {
      const r = await send('PUT', '/Patient/im-1', '{"resourceType":"Patient","id":"im-1","gender":"other"}', { 'if-match': im });
      assertOutcome(r, 400, /If-Match/);
      const d = await srv.fhirFetch('/Patient/im-1', { method: 'DELETE', headers: { accept: FHIR_JSON, 'if-match': im } });
      assertOutcome(d, 400, /If-Match/);
    }
    assert.equal(await historyTotal('/Patient/im-1'), 1);
    // spaces around a single ETag are allowed
    const r = await send('PUT', '/Patient/im-1', '{"resourceType":"Patient","id":"im-1","gender":"other"}', { 'if-match': ' W/"1" ' });
    assert.equal(r.status, 200, r.text);
  });

  it('a conditional update whose body id is not the resource found fails with 400 and changes nothing', async () => {
    for (const id of ['cu-a', 'cu-b']) {
      const r = await send('PUT', `/Patient/${id}`, JSON.stringify({ resourceType: 'Patient', id, identifier: [{ system: 'urn:e2e:cu', value: id }] }));
      assert.equal(r.status, 201, r.text);
    }
    const r = await send('POST', '', JSON.stringify({
      resourceType: 'Bundle', type: 'transaction', entry: [{
        resource: { resourceType: 'Patient', id: 'cu-b', identifier: [{ system: 'urn:e2e:cu', value: 'cu-a' }], name: [{ family: 'Condwrong' }] },
        request: { method: 'PUT', url: 'Patient?identifier=urn:e2e:cu|cu-a' },
      }],
    }));
    assertOutcome(r, 400, /cu-b/);
    for (const id of ['cu-a', 'cu-b']) assert.equal(await historyTotal(`/Patient/${id}`), 1, id);
    assert.equal(await count('/Patient?family=Condwrong'), 0);
    // the same body with the found id (or none) updates it
    const ok = await send('POST', '', JSON.stringify({
      resourceType: 'Bundle', type: 'transaction', entry: [{
        resource: { resourceType: 'Patient', id: 'cu-a', identifier: [{ system: 'urn:e2e:cu', value: 'cu-a' }], name: [{ family: 'Condright' }] },
        request: { method: 'PUT', url: 'Patient?identifier=urn:e2e:cu|cu-a' },
      }],
    }));
    assert.equal(ok.status, 200, ok.text);
    assert.match(ok.json.entry[0].response.location, /^Patient\/cu-a\/_history\/2$/);
  });

  it('decimals written through a transaction keep their digits, as a plain write does', async () => {
    const body = '{"resourceType":"Bundle","type":"transaction","entry":[' +
      '{"fullUrl":"urn:uuid:9b0c1a7e-0000-4000-8000-000000000001","resource":{"resourceType":"Patient","multipleBirthInteger":2},"request":{"method":"POST","url":"Patient"}},' +
      '{"resource":{"resourceType":"Observation","id":"dec-1","status":"final","code":{"text":"x"},"subject":{"reference":"urn:uuid:9b0c1a7e-0000-4000-8000-000000000001"},' +
      '"valueQuantity":{"value":1.50,"unit":"mg"},"referenceRange":[{"low":{"value":0.010},"high":{"value":2.0E1}}]},"request":{"method":"PUT","url":"Observation/dec-1"}},' +
      '{"resource":{"resourceType":"Observation","status":"final","code":{"text":"y"},"valueQuantity":{"value":100.000}},"request":{"method":"POST","url":"Observation"}}]}';
    const r = await send('POST', '', body);
    assert.equal(r.status, 200, r.text);
    const o = await srv.fhirFetch('/Observation/dec-1', { headers: { accept: FHIR_JSON } });
    assert.match(o.text, /"value":1\.50[,}]/);
    assert.match(o.text, /"value":0\.010[,}]/);
    assert.match(o.text, /"value":2\.0E1[,}]/);
    const third = await srv.fhirFetch(r.json.entry[2].response.location.replace(/\/_history.*/, ''), { headers: { accept: FHIR_JSON } });
    assert.match(third.text, /"value":100\.000[,}]/);
  });
});

describe('veranda import at its edges', () => {
  let dir;
  before(async () => {
    dir = await makeTempDir();
    await initDataDir(dir);
  });
  after(async () => removeDir(dir));

  const imp = async (name, content) => {
    const f = path.join(dir, name);
    await fsp.writeFile(f, content);
    return { f, r: await runCli(['import', '--data', dir, f]) };
  };
  const readAll = async (refs) => {
    const srv = await startServer({ dataDir: dir });
    try {
      const out = {};
      for (const ref of refs) out[ref] = await srv.fhirFetch(`/${ref}`, { headers: { accept: FHIR_JSON } });
      out.total = (await srv.fhirFetch('/_history?_count=1', { headers: { accept: FHIR_JSON } })).json.total;
      return out;
    } finally {
      await srv.stop();
    }
  };

  it('an NDJSON file that starts with a byte order mark imports every line', async () => {
    const { r } = await imp('bom.ndjson', '\ufeff{"resourceType":"Patient","id":"bom-1"}\n{"resourceType":"Patient","id":"bom-2"}\n');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /imported 2 of 2\b/);
  });

  it('a pretty-printed document that starts with a byte order mark imports', async () => {
    const { r } = await imp('bom.json', '\ufeff{\n  "resourceType": "Patient",\n  "id": "bom-3"\n}\n');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /imported 1 of 1\b/);
  });

  it('an id that is not a string is rejected, not replaced by a new one', async () => {
    const { f, r } = await imp('idnum.ndjson', '{"resourceType":"Patient","id":5,"name":[{"family":"Idnum"}]}\n{"resourceType":"Patient","id":"idnum-ok"}\n');
    assert.equal(r.code, 3, r.stdout + r.stderr);
    assert.match(r.stderr, new RegExp(`rejected ${f.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}:1: .*id`));
    assert.match(r.stdout, /imported 1 of 2\b/);
  });

  it('decimals in an imported Bundle keep their digits', async () => {
    const doc = '{\n "resourceType": "Bundle", "type": "collection", "total": 3, "entry": [\n' +
      '  {"resource": {"resourceType": "Patient", "id": "impdec-p", "multipleBirthInteger": 2}},\n' +
      '  {"resource": {"resourceType": "Observation", "id": "impdec-bad", "status": "final", "code": {"text": "x"}, "valueQuantity": {"value": 7.70}, "effectiveDateTime": "2023-02-30"}},\n' +
      '  {"resource": {"resourceType": "Observation", "id": "impdec-o", "status": "final", "code": {"text": "x"}, "valueQuantity": {"value": 1.50}}}\n ]\n}\n';
    const { r } = await imp('dec.json', doc);
    assert.equal(r.code, 3, r.stderr);
    const { r: r2 } = await imp('dec.ndjson', doc.replace(/\n/g, '').replace(/impdec-/g, 'impdec2-') + '\n');
    assert.equal(r2.code, 3, r2.stderr);
    const got = await readAll(['Observation/impdec-o', 'Observation/impdec2-o']);
    assert.match(got['Observation/impdec-o'].text, /"value":1\.50[,}]/);
    assert.match(got['Observation/impdec2-o'].text, /"value":1\.50[,}]/);
  });

  it('an empty file imports nothing and a binary file is rejected line by line; neither writes anything', async () => {
    const before_ = (await readAll([])).total;
    const e = await imp('empty.ndjson', '');
    assert.equal(e.r.code, 0, e.r.stderr);
    assert.match(e.r.stdout, /imported 0 of 0\b/);
    const bytes = Buffer.alloc(4096);
    for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 131 + 7) % 256;
    const b = await imp('binary.dat', bytes);
    assert.equal(b.r.code, 3, b.r.stderr);
    assert.match(b.r.stdout, /imported 0 of/);
    assert.equal((await readAll([])).total, before_);
    const idnum = await readAll(['Patient/idnum-ok']);
    assert.equal(idnum['Patient/idnum-ok'].status, 200);
  });
});
