// The compliance search at /fhir/AuditEvent and `veranda audit query` at
// their edges, through the real server and the real command line: time
// ranges given twice, at the epoch and with prefixes FHIR does not have;
// outcomes that are not codes; filters given twice; parameters the search
// does not know (lenient and strict handling); page cursors that are not
// ones the server gave; the entity filter's "next" link; reading one
// AuditEvent by the id its search entry names (compliance only); and
// calendar dates that do not exist.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  makeTempDir, removeDir, initDataDir, seedDataDir, startServer, runCli, requireBinary,
} from './lib/server.mjs';
import { Browser, authorize, redeem, registerClient, fetchJson } from './lib/oauth.mjs';

const CB = 'http://127.0.0.1:9999/cb';

describe('the compliance search and the command line at their edges', () => {
  let dir, srv, carol, alice, drsmith, sam, obsId;

  async function token(user, scope) {
    const b = new Browser(srv.baseUrl);
    const a = await authorize(b, srv, { clientId: 'aq-app', redirectUri: CB, scope, user });
    assert.ok(a.code, `a code for ${user}: ${a.walk.pages.join(' → ')}`);
    const t = await redeem(srv, { code: a.code, verifier: a.verifier, redirectUri: CB, clientId: 'aq-app' });
    assert.equal(t.status, 200, t.text);
    return t.json.access_token;
  }

  async function fhir(p, tok, headers = {}) {
    return fetchJson(`${srv.fhirBase}/${p}`, {
      headers: { accept: 'application/fhir+json', authorization: `Bearer ${tok}`, ...headers },
    });
  }

  /* A compliance search that must succeed: its entries' resources and its links by relation. */
  async function search(q, headers) {
    const r = await fhir(`AuditEvent?${q}`, carol, headers);
    assert.equal(r.status, 200, `${q}: ${r.text}`);
    const links = Object.fromEntries((r.json.link || []).map((l) => [l.relation, l.url]));
    return { entries: (r.json.entry || []).map((e) => e.resource), full: r.json.entry || [], links };
  }

  /* A compliance search that must be refused with 400 and an OperationOutcome. */
  async function refused(q, headers) {
    const r = await fhir(`AuditEvent?${q}`, carol, headers);
    assert.equal(r.status, 400, `${q} should be refused: ${r.status} ${r.text.slice(0, 300)}`);
    assert.equal(r.json?.resourceType, 'OperationOutcome', r.text);
    return r;
  }

  before(async () => {
    requireBinary();
    dir = await makeTempDir('veranda-audit-queries-');
    await initDataDir(dir);
    await seedDataDir(dir, { patients: 0 });
    await registerClient(dir, { clientId: 'aq-app', public: true, redirectUris: [CB] });
    srv = await startServer({ dataDir: dir, init: false });
    carol = await token('carol', 'openid fhirUser user/AuditEvent.rs');
    alice = await token('alice', 'launch/patient openid fhirUser patient/*.rs patient/AuditEvent.rs');
    drsmith = await token('drsmith', 'openid fhirUser user/*.rs');
    sam = await token('sam', 'openid fhirUser user/AuditEvent.rs');
    for (let i = 0; i < 3; i++) assert.equal((await fhir('Patient/alice', alice)).status, 200);
    const obs = await fhir('Observation?_count=1', alice);
    assert.equal(obs.status, 200, obs.text);
    obsId = obs.json.entry[0].resource.id;
    assert.equal((await fhir(`Observation/${obsId}`, alice)).status, 200);
  });

  after(async () => {
    await srv?.stop();
    await removeDir(dir);
  });

  it('a comma in type means any of the types or categories; an unknown one among them is 400', async () => {
    const n = async (q) => (await search(`${q}&_count=500`)).entries.length;
    const reads = await n('type=fhir.read'), sessions = await n('type=session'), tokens = await n('type=oauth');
    assert.ok(reads > 0 && sessions > 0 && tokens > 0, `${reads} ${sessions} ${tokens}`);
    assert.equal(await n('type=fhir.read,session'), reads + sessions);
    assert.equal(await n('type=session,oauth,fhir.read'), reads + sessions + tokens);
    assert.equal(await n('type=fhir.read,fhir.read'), reads);
    const r = await refused('type=fhir.read,nonsense');
    assert.match(r.text, /nonsense/);
    await refused('type=fhir.read,');
  });

  it('a date range given twice is the intersection of both, not the last one', async () => {
    const all = (await search('_count=500')).entries;
    assert.ok(all.length > 5);
    assert.equal((await search('date=ge2099-01-01&date=ge2000-01-01&_count=500')).entries.length, 0,
      'nothing is recorded after 2099');
    assert.equal((await search('date=lt2000-01-01&date=lt2099-01-01&_count=500')).entries.length, 0,
      'nothing is recorded before 2000');
    const today = new Date().toISOString().slice(0, 10);
    const both = (await search(`date=ge${today}&date=lt2099-01-01&type=fhir.read&_count=500`)).entries;
    assert.ok(both.length >= 4, 'a range from both ends still finds the reads');
  });

  it('a range that ends at the epoch holds nothing; a prefix FHIR does not have is refused', async () => {
    assert.equal((await search('date=lt1970-01-01')).entries.length, 0);
    assert.equal((await search('date=le1969-12-31')).entries.length, 0);
    assert.equal((await search('date=lt1970-01-01T00:00:00Z')).entries.length, 0);
    await refused('date=xx2026-01-01');
    await refused('date=zz2026-11-28T10:00:00Z');
  });

  it('an outcome that is not 0, 4, 8 or 12 is refused, as the message says', async () => {
    for (const o of ['1', '3', '5', '11']) {
      const r = await refused(`outcome=${o}`);
      assert.match(r.json.issue[0].diagnostics, /0, 4, 8 or 12/);
    }
    assert.ok((await search('outcome=0')).entries.length > 0);
  });

  it('a filter given twice is not half applied', async () => {
    // alice and bob-self: no record is about both; fhir.read is not a session event
    for (const q of ['patient=alice&patient=bob-self', 'type=session&type=fhir.read',
      'agent=alice&agent=carol', 'outcome=0&outcome=4']) {
      const r = await fhir(`AuditEvent?${q}`, carol);
      if (r.status === 200) assert.equal((r.json.entry || []).length, 0, `${q}: ${r.text.slice(0, 400)}`);
      else assert.equal(r.status, 400, `${q}: ${r.text}`);
    }
    // the same value twice is the same filter
    const twice = await search('patient=alice&patient=alice&_count=500');
    const once = await search('patient=alice&_count=500');
    assert.ok(twice.entries.length > 0 && twice.entries.length >= once.entries.length - 2);
  });

  it('a parameter the search does not know is left out of the self link, and refused when handling is strict', async () => {
    const lenient = await search('patinet=alice&_count=5');
    assert.doesNotMatch(lenient.links.self, /patinet/, `self says what was applied: ${lenient.links.self}`);
    if (lenient.links.next) assert.doesNotMatch(lenient.links.next, /patinet/);
    const r = await refused('patinet=alice', { prefer: 'handling=strict' });
    assert.match(r.json.issue[0].diagnostics, /patinet/);
    // the known parameters are still fine under strict handling
    assert.ok((await search('patient=alice&_count=2', { prefer: 'handling=strict' })).entries.length > 0);
  });

  it('a page cursor the server did not give is refused', async () => {
    const first = await search('_count=2');
    assert.ok(first.links.next, 'a next link');
    const cursor = new URL(first.links.next).searchParams.get('_page');
    await refused(`_count=2&_page=${encodeURIComponent(`${cursor}junk`)}`);
    await refused('_page=99999999999999999999999:node-1:1');
    await refused('_page=1:node-1:-1');
    await refused('_page=1:node-1:');
    // the genuine one still works
    const second = await search(`_count=2&_page=${encodeURIComponent(cursor)}`);
    assert.equal(second.entries.length, 2);
    assert.notDeepEqual(second.entries.map((e) => e.id), first.entries.map((e) => e.id));
  });

  it('with an entity filter, a full page has a next link only when another match exists', async () => {
    const all = (await search(`entity=Observation/${obsId}&_count=500`)).entries;
    assert.ok(all.length >= 1);
    const page = await search(`entity=Observation/${obsId}&_count=${all.length}`);
    assert.equal(page.entries.length, all.length);
    assert.equal(page.links.next, undefined, `no next page: every match is here (${page.links.next})`);
    if (all.length > 1) {
      const p1 = await search(`entity=Observation/${obsId}&_count=${all.length - 1}`);
      assert.ok(p1.links.next, 'one match left: a next link');
      const p2 = await fetchJson(p1.links.next, { headers: { accept: 'application/fhir+json', authorization: `Bearer ${carol}` } });
      assert.equal(p2.json.entry.length, 1);
    }
  });

  it('entity must be Type/id (400 otherwise, not a scan that matches nothing); the log\'s own types match too', async () => {
    for (const v of ['Observation', '/x', 'Observation/', '1bad/x', 'Obs-ervation/x', 'Observation/a"b', 'Observation/a\\b',
      `Observation/${'x'.repeat(257)}`, 'Observation/a%0Ab']) {
      const r = await refused(`entity=${v.includes('%') ? v : encodeURIComponent(v)}`);
      assert.match(r.json.issue[0].diagnostics, /entity must be Type\/id/);
    }
    // the longest id allowed is a search like any other
    assert.equal((await search(`entity=Observation/${'x'.repeat(256)}`)).entries.length, 0);
    // an administrative record names a User: `veranda seed` recorded carol's account
    const users = await search('entity=User/carol&_count=5');
    assert.ok(users.entries.length >= 1, 'the seed\'s admin.user record of carol');
    for (const e of users.entries)
      assert.ok(e.entity.some((x) => x.what?.identifier?.value === 'carol' || (x.what?.reference ?? '').endsWith('/carol')),
        JSON.stringify(e.entity));
  });

  it('each search entry\'s fullUrl reads that AuditEvent, for the compliance role only', async () => {
    const { full } = await search('type=fhir.read&patient=alice&_count=1');
    assert.equal(full.length, 1);
    const { fullUrl, resource } = full[0];
    assert.ok(fullUrl.endsWith(`/AuditEvent/${resource.id}`), fullUrl);
    const get = (tok) => fetchJson(fullUrl, { headers: { accept: 'application/fhir+json', authorization: `Bearer ${tok}` } });
    const r = await get(carol);
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.json, resource);
    // nobody else: a patient (even with AuditEvent in scope), a clinician, support staff
    for (const [who, tok] of [['alice', alice], ['drsmith', drsmith], ['sam', sam]]) {
      const d = await get(tok);
      assert.equal(d.status, 403, `${who}: ${d.status} ${d.text.slice(0, 200)}`);
      assert.equal(d.json?.resourceType, 'OperationOutcome');
      assert.doesNotMatch(d.text, /"agent"|"entity"/, `${who} sees no part of the record`);
    }
    // an id that names no record
    for (const id of ['node-1.999999', 'no-such-node.1', 'node-1', 'x']) {
      const n = await fhir(`AuditEvent/${id}`, carol);
      assert.equal(n.status, 404, `${id}: ${n.text}`);
      assert.equal(n.json?.resourceType, 'OperationOutcome');
    }
    // the read is itself on record, as a read of that AuditEvent by carol
    const reads = (await search(`type=fhir.read&agent=carol&_count=50`)).entries;
    assert.ok(reads.some((e) => e.entity?.some((x) => (x.what?.reference ?? '').includes(`AuditEvent/${resource.id}`))),
      JSON.stringify(reads.map((e) => e.entity)));
  });

  it('veranda audit query refuses calendar dates that do not exist, instead of moving them', async () => {
    for (const d of ['2026-02-30', '2026-04-31', '2025-02-29T10:00:00Z', '2026-06-31T00:00']) {
      for (const flag of ['--since', '--until']) {
        const r = await runCli(['audit', 'query', '--data', dir, flag, d]);
        assert.equal(r.code, 2, `${flag} ${d}: exit ${r.code}, ${r.stderr}`);
        assert.match(r.stderr, new RegExp(d.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')));
      }
    }
    const ok = await runCli(['audit', 'query', '--data', dir, '--since', '2024-02-29', '--type', 'system.start']);
    assert.equal(ok.code, 0, ok.stderr);
    assert.ok(ok.stdout.trim().length > 0, 'a leap day is a date');
  });
});
