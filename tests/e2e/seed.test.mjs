// `veranda seed`: deterministic output and the demo people.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { runCli, startServer, makeTempDir, removeDir, initDataDir, requireBinary, allPages } from './lib/server.mjs';

before(() => requireBinary());

// Drop what legitimately differs between two runs: the write time.
function stable(res) {
  const c = structuredClone(res);
  if (c.meta) delete c.meta.lastUpdated;
  return c;
}

function ageOn(birthDate, now = new Date()) {
  const [y, m, d] = birthDate.split('-').map(Number);
  let age = now.getUTCFullYear() - y;
  if (now.getUTCMonth() + 1 < m || (now.getUTCMonth() + 1 === m && now.getUTCDate() < d)) age--;
  return age;
}

describe('seed', () => {
  const dirs = [];
  const servers = [];
  let seedOut;

  before(async () => {
    for (const seed of [7, 7, 8]) {
      const dir = await makeTempDir();
      dirs.push(dir);
      await initDataDir(dir);
      const r = await runCli(['seed', '--data', dir, '--patients', '20', '--seed', String(seed)], { timeout: 120000 });
      assert.equal(r.code, 0, r.stderr);
      seedOut ??= r.stdout;
      servers.push(await startServer({ dataDir: dir }));
    }
  });
  after(async () => {
    for (const s of servers) await s.stop();
    for (const d of dirs) await removeDir(d);
  });

  it('reports what it made', () => {
    assert.match(seedOut, /seeded \d+ resources/);
  });

  it('the demo people exist', async () => {
    const [a] = servers;
    const want = [
      ['Patient', 'alice'],
      ['Patient', 'erin'],
      ['Patient', 'bob-child'],
      ['Patient', 'bob-mother'],
      ['Patient', 'frank'],
      ['RelatedPerson', 'bob-for-child'],
      ['RelatedPerson', 'frank-erin'],
      ['Practitioner', 'drsmith'],
    ];
    for (const [type, id] of want) {
      const r = await a.fetch(`/fhir/${type}/${id}`);
      assert.equal(r.status, 200, `${type}/${id}`);
      assert.equal(r.json.resourceType, type);
      assert.equal(r.json.id, id);
    }
  });

  it('the demo people have the ages and relationships the design gives', async () => {
    const [a] = servers;
    const get = async (p) => (await a.fetch(`/fhir/${p}`)).json;
    const alice = await get('Patient/alice');
    assert.ok(ageOn(alice.birthDate) >= 18, `alice is an adult (${alice.birthDate})`);
    const erin = await get('Patient/erin');
    assert.equal(ageOn(erin.birthDate), 15, `erin is 15 (${erin.birthDate})`);
    const child = await get('Patient/bob-child');
    assert.equal(ageOn(child.birthDate), 8, `bob's child is 8 (${child.birthDate})`);
    const mother = await get('Patient/bob-mother');
    assert.ok(ageOn(mother.birthDate) >= 65, `bob's mother is elderly (${mother.birthDate})`);
    const forChild = await get('RelatedPerson/bob-for-child');
    assert.equal(forChild.patient.reference, 'Patient/bob-child');
    const frankErin = await get('RelatedPerson/frank-erin');
    assert.equal(frankErin.patient.reference, 'Patient/erin');
  });

  it('alice has a record: observations that refer to her', async () => {
    const [a] = servers;
    const pages = await allPages(a, '/Observation/_history?_count=1000');
    const mine = pages.flatMap((p) => p.entry).filter((e) => e.resource && e.resource.subject && e.resource.subject.reference === 'Patient/alice');
    assert.ok(mine.length > 0, 'alice has observations');
  });

  it('the same seed gives the same resources', async () => {
    const [a, b] = servers;
    for (const p of ['Patient/alice', 'Patient/erin', 'RelatedPerson/bob-for-child', 'Practitioner/drsmith']) {
      const ra = await a.fetch(`/fhir/${p}`);
      const rb = await b.fetch(`/fhir/${p}`);
      assert.deepEqual(stable(rb.json), stable(ra.json), p);
    }
    for (const type of ['Patient', 'Observation', 'Condition', 'MedicationRequest', 'RelatedPerson']) {
      const ia = (await allPages(a, `/${type}/_history?_count=1000`)).flatMap((p) => p.entry.map((e) => e.fullUrl.split('/').slice(-2).join('/')));
      const ib = (await allPages(b, `/${type}/_history?_count=1000`)).flatMap((p) => p.entry.map((e) => e.fullUrl.split('/').slice(-2).join('/')));
      assert.deepEqual(ib, ia, `${type} ids`);
    }
    const pa = (await allPages(a, '/Patient/_history?_count=1000')).flatMap((p) => p.entry.map((e) => stable(e.resource)));
    const pb = (await allPages(b, '/Patient/_history?_count=1000')).flatMap((p) => p.entry.map((e) => stable(e.resource)));
    assert.ok(pa.length >= 25, `20 generated patients and the demo people: ${pa.length}`);
    assert.deepEqual(pb, pa, 'every Patient is identical');
    const rel = (e) => e.fullUrl.replace(/^.*\/fhir\//, '');
    const sa = (await allPages(a, '/_history?_count=1000')).flatMap((p) => p.entry.map(rel));
    const sb = (await allPages(b, '/_history?_count=1000')).flatMap((p) => p.entry.map(rel));
    assert.ok(sa.length > 100, `a full population: ${sa.length} resources`);
    assert.deepEqual(sb, sa, 'the same resources in the same order');
  });

  it('a different seed gives different generated patients', async () => {
    const [a, , c] = servers;
    const pa = (await allPages(a, '/Patient/_history?_count=1000')).flatMap((p) => p.entry.map((e) => stable(e.resource)));
    const pc = (await allPages(c, '/Patient/_history?_count=1000')).flatMap((p) => p.entry.map((e) => stable(e.resource)));
    assert.notDeepEqual(pc, pa);
  });

  it('seed on a data directory without a database fails and says to run init', async () => {
    const dir = await makeTempDir();
    try {
      const r = await runCli(['seed', '--data', dir, '--patients', '1']);
      assert.notEqual(r.code, 0);
      assert.match(r.stderr, /init/);
    } finally {
      await removeDir(dir);
    }
  });
});
