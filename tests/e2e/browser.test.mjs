// SMART App Launch in a real browser: a small static app built on
// fhirclient (SMART's own JavaScript client) runs in Debian's chromium,
// driven by playwright-core, against the real binary.  Covers standalone
// launch (patient and caregiver with the patient picker), limited consent,
// EHR launch from the account page, denial, accessibility (axe-core and a
// phone-sized viewport) and the headers that keep the pages out of frames.
// Screenshots of each step go to build/screenshots/.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import {
  makeTempDir, removeDir, initDataDir, seedDataDir, runCli, startServer, requireBinary,
} from './lib/server.mjs';
import { browserAvailable, launchBrowser, startAppServer, shot, axeSerious } from './lib/browser.mjs';

const CLIENT_ID = 'browser-test-app';
const APP_NAME = 'Browser Test App';
const TYPES = ['Patient', 'Observation', 'Condition', 'Encounter'];
const STANDALONE_SCOPE = `launch/patient openid fhirUser ${TYPES.map((t) => `patient/${t}.rs`).join(' ')}`;
const EHR_SCOPE = `launch openid fhirUser ${TYPES.map((t) => `patient/${t}.rs`).join(' ')}`;
const LAB = 'http://terminology.hl7.org/CodeSystem/observation-category|laboratory';

const T = { timeout: 60000 }; // per test: a stuck page fails, it does not hang the run
const skip = browserAvailable() ? false : 'chromium is not installed at /usr/bin/chromium';

describe('SMART app in a browser (fhirclient + chromium)', { skip }, () => {
  let dir, srv, app, browser, launching;

  before(async () => {
    requireBinary();
    dir = await makeTempDir();
    launching = launchBrowser();
    launching.catch(() => {}); // awaited below
    app = await startAppServer();
    await initDataDir(dir);
    await seedDataDir(dir, { patients: 0 });
    const r = await runCli(['client', 'add', '--data', dir, '--client-id', CLIENT_ID, '--name', APP_NAME, '--public',
      '--redirect-uri', `${app.origin}/index.html`, '--launch-url', `${app.origin}/launch.html`,
      '--origin', app.origin, '--scope', `launch ${STANDALONE_SCOPE}`]);
    assert.equal(r.code, 0, r.stderr);
    srv = await startServer({ dataDir: dir });
    Object.assign(app.config, { clientId: CLIENT_ID, standaloneScope: STANDALONE_SCOPE, ehrScope: EHR_SCOPE });
    browser = await launching;
  }, { timeout: 120000 });

  after(async () => {
    browser ??= await launching?.catch(() => null);
    await browser?.close();
    await app?.close();
    await srv?.stop();
    await removeDir(dir);
  });

  // A new browser context (own cookies and sessionStorage) with a page; 'errors' collects page errors.
  async function open(options = {}) {
    const context = await browser.newContext(options);
    const page = await context.newPage();
    page.errors = [];
    page.on('pageerror', (e) => page.errors.push(String(e)));
    page.on('console', (m) => m.type() === 'error' && page.errors.push(m.text()));
    return { context, page };
  }

  // Start the app's standalone launch and wait for Veranda's sign-in page; resolves the page's response.
  async function startStandalone(page) {
    const signin = page.waitForResponse((r) => r.url().startsWith(`${srv.baseUrl}/oauth/authorize`) && r.request().isNavigationRequest());
    await page.goto(`${app.origin}/launch.html?iss=${encodeURIComponent(srv.fhirBase)}`);
    const resp = await signin;
    await page.getByRole('button', { name: 'Sign in' }).waitFor();
    return resp;
  }

  // Fill and send the sign-in form; resolves the response of the page that follows.
  async function signIn(page, username) {
    await page.locator('input[name="username"]').fill(username);
    await page.locator('input[name="password"]').fill('veranda-demo');
    const next = page.waitForResponse((r) => r.request().isNavigationRequest() && r.request().method() === 'GET' && r.status() === 200);
    await page.getByRole('button', { name: 'Sign in' }).click();
    return next;
  }

  // Wait for the app's page to finish (data-state done or failed); resolves its fields.
  async function appResult(page) {
    await page.waitForURL(`${app.origin}/index.html**`);
    await page.waitForSelector('body[data-state]', { timeout: 15000 });
    const read = (id) => page.locator(`#${id}`).textContent();
    const ids = ['status', 'error', 'patient-name', 'patient-id', 'lab-count', 'lab-subjects', 'vitals-count', 'condition-count', 'scope', 'landing'];
    const out = { state: await page.locator('body').getAttribute('data-state') };
    for (const id of ids) out[id] = await read(id);
    out.tokenResponse = await page.evaluate(() => window.smartClient?.state.tokenResponse ?? null);
    out.errors = page.errors;
    return out;
  }

  // The patient's display name as the app writes it, from the backend's read.
  async function nameOf(id) {
    const r = await srv.fhirFetch(`/Patient/${id}`);
    assert.equal(r.status, 200, r.text);
    const n = r.json.name[0];
    return n.text || [...(n.given || []), n.family].filter(Boolean).join(' ');
  }

  it('standalone launch: alice signs in, allows, and the app reads her record', T, async () => {
    const { context, page } = await open();
    try {
      const authorize = new URL((await startStandalone(page)).url());
      assert.equal(authorize.searchParams.get('code_challenge_method'), 'S256');
      assert.equal(authorize.searchParams.get('aud'), srv.fhirBase);
      assert.equal(authorize.searchParams.get('client_id'), CLIENT_ID);
      assert.match(await page.locator('main').textContent(), new RegExp(APP_NAME));
      await shot(page, '01-standalone-signin');
      await signIn(page, 'alice');
      await page.getByRole('button', { name: 'Allow' }).waitFor();
      await shot(page, '02-standalone-consent');
      await page.getByRole('button', { name: 'Allow' }).click();
      const res = await appResult(page);
      await shot(page, '03-standalone-app');
      assert.equal(res.state, 'done', JSON.stringify(res));
      assert.equal(res['patient-id'], 'alice');
      assert.equal(res['patient-name'], await nameOf('alice'));
      assert.ok(Number(res['lab-count']) > 0, `lab count: ${res['lab-count']}`);
      assert.equal(res['lab-subjects'], 'Patient/alice');
      const back = new URL(res.landing);
      assert.equal(back.searchParams.get('iss'), srv.baseUrl, 'RFC 9207 iss on the redirect');
      assert.equal(res.tokenResponse.patient, 'alice');
      assert.equal(res.tokenResponse.token_type, 'Bearer');
      assert.equal(res.tokenResponse.need_patient_banner, true);
      assert.equal(res.tokenResponse.smart_style_url, `${srv.baseUrl}/smart-style.json`);
      // what the app just did, as alice sees it on "Who saw my record"
      await page.goto(`${srv.baseUrl}/account/access`);
      await page.getByRole('heading', { name: 'Who saw your record' }).waitFor();
      const lines = await page.locator('ol.log li').allTextContents();
      const flat = lines.map((l) => l.replace(/\s+/g, ' ').trim());
      assert.ok(flat.some((l) => l.includes(`You searched your test results and measurements through the app ${APP_NAME}`)), flat.join('\n'));
      assert.ok(flat.some((l) => l.includes(`The app ${APP_NAME} received access to your record`)), flat.join('\n'));
      await shot(page, '18-access-history');
    } finally {
      await context.close();
    }
  });

  it('caregiver: bob picks bob-child in the patient picker and the app opens her record', T, async () => {
    const { context, page } = await open();
    try {
      await startStandalone(page);
      await signIn(page, 'bob');
      await page.getByRole('button', { name: 'Continue' }).waitFor();
      const choices = await page.locator('input[type="radio"][name="patient"]').evaluateAll((l) => l.map((i) => i.value));
      assert.ok(choices.includes('bob-child') && choices.includes('bob-mother'), `picker offers ${choices}`);
      assert.ok(!choices.includes('alice'), `picker offers ${choices}`);
      await page.getByRole('radio', { name: /bob-child/ }).check();
      await shot(page, '04-caregiver-picker');
      await page.getByRole('button', { name: 'Continue' }).click();
      await page.getByRole('button', { name: 'Allow' }).waitFor();
      assert.match(await page.locator('main').textContent(), new RegExp(await nameOf('bob-child')), 'the consent screen names whose record by name');
      await shot(page, '05-caregiver-consent');
      await page.getByRole('button', { name: 'Allow' }).click();
      const res = await appResult(page);
      await shot(page, '06-caregiver-app');
      assert.equal(res.state, 'done', JSON.stringify(res));
      assert.equal(res['patient-id'], 'bob-child');
      assert.equal(res['patient-name'], await nameOf('bob-child'));
      assert.equal(res.tokenResponse.patient, 'bob-child');
      assert.ok(Number(res['lab-count']) > 0, `lab count: ${res['lab-count']}`);
      assert.equal(res['lab-subjects'], 'Patient/bob-child');
    } finally {
      await context.close();
    }
  });

  it('limited consent: an unticked type and a chosen category are exactly what the token grants', T, async () => {
    const { context, page } = await open();
    try {
      await startStandalone(page);
      await signIn(page, 'alice');
      await page.getByRole('button', { name: 'Allow' }).waitFor();
      await page.locator('input[name="type"][value="Condition"]').uncheck();
      await page.locator(`input[name="cat"][value="Observation ${LAB}"]`).check();
      await shot(page, '07-limited-consent');
      await page.getByRole('button', { name: 'Allow' }).click();
      const res = await appResult(page);
      await shot(page, '08-limited-app');
      assert.equal(res.state, 'done', JSON.stringify(res));
      const granted = res.tokenResponse.scope.split(' ').sort();
      assert.deepEqual(granted, ['fhirUser', 'launch/patient', 'openid', 'patient/Encounter.rs',
        `patient/Observation.rs?category=${LAB}`, 'patient/Patient.rs'].sort());
      assert.equal(res.scope, res.tokenResponse.scope);
      assert.ok(Number(res['lab-count']) > 0, `lab count: ${res['lab-count']}`);
      assert.equal(res['vitals-count'], '0', 'vital signs are outside the granted category');
      assert.equal(res['condition-count'], 'error 403', 'Condition was unticked');

      // the same token outside the browser: a vital-signs observation reads as absent
      const token = res.tokenResponse.access_token;
      const vs = await srv.fhirFetch('/Observation?patient=alice&category=vital-signs&_count=1');
      assert.equal(vs.status, 200);
      const vid = vs.json.entry?.[0]?.resource.id;
      assert.ok(vid, 'alice has vital signs');
      const r = await srv.fhirFetch(`/Observation/${vid}`, { headers: { authorization: `Bearer ${token}` } });
      assert.equal(r.status, 404, r.text);
      const c = await srv.fhirFetch('/Condition?patient=alice', { headers: { authorization: `Bearer ${token}` } });
      assert.equal(c.status, 403, c.text);
      assert.match(c.headers.get('www-authenticate') || '', /insufficient_scope/);
    } finally {
      await context.close();
    }
  });

  // drsmith signs in at /signin and fills the account page's "Open an app for a patient" form.
  async function fillLaunchForm(page, patient, encounter) {
    await page.goto(`${srv.baseUrl}/signin`);
    await signIn(page, 'drsmith');
    await page.waitForURL(`${srv.baseUrl}/account`);
    await page.getByLabel('App', { exact: true }).selectOption({ label: APP_NAME });
    await page.getByLabel('Patient id').fill(patient);
    if (encounter) await page.getByLabel(/Encounter id/).fill(encounter);
  }

  /*
   * Click "Open app".  Resolves { followed: true, location } when the
   * browser went on to the app's launch URL, else { followed: false,
   * refused } with the browser's reason.
   */
  async function openApp(page) {
    let onConsole, onFailed;
    const refused = new Promise((resolve) => {
      onConsole = (m) => /Content Security Policy/i.test(m.text()) && resolve(m.text());
      onFailed = (r) => r.url() === `${srv.baseUrl}/oauth/launch` && setTimeout(() => resolve(`POST /oauth/launch failed: ${r.failure()?.errorText}`), 200);
      page.on('console', onConsole);
      page.on('requestfailed', onFailed);
    });
    const followed = page.waitForRequest((r) => r.url().startsWith(`${app.origin}/launch.html`), { timeout: 10000 })
      .then((r) => ({ followed: true, location: r.url() }), () => ({ followed: false, refused: 'no navigation within 10 s' }));
    await page.getByRole('button', { name: 'Open app' }).click();
    const out = await Promise.race([followed, refused.then((text) => ({ followed: false, refused: text }))]);
    page.off('console', onConsole);
    page.off('requestfailed', onFailed);
    return out;
  }

  // The account page's launch form sent outside the page (the context's cookies): the server's answer.
  async function postLaunchForm(page) {
    const form = page.locator('form[action="/oauth/launch"]');
    const r = await page.context().request.post(`${srv.baseUrl}/oauth/launch`, {
      form: {
        csrf: await form.locator('input[name="csrf"]').inputValue(),
        client_id: await form.locator('select[name="client_id"]').inputValue(),
        patient: await form.locator('input[name="patient"]').inputValue(),
        encounter: await form.locator('input[name="encounter"]').inputValue(),
      },
      maxRedirects: 0,
    });
    return { status: r.status(), location: r.headers().location };
  }

  it('EHR launch: drsmith opens the app for alice, who is in context with her encounter', T, async () => {
    const enc = await srv.fhirFetch('/Encounter?patient=alice&_count=1');
    assert.equal(enc.status, 200, enc.text);
    const encounter = enc.json.entry?.[0]?.resource.id;
    assert.ok(encounter, 'alice has an encounter');
    const { context, page } = await open();
    try {
      await fillLaunchForm(page, 'alice', encounter);
      await shot(page, '09-ehr-account');
      let launch = await openApp(page);
      if (!launch.followed) {
        // the browser refused the redirect (see the next test): take the server's answer and go on as it would
        const posted = await postLaunchForm(page);
        assert.equal(posted.status, 303);
        launch = posted;
        await page.goto(launch.location);
      }
      const launchUrl = new URL(launch.location);
      assert.equal(launchUrl.origin + launchUrl.pathname, `${app.origin}/launch.html`);
      assert.equal(launchUrl.searchParams.get('iss'), srv.fhirBase);
      assert.ok(launchUrl.searchParams.get('launch'), 'a launch parameter');
      await page.getByRole('button', { name: 'Allow' }).waitFor();
      assert.match(await page.locator('main').textContent(), /Alice Walker/, 'the consent screen names the patient');
      await shot(page, '10-ehr-consent');
      await page.getByRole('button', { name: 'Allow' }).click();
      const res = await appResult(page);
      await shot(page, '11-ehr-app');
      assert.equal(res.state, 'done', JSON.stringify(res));
      assert.equal(res['patient-id'], 'alice');
      assert.equal(res['patient-name'], await nameOf('alice'));
      const tr = res.tokenResponse;
      assert.equal(tr.patient, 'alice');
      assert.equal(tr.encounter, encounter);
      assert.equal(typeof tr.need_patient_banner, 'boolean');
      assert.equal(tr.smart_style_url, `${srv.baseUrl}/smart-style.json`);
      assert.ok(tr.scope.split(' ').includes('launch'), tr.scope);
      const style = await srv.fetch('/smart-style.json');
      assert.equal(style.status, 200);
      assert.ok(style.json.color_background, style.text);
    } finally {
      await context.close();
    }
  });

  it('EHR launch: the browser follows "Open app" to the app (the account page CSP allows the redirect)', T, async () => {
    const { context, page } = await open();
    try {
      await fillLaunchForm(page, 'alice');
      const launch = await openApp(page);
      if (!launch.followed) {
        await shot(page, '12-ehr-open-app-refused');
        const posted = await postLaunchForm(page);
        assert.fail(`POST /oauth/launch answers ${posted.status} to ${posted.location}, but the browser stays on ${page.url()}: ${launch.refused}` +
          ` (the browser names the form's URL; what the page's form-action refuses is the redirect to ${app.origin})`);
      }
      assert.equal(new URL(launch.location).pathname, '/launch.html');
    } finally {
      await context.close();
    }
  });

  it('a cross-site form POST to the authorization endpoint (as test kits send it) goes through sign-in and consent to a code', T, async () => {
    const { context, page } = await open();
    try {
      const verifier = crypto.randomBytes(32).toString('base64url');
      const fields = {
        response_type: 'code', client_id: CLIENT_ID, redirect_uri: `${app.origin}/index.html`, scope: STANDALONE_SCOPE,
        state: 'cross-site-state', aud: srv.fhirBase, code_challenge_method: 'S256',
        code_challenge: crypto.createHash('sha256').update(verifier).digest('base64url'),
      };
      // a page of no site of Veranda's (about:blank, origin null) posts the request, as a tester's page would
      await page.goto('about:blank');
      await page.setContent(`<form method="post" action="${srv.baseUrl}/oauth/authorize">${Object.entries(fields)
        .map(([k, v]) => `<input type="hidden" name="${k}" value="${v.replace(/"/g, '&quot;')}">`).join('')}</form>`);
      const signin = page.waitForResponse((r) => r.url().startsWith(`${srv.baseUrl}/oauth/`) && r.request().isNavigationRequest());
      await page.evaluate(() => document.forms[0].submit());
      await signin;
      await page.getByRole('button', { name: 'Sign in' }).waitFor();
      await signIn(page, 'alice');
      // the URL Veranda sent the browser to (the app's page may tidy its address bar afterwards)
      const landing = page.waitForRequest((r) => r.url().startsWith(`${app.origin}/index.html`));
      await page.getByRole('button', { name: 'Allow' }).click();
      const back = new URL((await landing).url());
      await page.waitForURL(`${app.origin}/index.html**`);
      await shot(page, '17-cross-site-post-landing');
      assert.equal(back.searchParams.get('state'), 'cross-site-state');
      assert.equal(back.searchParams.get('iss'), srv.baseUrl);
      const code = back.searchParams.get('code');
      assert.ok(code, `a code: ${page.url()}`);
      const r = await fetch(`${srv.baseUrl}/oauth/token`, { method: 'POST', body: new URLSearchParams({
        grant_type: 'authorization_code', code, redirect_uri: `${app.origin}/index.html`, client_id: CLIENT_ID, code_verifier: verifier }) });
      assert.equal(r.status, 200, await r.text());
    } finally {
      await context.close();
    }
  });

  it('deny: the app gets error=access_denied and fhirclient reports it', T, async () => {
    const { context, page } = await open();
    try {
      await startStandalone(page);
      await signIn(page, 'alice');
      await page.getByRole('button', { name: 'Deny' }).click();
      const res = await appResult(page);
      await shot(page, '13-deny-app');
      assert.equal(res.state, 'failed', JSON.stringify(res));
      assert.match(res.error, /access_denied/);
      const back = new URL(res.landing);
      assert.equal(back.searchParams.get('error'), 'access_denied');
      assert.ok(back.searchParams.get('state'), 'state comes back');
      assert.equal(back.searchParams.get('iss'), srv.baseUrl);
      assert.equal(back.searchParams.get('code'), null);
      assert.equal(res.tokenResponse, null);
    } finally {
      await context.close();
    }
  });

  it('accessibility: axe finds nothing serious on the sign-in, picker, consent, account and access-history pages', T, async () => {
    const { context, page } = await open();
    const found = [];
    const check = async (label) => {
      for (const v of await axeSerious(page)) found.push(`${label}: ${v}`);
    };
    try {
      await startStandalone(page);
      await check('sign-in');
      await signIn(page, 'bob');
      await page.getByRole('button', { name: 'Continue' }).waitFor();
      await check('picker');
      await page.getByRole('radio', { name: /bob-mother/ }).check();
      await page.getByRole('button', { name: 'Continue' }).click();
      await page.getByRole('button', { name: 'Allow' }).waitFor();
      await check('consent');
      await page.goto(`${srv.baseUrl}/account`);
      await check('account');
      await page.goto(`${srv.baseUrl}/account/access?patient=bob-mother`);
      await check('access history');
      assert.deepEqual(found, [], found.join('\n'));
    } finally {
      await context.close();
    }
  });

  it('a phone-sized viewport shows Sign in and Allow without horizontal scrolling', T, async () => {
    const { context, page } = await open({ viewport: { width: 390, height: 844 }, isMobile: true, hasTouch: true });
    const fits = async (name) => {
      const button = page.getByRole('button', { name });
      await button.scrollIntoViewIfNeeded();
      assert.ok(await button.isVisible(), `${name} is visible`);
      const box = await button.boundingBox();
      const { scrollWidth, innerWidth } = await page.evaluate(() => ({
        scrollWidth: document.documentElement.scrollWidth, innerWidth: window.innerWidth,
      }));
      assert.ok(scrollWidth <= innerWidth, `page is ${scrollWidth} px wide in a ${innerWidth} px viewport`);
      assert.ok(box.x >= 0 && box.x + box.width <= 390, `${name} button spans x ${box.x}..${box.x + box.width}`);
    };
    try {
      await startStandalone(page);
      await fits('Sign in');
      await shot(page, '14-mobile-signin');
      await signIn(page, 'alice');
      await page.getByRole('button', { name: 'Allow' }).waitFor();
      await fits('Allow');
      await fits('Deny');
      await shot(page, '15-mobile-consent');
    } finally {
      await context.close();
    }
  });

  it('security headers: the sign-in and consent pages forbid framing, and the browser obeys', T, async () => {
    const { context, page } = await open();
    const blocked = [];
    page.on('console', (m) => /frame-ancestors|X-Frame-Options/i.test(m.text()) && blocked.push(m.text()));
    const strict = (resp, label) => {
      const h = resp.headers();
      assert.match(h['content-security-policy'] || '', /frame-ancestors 'none'/, `${label} CSP: ${h['content-security-policy']}`);
      assert.equal(h['x-frame-options'], 'DENY', `${label} X-Frame-Options`);
    };
    // frame 'src' from the app's origin; resolves the child frame once loaded
    const framed = async (src) => {
      await page.goto(`${app.origin}/frame.html?src=${encodeURIComponent(src)}`);
      await page.waitForLoadState('load');
      return page.frames().find((f) => f !== page.mainFrame());
    };
    try {
      strict(await page.goto(`${srv.baseUrl}/signin`), '/signin');
      strict(await startStandalone(page), 'authorize (sign-in)');
      const consent = await signIn(page, 'alice');
      await page.getByRole('button', { name: 'Allow' }).waitFor();
      strict(consent, 'consent');
      const req = await page.locator('input[name="req"]').inputValue();

      // control: a page without those headers does load in the same frame
      const control = await framed(`${app.origin}/control.html`);
      assert.equal(await control.locator('#control').count(), 1, 'the control page loads in a frame');

      for (const [label, url, marker] of [
        ['sign-in', `${srv.baseUrl}/signin`, 'input[name="password"], input[name="username"]'],
        ['consent', `${srv.baseUrl}/oauth/continue?req=${req}`, 'button'],
      ]) {
        const before = blocked.length;
        const f = await framed(url);
        if (label === 'consent') await shot(page, '16-framed-consent-blocked');
        assert.ok(f, `${label}: a child frame exists`);
        assert.notEqual(f.url(), url, `${label}: the frame did not stay on ${url}`);
        assert.equal(await f.locator(marker).count(), 0, `${label}: nothing of the page shows in the frame`);
        assert.ok(blocked.length > before, `${label}: the browser reported the refusal`);
      }
    } finally {
      await context.close();
    }
  });
  it('a user changes their password on the account page, and another browser of theirs is signed out', T, async () => {
    const r = await runCli(['user', 'add', '--data', dir, '--username', 'paula', '--role', 'support', '--password-stdin'],
      { input: 'veranda-demo\n' });
    assert.equal(r.code, 0, r.stderr);
    const other = await open();
    const { context, page } = await open();
    try {
      for (const p of [other.page, page]) {
        await p.goto(`${srv.baseUrl}/signin`);
        await signIn(p, 'paula');
        await p.waitForURL(`${srv.baseUrl}/account`);
      }
      await page.getByLabel('Current password').fill('veranda-demo');
      await page.getByLabel(/^New password \(/).fill('paulas-new-password');
      await page.getByLabel('New password again').fill('paulas-new-password');
      assert.equal(await page.getByLabel(/Also remove every app's access/).isChecked(), true, 'apps are signed out unless unticked');
      await page.getByRole('button', { name: 'Change password' }).click();
      await page.waitForURL(`${srv.baseUrl}/account?changed=password-apps`);
      const notice = page.getByRole('status');
      assert.match(await notice.textContent(), /Your password is changed\..*every app you had allowed must ask/);
      await shot(page, '17-password-changed');
      await other.page.reload();
      assert.equal(new URL(other.page.url()).pathname, '/signin', 'the other browser is back at the sign-in page');
      assert.deepEqual([...page.errors, ...other.page.errors], []);
    } finally {
      await context.close();
      await other.context.close();
    }
  });
});
