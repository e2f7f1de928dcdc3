// "Who saw my record" (/account/access): the patient's own view of the audit
// log, through the real server.  Apps, a clinician and a caregiver use the
// FHIR API with real tokens; the page must then tell the patient, newest
// first and in plain language, who looked at what, through which app and
// why; filter by staff, apps and refusals; page without skipping or
// repeating a line; show a caregiver the records they act for and nothing
// else; and escape what apps call themselves (and, on the patient picker,
// what patients are called).
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { makeTempDir, removeDir, initDataDir, seedDataDir, startServer, requireBinary, runCli, sleep } from './lib/server.mjs';
import { Browser, authorize, redeem, registerClient, signIn, fhirGet, decodeEntities, postForm, basic } from './lib/oauth.mjs';

const CB = 'http://127.0.0.1:9999/cb';
const APP = 'Pill Reminder';
const EVIL = '<img src=x onerror="alert(1)">Evil & Co';
const LAB_SECRET = 'lab-secret-0123456789-abcdefghij';
let dir, srv;

before(async () => {
  requireBinary();
  dir = await makeTempDir('veranda-access-');
  await initDataDir(dir);
  await seedDataDir(dir, { patients: 0 });
  await registerClient(dir, { clientId: 'pill', public: true, redirectUris: [CB], name: APP });
  await registerClient(dir, { clientId: 'evil', public: true, redirectUris: [CB], name: EVIL });
  await registerClient(dir, { clientId: 'lab', secret: LAB_SECRET, redirectUris: [CB], name: 'Lab Portal' });
  srv = await startServer({ dataDir: dir, init: false });
});

after(async () => {
  if (srv) await srv.stop();
  await removeDir(dir);
});

/* ---- helpers ---- */

// A token of 'user' for app 'clientId' (a fresh browser session each time).
async function token(user, scope, { clientId = 'pill', patient } = {}) {
  const b = new Browser(srv.baseUrl);
  const a = await authorize(b, srv, { clientId, redirectUri: CB, scope, user, patient });
  assert.ok(a.code, `a code for ${user} (${a.walk.pages.join(' → ')}: ${a.walk.response.status})`);
  const r = await redeem(srv, { code: a.code, verifier: a.verifier, redirectUri: CB, clientId });
  assert.equal(r.status, 200, r.text);
  return r.json.access_token;
}

async function signedIn(user) {
  const b = new Browser(srv.baseUrl);
  assert.equal((await signIn(b, user)).status, 303, `${user} signs in`);
  return b;
}

// The page's lines as text ({ text, refused, receipt link, receipt pending }), its heading and its "Older" link.
async function accessPage(b, query = '') {
  const r = await b.get(`/account/access${query}`);
  const lines = [...r.text.matchAll(/<li class="card( refused)?">([\s\S]*?)<\/li>/g)].map((m) => ({
    refused: Boolean(m[1]),
    html: m[2],
    receipt: (m[2].match(/<a href="([^"]*)" download>Receipt<\/a>/) || [])[1],
    pending: /<p class="muted">Receipt: ready within a few seconds/.test(m[2]),
    text: decodeEntities(m[2].replace(/<p class="muted"><a [^>]*>Receipt<\/a><\/p>/, '')
      .replace(/<p class="muted">Receipt: ready[^<]*<\/p>/, '').replace(/<[^>]*>/g, ' '))
      .replace(/\s+/g, ' ').trim(),
  }));
  const older = r.text.match(/<a href="([^"]*)">Older<\/a>/);
  const h1 = (r.text.match(/<h1>([^<]*)<\/h1>/) || [])[1];
  return { status: r.status, location: r.location, text: r.text, lines, h1, rid: r.headers.get('x-request-id'),
    older: older ? decodeEntities(older[1]) : null };
}

// "YYYY-MM-DD HH:MM UTC" at the start of a line.
const when = (line) => line.text.slice(0, 20);

/* ================================================================ */

describe('who saw my record', () => {
  it('shows the patient each access, newest first, in plain language, and nothing of anyone else', async () => {
    const alice = await token('alice', 'launch/patient openid fhirUser patient/*.rs');
    assert.equal((await fhirGet(srv, 'Patient/alice', alice)).status, 200);
    assert.equal((await fhirGet(srv, 'Observation?category=laboratory', alice)).status, 200);
    // bob's app asks for alice's record: refused, and alice is told
    const bob = await token('bob', 'launch/patient openid fhirUser patient/*.rs', { patient: 'bob-child' });
    assert.equal((await fhirGet(srv, 'Patient/alice', bob)).status, 404);
    assert.equal((await fhirGet(srv, 'Patient/bob-child', bob)).status, 200);
    // last, a clinician through the same app
    const dr = await token('drsmith', 'openid fhirUser user/*.rs');
    assert.equal((await fhirGet(srv, 'Patient/alice', dr)).status, 200);

    const b = await signedIn('alice');
    const p = await accessPage(b);
    assert.equal(p.status, 200);
    assert.equal(p.h1, 'Who saw your record');
    const texts = p.lines.map((l) => l.text);
    const find = (re) => texts.findIndex((t) => re.test(t));
    const dri = find(/A clinician \(drsmith\) looked at your personal details through the app Pill Reminder\. Why: care \(treatment\)/);
    const search = find(/You searched your test results and measurements through the app Pill Reminder\. Why: your own use/);
    const read = find(/You looked at your personal details through the app Pill Reminder\. Why: your own use/);
    // another patient's account is not named to alice
    const refused = find(/Someone using another patient's account was refused access to your personal details through the app Pill Reminder/);
    const issued = find(/The app Pill Reminder received access to your record/);
    assert.ok(dri >= 0, `the clinician's read is shown:\n${texts.join('\n')}`);
    assert.ok(search >= 0 && read >= 0 && issued >= 0, `alice's own use is shown:\n${texts.join('\n')}`);
    assert.ok(refused >= 0, `the refusal is shown:\n${texts.join('\n')}`);
    assert.ok(p.lines[refused].refused, 'a refusal is marked as one');
    assert.doesNotMatch(p.lines[refused].text, /Why:/, 'nothing allowed a refusal: no reason line');
    assert.ok(dri < refused && refused < search && search < read && read < issued, `newest first:\n${texts.join('\n')}`);
    for (let i = 1; i < p.lines.length; i++) assert.ok(when(p.lines[i - 1]) >= when(p.lines[i]), 'times never go up');
    for (const t of texts) assert.match(t, /^\d{4}-\d\d-\d\d \d\d:\d\d UTC /);
    assert.doesNotMatch(p.text, /bob-child|bob-self|\bbob\b/, 'nothing of another patient\'s record or account');
    assert.doesNotMatch(p.text, /eyJ/, 'no token');

    const staff = await accessPage(b, '?kind=staff');
    assert.ok(staff.lines.length >= 1);
    assert.ok(staff.lines.every((l) => /^.{21}A clinician \(drsmith\)/.test(l.text)), staff.lines.map((l) => l.text).join('\n'));
    assert.equal(staff.older, null, 'one page: no "Older" link');

    const refusals = await accessPage(b, '?kind=refused');
    assert.equal(refusals.lines.length, 1, refusals.lines.map((l) => l.text).join('\n'));
    assert.ok(refusals.lines[0].refused);

    const apps = await accessPage(b, '?kind=apps');
    assert.ok(apps.lines.length >= 5);
    assert.ok(apps.lines.every((l) => /Pill Reminder/.test(l.text)), apps.lines.map((l) => l.text).join('\n'));
  });

  it('gives a receipt for the patient\'s own and staff lines, which checks offline; none for another patient\'s account', async () => {
    const b = await signedIn('alice');
    const find = (p, re) => p.lines.find((l) => re.test(l.text));
    // a line gets its receipt once the log has signed it (a checkpoint every few seconds);
    // until then it says so, and every link the page offers answers at once
    let p, dr, own, other;
    for (let i = 0; i < 60; i++) {
      p = await accessPage(b);
      dr = find(p, /A clinician \(drsmith\) looked at your personal details/);
      own = find(p, /You looked at your personal details/);
      other = find(p, /Someone using another patient's account/);
      for (const l of p.lines.filter((x) => x.receipt)) {
        const got = await b.get(decodeEntities(l.receipt));
        assert.equal(got.status, 200, `an offered receipt answers: ${l.text} ${got.text.slice(0, 200)}`);
      }
      for (const l of [dr, own]) if (l && !l.receipt) assert.ok(l.pending, `no link yet, and it says so: ${l.text}`);
      if (dr?.receipt && own?.receipt) break;
      await sleep(250);
    }
    assert.ok(dr?.receipt && own?.receipt, p.lines.map((l) => `${l.text} ${l.receipt || ''}`).join('\n'));
    assert.ok(other && !other.receipt && !other.pending, 'no receipt offered for another patient\'s account');

    const url = decodeEntities(dr.receipt);
    const r = await b.get(url);
    assert.equal(r.status, 200, r.text);
    assert.match(r.headers.get('content-disposition'), /^attachment; filename="veranda-receipt-node-1-\d+\.json"$/);
    assert.equal(r.headers.get('cache-control'), 'no-store');
    const receipt = JSON.parse(r.text);
    assert.equal(receipt.receipt, 'veranda-audit-receipt/1');
    const rec = JSON.parse(receipt.record);
    assert.equal(rec.patient, 'alice');
    assert.equal(rec.agent.username, 'drsmith');
    assert.equal(url, `/account/access/receipt?patient=alice&record=${rec.node}:${rec.seq}`);

    // checked offline against the keys the server publishes
    const tmp = await makeTempDir('veranda-receipt-');
    try {
      const file = path.join(tmp, 'receipt.json'), jwks = path.join(tmp, 'jwks.json');
      await fsp.writeFile(file, r.text);
      await fsp.writeFile(jwks, await (await fetch(`${srv.baseUrl}/oauth/jwks`)).text());
      const chk = await runCli(['audit', 'check-receipt', file, '--jwks', jwks]);
      assert.equal(chk.code, 0, chk.stdout + chk.stderr);
      assert.match(chk.stdout, /receipt checks/);
    } finally {
      await removeDir(tmp);
    }

    // the record of bob's refused attempt exists, but is not alice's to have
    const q = await runCli(['audit', 'query', '--data', srv.dataDir, '--node', 'node-1', '--format', 'ndjson', '--patient', 'alice']);
    assert.equal(q.code, 0, q.stderr);
    const bobs = q.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l))
      .find((x) => x.agent?.username === 'bob' && x.outcome !== 0);
    assert.ok(bobs, 'bob\'s refused read is on record');
    const notFound = await b.get(`/account/access/receipt?patient=alice&record=node-1:${bobs.seq}`);
    assert.equal(notFound.status, 404);
    assert.doesNotMatch(notFound.text, /\bbob\b/);
    // bob may not have alice's lines, under her id or under his child's
    const bb = await signedIn('bob');
    assert.equal((await bb.get(url)).status, 403);
    assert.equal((await bb.get(`/account/access/receipt?patient=bob-child&record=${rec.node}:${rec.seq}`)).status, 404);
    // a link that names no line, and no session
    assert.equal((await b.get('/account/access/receipt?patient=alice&record=node-1:x')).status, 400);
    assert.equal((await b.get('/account/access/receipt?patient=alice&record=../x:1')).status, 400);
    const anon = await new Browser(srv.baseUrl).get(url);
    assert.equal(anon.status, 303);
    assert.match(anon.location, /\/signin$/);
  });

  it('tells a renewed access and a token check apart from a new one', async () => {
    const b = new Browser(srv.baseUrl);
    const a = await authorize(b, srv, { clientId: 'pill', redirectUri: CB, user: 'erin',
      scope: 'launch/patient openid fhirUser offline_access patient/*.rs' });
    assert.ok(a.code);
    const first = await redeem(srv, { code: a.code, verifier: a.verifier, redirectUri: CB, clientId: 'pill' });
    assert.equal(first.status, 200, first.text);
    const renewed = await postForm(`${srv.baseUrl}/oauth/token`,
      { grant_type: 'refresh_token', refresh_token: first.json.refresh_token, client_id: 'pill' });
    assert.equal(renewed.status, 200, renewed.text);
    const intro = await postForm(`${srv.baseUrl}/oauth/introspect`, { token: renewed.json.access_token },
      { auth: basic('lab', LAB_SECRET) });
    assert.equal(intro.json.active, true);

    const p = await accessPage(await signedIn('erin'), '?kind=apps');
    const texts = p.lines.map((l) => l.text.slice(21));
    const at = (s) => texts.indexOf(s);
    const checked = at("The app Lab Portal checked whether an app's access to your record was still valid.");
    const renew = at('The app Pill Reminder renewed its access to your record.');
    const issued = at('The app Pill Reminder received access to your record.');
    assert.ok(checked >= 0 && renew >= 0 && issued >= 0, texts.join('\n'));
    assert.ok(checked < renew && renew < issued, `newest first:\n${texts.join('\n')}`);
    assert.equal(texts.filter((t) => /received access/.test(t)).length, 1, 'one new access, not three');
  });

  it('pages 25 lines at a time without skipping or repeating one', async () => {
    const t = await token('erin', 'launch/patient openid fhirUser patient/*.rs');
    for (let i = 0; i < 40; i++) assert.equal((await fhirGet(srv, 'Patient/erin', t)).status, 200);
    const b = await signedIn('erin');
    const seen = [];
    let p = await accessPage(b);
    let pages = 0;
    for (;;) {
      pages++;
      assert.equal(p.status, 200);
      assert.ok(p.lines.length <= 25);
      seen.push(...p.lines);
      if (!p.older) break;
      assert.equal(p.lines.length, 25, 'a page with an "Older" link is full');
      p = await accessPage(b, p.older.replace('/account/access', ''));
    }
    assert.ok(pages >= 2, 'more than one page');
    const reads = seen.filter((l) => /You looked at your personal details/.test(l.text));
    assert.equal(reads.length, 40, 'each of the 40 reads exactly once');
    for (let i = 1; i < seen.length; i++) assert.ok(when(seen[i - 1]) >= when(seen[i]), 'newest first across pages');
    assert.ok(seen.every((l) => !/alice|bob/.test(l.text)), 'only erin\'s record');
    // a cursor that is not TIME:NODE:SEQ shows the first page, as if none were given
    const first = await accessPage(b);
    for (const bad of ['abc', '-5:n:1', '5:n', ':n:1', '5:n:-1', '5:n:1x', '5:a b:1', `${'9'.repeat(30)}:n:1`]) {
      const q = await accessPage(b, `?before=${encodeURIComponent(bad)}`);
      assert.equal(q.status, 200, bad);
      assert.equal(q.lines[0].text, first.lines[0].text, `${bad}: the first page`);
    }
  });

  it('a caregiver sees the records they act for, and no other', async () => {
    const t = await token('bob', 'launch/patient openid fhirUser patient/*.rs', { patient: 'bob-mother' });
    assert.equal((await fhirGet(srv, 'Patient/bob-mother', t)).status, 200);
    const b = await signedIn('bob');
    const own = await accessPage(b);
    assert.equal(own.status, 200);
    assert.match(own.text, /<option value="bob-mother"/, 'the records bob acts for are offered');
    const p = await accessPage(b, '?patient=bob-mother');
    assert.equal(p.status, 200);
    assert.equal(p.h1, 'Who saw this record');
    assert.ok(p.lines.some((l) => /You looked at the personal details through the app Pill Reminder/.test(l.text)),
      p.lines.map((l) => l.text).join('\n'));
    assert.ok(p.lines.every((l) => !/ your /.test(l.text)), `not "your": the record is someone else's:\n${p.lines.map((l) => l.text).join('\n')}`);
    assert.doesNotMatch(p.text, /alice/, 'nothing of a record bob does not act for');
    assert.ok(p.lines.every((l) => !/bob-child|bob-self/.test(l.text)), 'only bob-mother\'s record');
    const other = await accessPage(b, '?patient=alice');
    assert.equal(other.status, 403, 'alice\'s history is not bob\'s to see');
    assert.equal(other.lines.length, 0);
    assert.doesNotMatch(other.text, /drsmith|Pill Reminder/);
    // the same asked for from another site (a link followed): refused too
    const planted = await b.get('/account/access?patient=alice', { 'sec-fetch-site': 'cross-site' });
    assert.equal(planted.status, 403);
    // bob's own attempt is on record for compliance, naming alice's record only as an entity (anyone
    // signed in can ask over and over: that must not write lines into alice's history); the one
    // another site started is not recorded in bob's name
    const denials = async () => {
      const q = await runCli(['audit', 'query', '--data', srv.dataDir, '--node', 'node-1', '--format', 'ndjson', '--type', 'policy.denied']);
      assert.equal(q.code, 0, q.stderr);
      return q.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l));
    };
    let tried;
    for (let i = 0; i < 40 && !tried; i++) {
      if (i) await new Promise((r) => setTimeout(r, 50));
      tried = (await denials()).find((x) => x.correlation?.request === other.rid);
    }
    assert.ok(tried, 'bob\'s attempt is on record');
    assert.deepEqual([tried.outcome, tried.outcomeCode, tried.agent.username, tried.agent.role, tried.patient],
      [4, 'not-linked', 'bob', 'caregiver', undefined]);
    assert.deepEqual(tried.entity, [{ type: 'Patient', id: 'alice' }]);
    assert.ok(tried.source?.session, 'the session as a hash');
    await new Promise((r) => setTimeout(r, 100));
    assert.equal((await denials()).filter((x) => x.correlation?.request === planted.headers.get('x-request-id')).length, 0,
      'nothing in bob\'s name for a request another site started');
  });

  it('caregiver access given and ended by an administrator shows in the record it concerns', async () => {
    const cli = (...args) => runCli(['user', ...args, '--data', srv.dataDir]);
    let r = await cli('link', '--username', 'frank', '--patient', 'bob-child', '--related-person', 'bob-for-child');
    assert.equal(r.code, 0, r.stderr);
    r = await cli('unlink', '--username', 'frank', '--patient', 'bob-child');
    assert.equal(r.code, 0, r.stderr);
    const p = await accessPage(await signedIn('bob'), '?patient=bob-child');
    assert.equal(p.status, 200);
    const texts = p.lines.map((l) => l.text);
    const gave = texts.findIndex((t) => /A Veranda administrator gave the account frank caregiver access to the record/.test(t));
    const ended = texts.findIndex((t) => /A Veranda administrator ended the caregiver access of the account frank to the record/.test(t));
    assert.ok(gave >= 0 && ended >= 0, texts.join('\n'));
    assert.ok(ended < gave, 'newest first');
    assert.ok(texts.every((t) => !/os:|proxy\./.test(t)), 'no operating-system account or record type on the page');
  });

  it('needs a session, and escapes what an app calls itself', async () => {
    const anon = await accessPage(new Browser(srv.baseUrl));
    assert.equal(anon.status, 303);
    assert.match(anon.location, /\/signin$/);

    const t = await token('frank', 'launch/patient openid fhirUser patient/*.rs', { clientId: 'evil', patient: 'frank' });
    assert.equal((await fhirGet(srv, 'Patient/frank', t)).status, 200);
    const p = await accessPage(await signedIn('frank'), '?patient=frank');
    assert.equal(p.status, 200);
    assert.ok(p.lines.some((l) => l.text.includes(`through the app ${EVIL}`)), p.lines.map((l) => l.text).join('\n'));
    assert.doesNotMatch(p.text, /<img src=x/, 'the app\'s name is text, not markup');
    assert.match(p.text, /&lt;img src=x onerror=/);
  });

  it('a patient\'s name with markup is text on the patient picker (security plan 38)', async () => {
    const cur = await srv.fetch('/fhir/Patient/bob-mother');
    assert.equal(cur.status, 200);
    const marked = { ...cur.json, name: [{ family: '<script>alert("x")</script>', given: ['<img src=y onerror=alert(2)>'] }] };
    const put = await srv.fetch('/fhir/Patient/bob-mother', { method: 'PUT', headers: { 'content-type': 'application/fhir+json' },
      body: JSON.stringify(marked) });
    assert.equal(put.status, 200, put.text);
    try {
      const b = new Browser(srv.baseUrl);
      const a = await authorize(b, srv, { clientId: 'pill', redirectUri: CB, scope: 'launch/patient openid fhirUser patient/*.rs',
        user: 'bob', stopAt: 'picker' });
      const html = a.walk.response.text;
      assert.match(html, /name="patient" value="bob-mother"/, 'the picker lists bob-mother');
      assert.doesNotMatch(html, /<script>alert|<img src=y/, 'the name is not markup');
      assert.match(html, /&lt;script&gt;alert\(&quot;x&quot;\)&lt;\/script&gt;|&lt;script&gt;alert\(&#34;x&#34;\)/);
    } finally {
      const back = await srv.fetch('/fhir/Patient/bob-mother', { method: 'PUT', headers: { 'content-type': 'application/fhir+json' },
        body: JSON.stringify(cur.json) });
      assert.equal(back.status, 200);
    }
  });
});
