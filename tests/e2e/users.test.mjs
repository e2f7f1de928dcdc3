// `veranda user …` and the demo accounts of `veranda seed`.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { runCli, makeTempDir, removeDir, initDataDir, seedDataDir, requireBinary } from './lib/server.mjs';

before(() => requireBinary());

const DEMO = ['admin', 'alice', 'bob', 'carol', 'drsmith', 'erin', 'frank', 'sam'];

// `user list` as rows: { username, role, fhirUser, disabled }.
async function listUsers(dir) {
  const r = await runCli(['user', 'list', '--data', dir]);
  assert.equal(r.code, 0, r.stderr);
  const [header, ...lines] = r.stdout.trim().split('\n');
  assert.match(header, /^USERNAME\s+ROLE\s+FHIR USER\s+DISABLED$/);
  return lines.map((l) => {
    const [username, role, fhirUser, disabled] = l.trim().split(/\s+/);
    return { username, role, fhirUser, disabled };
  });
}

function checkPassword(dir, username, password) {
  return runCli(['user', 'check-password', '--data', dir, '--username', username, '--password-stdin'], {
    input: `${password}\n`,
  });
}

describe('user command', () => {
  let dir;

  before(async () => {
    dir = await makeTempDir();
    await initDataDir(dir);
  });
  after(() => removeDir(dir));

  it('adds, lists, disables and resets a staff account', async () => {
    let r = await runCli(['user', 'add', '--data', dir, '--username', 'Nina', '--role', 'support', '--password-stdin'], {
      input: 'first-secret-pw\n',
    });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /added user 'nina' \(support\)/);
    assert.ok(!r.stdout.includes('first-secret-pw') && !r.stderr.includes('first-secret-pw'), 'password not echoed');

    let rows = await listUsers(dir);
    assert.deepEqual(rows, [{ username: 'nina', role: 'support', fhirUser: '-', disabled: 'no' }]);
    assert.ok(!(await runCli(['user', 'list', '--data', dir])).stdout.includes('$argon2'), 'no hashes listed');

    assert.equal((await checkPassword(dir, 'NINA', 'first-secret-pw')).code, 0);
    r = await checkPassword(dir, 'nina', 'not-the-password');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^veranda: wrong username or password\n$/);
    r = await checkPassword(dir, 'nobody', 'first-secret-pw');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^veranda: wrong username or password\n$/, 'unknown users look like wrong passwords');

    r = await runCli(['user', 'add', '--data', dir, '--username', 'nina', '--role', 'admin', '--password', 'other-password']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /user 'nina' already exists/);

    r = await runCli(['user', 'disable', '--data', dir, '--username', 'nina']);
    assert.equal(r.code, 0, r.stderr);
    rows = await listUsers(dir);
    assert.equal(rows[0].disabled, 'yes');
    r = await checkPassword(dir, 'nina', 'first-secret-pw');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /disabled/);

    r = await runCli(['user', 'reset-password', '--data', dir, '--username', 'nina', '--password-stdin'], {
      input: 'second-secret-pw\n',
    });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /password of user 'nina' changed/);
    r = await runCli(['user', 'enable', '--data', dir, '--username', 'nina']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal((await checkPassword(dir, 'nina', 'first-secret-pw')).code, 1);
    assert.equal((await checkPassword(dir, 'nina', 'second-secret-pw')).code, 0);

    r = await runCli(['user', 'disable', '--data', dir, '--username', 'ghost']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /user 'ghost' not found/);
  });

  it('refuses bad values with exit status 2 and a one-line message', async () => {
    const cases = [
      [['--username', 'x', '--role', 'emperor', '--password', 'long-enough'], /unknown role 'emperor'/],
      [['--username', 'bad name', '--role', 'support', '--password', 'long-enough'], /username may only hold/],
      [['--username', 'a'.repeat(65), '--role', 'support', '--password', 'long-enough'], /longer than 64/],
      [['--username', 'x', '--role', 'support', '--password', 'short'], /at least 8 characters/],
      [['--username', 'x', '--role', 'support'], /needs --password-stdin/],
      [['--role', 'support', '--password', 'long-enough'], /needs --username/],
      [['--username', 'x', '--role', 'patient', '--password', 'long-enough'], /needs a fhir user/],
      [['--username', 'x', '--role', 'patient', '--fhir-user', 'Nonsense', '--password', 'long-enough'], /is not Patient\/ID/],
      [['--username', 'x', '--role', 'support', '--password', 'long-enough', '--bogus', '1'], /unknown flag '--bogus'/],
    ];
    for (const [args, msg] of cases) {
      const r = await runCli(['user', 'add', '--data', dir, ...args]);
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, msg);
      assert.equal(r.stderr.trim().split('\n').length, 1, 'one line');
      assert.ok(!r.stderr.includes('long-enough'), 'password not echoed');
    }
    let r = await runCli(['user', 'add', '--data', dir, '--username', 'x', '--role', 'support', '--password-stdin'], {
      input: 'short\n',
    });
    assert.equal(r.code, 2);
    assert.match(r.stderr, /at least 8 characters/);
    r = await runCli(['user', 'frobnicate', '--data', dir]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /unknown user subcommand 'frobnicate'/);
    r = await runCli(['user', '--data', dir]);
    assert.equal(r.code, 2);
    // a FHIR person that does not exist is a runtime error
    r = await runCli(['user', 'add', '--data', dir, '--username', 'x', '--role', 'patient', '--fhir-user', 'Patient/ghost', '--password', 'long-enough']);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /Patient\/ghost does not exist/);
    assert.deepEqual((await listUsers(dir)).map((u) => u.username).filter((u) => u === 'x'), []);
  });
});

describe('seed demo accounts', () => {
  let dir;

  before(async () => {
    dir = await makeTempDir();
    await initDataDir(dir);
  });
  after(() => removeDir(dir));

  it('creates the eight demo accounts with the default password', async () => {
    const r = await runCli(['seed', '--data', dir, '--patients', '0'], { timeout: 120000 });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /demo accounts: 8 created, 0 updated/);
    const rows = await listUsers(dir);
    assert.deepEqual(rows.map((u) => u.username), DEMO);
    const by = Object.fromEntries(rows.map((u) => [u.username, u]));
    assert.deepEqual(
      Object.fromEntries(rows.map((u) => [u.username, [u.role, u.fhirUser]])),
      {
        admin: ['admin', '-'],
        alice: ['patient', 'Patient/alice'],
        bob: ['caregiver', 'Patient/bob-self'],
        carol: ['compliance', '-'],
        drsmith: ['clinician', 'Practitioner/drsmith'],
        erin: ['patient', 'Patient/erin'],
        frank: ['caregiver', 'Patient/frank'],
        sam: ['support', '-'],
      },
    );
    assert.ok(Object.values(by).every((u) => u.disabled === 'no'));
    for (const u of ['alice', 'bob', 'admin']) assert.equal((await checkPassword(dir, u, 'veranda-demo')).code, 0, u);
  });

  it('is idempotent and honours --demo-password', async () => {
    await runCli(['user', 'disable', '--data', dir, '--username', 'alice']);
    const r = await runCli(['seed', '--data', dir, '--patients', '0', '--demo-password', 'another-demo-pw'], { timeout: 120000 });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /demo accounts: 0 created, 8 updated/);
    assert.ok(!r.stdout.includes('another-demo-pw'), 'password not echoed');
    const rows = await listUsers(dir);
    assert.deepEqual(rows.map((u) => u.username), DEMO);
    assert.ok(rows.every((u) => u.disabled === 'no'), 'seeding re-enables the demo accounts');
    for (const u of DEMO) {
      assert.equal((await checkPassword(dir, u, 'another-demo-pw')).code, 0, u);
    }
    assert.equal((await checkPassword(dir, 'bob', 'veranda-demo')).code, 1);
  });

  it('refuses a short --demo-password', async () => {
    const r = await runCli(['seed', '--data', dir, '--patients', '0', '--demo-password', 'short']);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /at least 8 characters/);
  });
});

describe('user link and unlink', () => {
  let dir;

  before(async () => {
    dir = await makeTempDir();
    await initDataDir(dir);
    await seedDataDir(dir, { patients: 0 });
  });
  after(() => removeDir(dir));

  const user = (...args) => runCli(['user', ...args, '--data', dir]);
  const adminRecords = async () => {
    const r = await runCli(['audit', 'query', '--data', dir, '--node', 'cli', '--format', 'ndjson']);
    assert.equal(r.code, 0, r.stderr);
    return r.stdout.split('\n').filter(Boolean).map((l) => JSON.parse(l))
      .filter((e) => e.type === 'admin.user' || e.type.startsWith('proxy.'));
  };

  it('links a caregiver to another patient through a RelatedPerson, once, and unlinks', async () => {
    const before = (await adminRecords()).length;
    for (let i = 0; i < 2; i++) {
      const r = await user('link', '--username', 'Frank', '--patient', 'bob-child', '--related-person', 'bob-for-child');
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout.trim(), "user 'frank' acts for Patient/bob-child as RelatedPerson/bob-for-child");
    }
    let r = await user('unlink', '--username', 'frank', '--patient', 'bob-child');
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout.trim(), "user 'frank' no longer acts for Patient/bob-child (0 app authorizations for that patient ended)");
    // linking twice made one link: it is gone now
    r = await user('unlink', '--username', 'frank', '--patient', 'bob-child');
    assert.equal(r.code, 1);
    assert.match(r.stderr, /does not act for Patient\/bob-child/);
    // frank's other link (erin) is untouched
    r = await user('unlink', '--username', 'frank', '--patient', 'erin');
    assert.equal(r.code, 0, r.stderr);
    // each change is a record of the cli stream in the patient's record: the account, and the
    // RelatedPerson a link stands on
    const recs = (await adminRecords()).slice(before);
    const frank = { type: 'User', id: 'frank' }, rp = { type: 'RelatedPerson', id: 'bob-for-child' };
    assert.deepEqual(recs.map((e) => [e.type, e.action, e.patient, e.entity, e.agent.role]), [
      ['proxy.approved', 'U', 'bob-child', [frank, rp], 'operator'],
      ['proxy.approved', 'U', 'bob-child', [frank, rp], 'operator'],
      ['proxy.revoked', 'U', 'bob-child', [frank], 'operator'],
      ['proxy.revoked', 'U', 'erin', [frank], 'operator'],
    ], JSON.stringify(recs));
  });

  it('refuses links that make no sense, and changes nothing', async () => {
    const cases = [
      [['link', '--username', 'bob', '--patient', 'alice'], 2, /needs --related-person/],
      [['link', '--username', 'bob', '--related-person', 'bob-for-child'], 2, /needs --patient/],
      [['unlink', '--username', 'bob'], 2, /needs --patient/],
      [['unlink', '--username', 'bob', '--patient', 'alice', '--related-person', 'x'], 2, /unknown flag/],
      [['link', '--username', 'bob', '--patient', 'nobody', '--related-person', 'bob-for-child'], 1, /Patient\/nobody does not exist/],
      [['link', '--username', 'bob', '--patient', 'alice', '--related-person', 'nobody'], 1, /RelatedPerson\/nobody does not exist/],
      [['link', '--username', 'bob', '--patient', '../x', '--related-person', 'bob-for-child'], 2, /not a patient id/],
      [['link', '--username', 'drsmith', '--patient', 'bob-child', '--related-person', 'bob-for-child'], 2, /only patient and caregiver accounts/],
      [['link', '--username', 'nobody', '--patient', 'bob-child', '--related-person', 'bob-for-child'], 1, /nobody/],
      [['link', '--username', 'bob', '--patient', 'alice', '--related-person', 'bob-for-child'], 1, /RelatedPerson\/bob-for-child is not about Patient\/alice/],
      [['link', '--username', 'bob', '--patient', 'bob-self', '--related-person', 'bob-for-child'], 1, /is not about Patient\/bob-self/],
      [['unlink', '--username', 'bob', '--patient', 'bob-self'], 1, /own record: it cannot be unlinked/],
      [['unlink', '--username', 'bob', '--patient', 'alice'], 1, /does not act for Patient\/alice/],
    ];
    const before = (await adminRecords()).length;
    for (const [args, code, re] of cases) {
      const r = await user(...args);
      assert.equal(r.code, code, `${args.join(' ')}: ${r.stderr}`);
      assert.match(r.stderr, re, args.join(' '));
    }
    assert.equal((await adminRecords()).length, before, 'no record of a refused change');
    // bob's two proxy links are intact (an unlink succeeds only for a link that exists)
    for (const [p, rp] of [['bob-child', 'bob-for-child'], ['bob-mother', 'bob-for-mother']]) {
      assert.equal((await user('unlink', '--username', 'bob', '--patient', p)).code, 0, p);
      assert.equal((await user('link', '--username', 'bob', '--patient', p, '--related-person', rp)).code, 0, p);
    }
  });
});
