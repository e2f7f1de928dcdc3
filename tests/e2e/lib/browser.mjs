// Browser helpers for the e2e suites: Debian's chromium driven by
// playwright-core, a static server for the test SMART app
// (tests/e2e/fixtures/smart-app with fhirclient's browser bundle),
// screenshots under build/screenshots and axe-core checks.
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { ROOT } from './server.mjs';

export const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
export const SCREENSHOTS = path.join(ROOT, 'build', 'screenshots');
const APP_DIR = path.join(ROOT, 'tests', 'e2e', 'fixtures', 'smart-app');
const FHIRCLIENT = path.join(ROOT, 'node_modules', 'fhirclient', 'build', 'fhir-client.js');
const AXE = path.join(ROOT, 'node_modules', 'axe-core', 'axe.min.js');

export function browserAvailable() {
  return fs.existsSync(CHROMIUM);
}

export function launchBrowser() {
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

const TYPES = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.json': 'application/json' };

/*
 * Serve the test SMART app on 127.0.0.1 (a free port).  'config' (mutable:
 * the tests fill it once the app is registered) is served as /config.json.
 * Besides the fixture files: /fhir-client.js (fhirclient's browser bundle),
 * /frame.html?src=URL (a page that frames URL) and /control.html (a page
 * that may be framed).  Resolves { origin, port, config, close() }.
 */
export async function startAppServer(config = {}) {
  const files = new Map();
  for (const name of await fsp.readdir(APP_DIR)) files.set('/' + name, path.join(APP_DIR, name));
  files.set('/fhir-client.js', FHIRCLIENT);
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, 'http://x');
    const send = (status, type, body) => {
      res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
      res.end(body);
    };
    if (url.pathname === '/config.json') return send(200, TYPES['.json'], JSON.stringify(config));
    if (url.pathname === '/control.html') return send(200, TYPES['.html'], '<!doctype html><title>control</title><p id="control">framed</p>');
    if (url.pathname === '/frame.html') {
      const src = (url.searchParams.get('src') || '').replace(/[&"<>]/g, (c) => `&#${c.charCodeAt(0)};`);
      return send(200, TYPES['.html'], `<!doctype html><title>frame</title><iframe id="f" title="framed page" src="${src}" width="600" height="400"></iframe>`);
    }
    const file = files.get(url.pathname);
    if (!file) return send(404, 'text/plain', 'not found\n');
    try {
      send(200, TYPES[path.extname(file)] || 'application/octet-stream', await fsp.readFile(file));
    } catch (e) {
      send(500, 'text/plain', String(e));
    }
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    port,
    origin: `http://127.0.0.1:${port}`,
    config,
    close: () => new Promise((resolve) => {
      server.closeAllConnections();
      server.close(resolve);
    }),
  };
}

/* A full-page screenshot into build/screenshots/<name>.png; resolves its path. */
export async function shot(page, name) {
  await fsp.mkdir(SCREENSHOTS, { recursive: true });
  const file = path.join(SCREENSHOTS, `${name}.png`);
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

let axeSource;

/*
 * Run axe-core on the page (injected through the debugging protocol, so
 * the page's CSP does not stop it).  Resolves the violations of impact
 * 'serious' or 'critical', each as a one-line description.
 */
export async function axeSerious(page) {
  axeSource ??= await fsp.readFile(AXE, 'utf8');
  await page.evaluate(axeSource);
  const violations = await page.evaluate(async () => {
    // eslint-disable-next-line no-undef
    const r = await axe.run(document, { resultTypes: ['violations'] });
    return r.violations.map((v) => ({ id: v.id, impact: v.impact, help: v.help, targets: v.nodes.map((n) => n.target.join(' ')) }));
  });
  return violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.impact} ${v.id}: ${v.help} (${v.targets.join(', ')})`);
}
