// soak.mjs - a bounded soak run (`node bench/soak.mjs`, after `make` and
// `npm ci`): one `veranda serve` with its default settings (audit sync,
// tokens required) under a steady mix of the requests real clients send,
// for BENCH_SOAK_SECS seconds, while the script samples the process every
// second: resident memory, threads, open descriptors and the sizes of the
// database files.  It answers "does the server keep running, answer every
// request as it should and stay within its memory under sustained use".
//
// The mix, from CONCURRENCY loops (each picks the next request at random
// by weight): reads, searches and $everything pages with a patient's
// token (alice's, from the real sign-in and consent flow), creates and
// updates with a backend token, refreshes (each rotates the token),
// introspection by a confidential client, new authorizations (sign-in,
// consent, code exchange: each a new session and grant), and requests
// that must be refused (a forged token, a bad search parameter, malformed
// JSON, a missing resource, another patient's data).  Every answer's
// status is checked against what that request must get; any other status,
// a server that dies, or `veranda audit verify` failing afterwards makes
// the exit status non-zero.
//
// Memory: the report gives the anonymous and file-backed resident memory
// at the start, after the warm-up (the first fifth of the run) and at the
// end, the growth of anonymous memory per 10,000 requests over the second
// half (least squares over the samples), and the peak.  The figures are
// printed, not judged: the run writes all the time (creates, updates and
// an audit record per request), and SQLite's page caches (up to 32 MiB
// per connection) and the resource cache fill as the data grows, so some
// growth is expected; a leak shows as growth that does not level off in a
// longer run, and as a report when the run uses the sanitizer build
// (VERANDA_BIN=build/san/veranda: LeakSanitizer checks at exit).
//
// Environment: BENCH_SOAK_SECS (default 60), BENCH_SOAK_CONCURRENCY (8),
// VERANDA_BIN (default build/veranda).  Output also goes to
// bench/results/soak.txt and soak.json.
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runCli, startServer, sleep } from '../tests/e2e/lib/server.mjs';
import { Browser, authorize, basic, postForm, redeem, registerClient } from '../tests/e2e/lib/oauth.mjs';

const HERE = path.dirname(fileURLToPath(import.meta.url));
const SECS = Math.max(5, Number(process.env.BENCH_SOAK_SECS || 60));
const CONCURRENCY = Math.max(1, Number(process.env.BENCH_SOAK_CONCURRENCY || 8));
const CLIENT_ID = 'soak-app';
const REDIRECT = 'http://127.0.0.1:9999/cb';
const SCOPE = 'launch/patient openid fhirUser offline_access patient/*.rs';
const RS_ID = 'soak-rs', RS_SECRET = 'soak-rs-secret-0123456789abcdef0123456789';

const T0 = Date.now();
const log = (msg) => console.log(`[${`${((Date.now() - T0) / 1000).toFixed(0)} s`.padStart(5)}] ${msg}`);

/* ---- sampling /proc ---- */

function procSample(pid, dataDir) {
	const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
	const kib = (k) => Number((status.match(new RegExp(`^${k}:\\s+(\\d+)`, 'm')) || [])[1] || 0);
	const size = (f) => {
		try {
			return fs.statSync(path.join(dataDir, f)).size;
		} catch {
			return 0;
		}
	};
	return {
		t: (Date.now() - T0) / 1000,
		rssKiB: kib('VmRSS'),
		anonKiB: kib('RssAnon'),
		fileKiB: kib('RssFile') + kib('RssShmem'),
		hwmKiB: kib('VmHWM'),
		threads: kib('Threads'),
		fds: fs.readdirSync(`/proc/${pid}/fd`).length,
		db: size('veranda.db') + size('veranda.db-wal'),
		wal: size('veranda.db-wal'),
		audit: size('audit.db') + size('audit.db-wal'),
	};
}

/* Least-squares slope of y over x. */
function slope(xs, ys) {
	const n = xs.length;
	if (n < 2)
		return 0;
	const mx = xs.reduce((a, b) => a + b, 0) / n, my = ys.reduce((a, b) => a + b, 0) / n;
	let num = 0, den = 0;
	for (let i = 0; i < n; i++) {
		num += (xs[i] - mx) * (ys[i] - my);
		den += (xs[i] - mx) ** 2;
	}
	return den ? num / den : 0;
}

/* ---- the run ---- */

async function patientToken(srv) {
	const b = new Browser(srv.baseUrl);
	const a = await authorize(b, srv, { clientId: CLIENT_ID, redirectUri: REDIRECT, scope: SCOPE, user: 'alice' });
	if (!a.code)
		throw new Error(`authorization gave no code (${a.error || a.walk.pages.join(' → ')})`);
	const t = await redeem(srv, { code: a.code, verifier: a.verifier, redirectUri: REDIRECT, clientId: CLIENT_ID });
	if (t.status !== 200 || !t.json.access_token || !t.json.refresh_token)
		throw new Error(`code exchange: ${t.status} ${t.text.slice(0, 200)}`);
	return t.json;
}

function observation(patient, value) {
	return JSON.stringify({
		resourceType: 'Observation', status: 'final',
		category: [{ coding: [{ system: 'http://terminology.hl7.org/CodeSystem/observation-category', code: 'vital-signs' }] }],
		code: { coding: [{ system: 'http://loinc.org', code: '8867-4', display: 'Heart rate' }] },
		subject: { reference: `Patient/${patient}` },
		effectiveDateTime: new Date().toISOString(),
		valueQuantity: { value, unit: '/min', system: 'http://unitsofmeasure.org', code: '/min' },
	});
}

async function main() {
	log(`soak: ${SECS} s, ${CONCURRENCY} concurrent loops`);
	const srv = await startServer({ seed: true, patients: 20, args: ['--log-level', 'warn'] });
	const failures = [];
	const counts = new Map();
	let requests = 0, stopping = false;
	try {
		await registerClient(srv.dataDir, { clientId: CLIENT_ID, public: true, redirectUris: [REDIRECT] });
		await registerClient(srv.dataDir, { clientId: RS_ID, secret: RS_SECRET, redirectUris: ['https://rs.example/cb'] });
		const backend = srv.authHeaders.authorization;
		let tok = await patientToken(srv);
		const alice = tok.patient;
		const fhir = (p, init = {}) => fetch(`${srv.fhirBase}/${p}`, init);
		const bearer = (t) => ({ authorization: `Bearer ${t}`, accept: 'application/fhir+json' });

		/* alice's resources to read, another patient to be refused */
		const mine = await (await fhir(`Observation?patient=${alice}&_count=50&_elements=id`, { headers: bearer(tok.access_token) })).json();
		const obsIds = (mine.entry || []).map((e) => e.resource.id);
		if (!obsIds.length)
			throw new Error(`alice has no Observations to read`);
		const others = await (await fhir('Patient?_count=5&_elements=id', { headers: { authorization: backend } })).json();
		const other = others.entry.map((e) => e.resource.id).find((id) => id !== alice);
		const created = await fhir('Observation', { method: 'POST', headers: { authorization: backend, 'content-type': 'application/fhir+json' }, body: observation(other, 60) });
		if (created.status !== 201)
			throw new Error(`create: ${created.status}`);
		const updId = (await created.json()).id;

		/* [name, weight, request → Response, the status it must get] */
		const pick = (a) => a[Math.floor(Math.random() * a.length)];
		let refreshing = null;
		const ops = [
			['read', 30, () => fhir(`Observation/${pick(obsIds)}`, { headers: bearer(tok.access_token) }), 200],
			['search labs', 15, () => fhir(`Observation?patient=${alice}&category=laboratory&_sort=-date&_count=20`, { headers: bearer(tok.access_token) }), 200],
			['$everything', 5, () => fhir(`Patient/${alice}/$everything?_count=50`, { headers: bearer(tok.access_token) }), 200],
			['create', 8, () => fhir('Observation', { method: 'POST', headers: { authorization: backend, 'content-type': 'application/fhir+json' }, body: observation(other, 50 + Math.floor(Math.random() * 60)) }), 201],
			['update', 4, () => fhir(`Observation/${updId}`, { method: 'PUT', headers: { authorization: backend, 'content-type': 'application/fhir+json' }, body: JSON.stringify({ ...JSON.parse(observation(other, 70)), id: updId }) }), 200],
			['introspect', 5, () => fetch(`${srv.baseUrl}/oauth/introspect`, { method: 'POST', headers: { authorization: basic(RS_ID, RS_SECRET), 'content-type': 'application/x-www-form-urlencoded' }, body: new URLSearchParams({ token: tok.access_token }) }), 200],
			['refresh', 4, async () => {
				/* one chain: a rotated token is good once, so refreshes take turns */
				while (refreshing)
					await refreshing;
				let done;
				refreshing = new Promise((r) => (done = r));
				try {
					const r = await postForm(`${srv.baseUrl}/oauth/token`, { grant_type: 'refresh_token', refresh_token: tok.refresh_token, client_id: CLIENT_ID });
					if (r.status === 200)
						tok = { ...tok, ...r.json };
					return { status: r.status, arrayBuffer: async () => null };
				} finally {
					refreshing = null;
					done();
				}
			}, 200],
			['authorize', 1, async () => {
				const b = new Browser(srv.baseUrl);
				const a = await authorize(b, srv, { clientId: CLIENT_ID, redirectUri: REDIRECT, scope: SCOPE, user: 'alice' });
				if (!a.code)
					return { status: 0, arrayBuffer: async () => null };
				const t = await redeem(srv, { code: a.code, verifier: a.verifier, redirectUri: REDIRECT, clientId: CLIENT_ID });
				return { status: t.status, arrayBuffer: async () => null };
			}, 200],
			['forged token', 4, () => fhir(`Observation/${pick(obsIds)}`, { headers: bearer(`${tok.access_token.slice(0, -4)}AAAA`) }), 401],
			['bad parameter', 3, () => fhir(`Observation?patient=${alice}&date=2023-13-45`, { headers: bearer(tok.access_token) }), 400],
			['malformed JSON', 3, () => fhir('Observation', { method: 'POST', headers: { authorization: backend, 'content-type': 'application/fhir+json' }, body: '{"resourceType":"Observation",' }), 400],
			['missing', 3, () => fhir(`Observation/no-such-${Math.random().toString(36).slice(2)}`, { headers: { authorization: backend } }), 404],
			['other patient', 3, () => fhir(`Patient/${other}`, { headers: bearer(tok.access_token) }), 404],
		];
		const total = ops.reduce((a, o) => a + o[1], 0);
		const choose = () => {
			let r = Math.random() * total;
			for (const o of ops)
				if ((r -= o[1]) < 0)
					return o;
			return ops[0];
		};

		const samples = [];
		const sampler = setInterval(() => {
			try {
				samples.push({ ...procSample(srv.pid, srv.dataDir), requests });
			} catch (e) {
				failures.push(`sampling: ${e.message}`);
			}
		}, 1000);
		samples.push({ ...procSample(srv.pid, srv.dataDir), requests });

		const loop = async () => {
			while (!stopping) {
				const [name, , send, want] = choose();
				let status;
				try {
					const res = await send();
					await res.arrayBuffer();
					status = res.status;
				} catch (e) {
					status = `error ${e.message}`;
				}
				requests++;
				const c = counts.get(name) || { n: 0, bad: 0 };
				c.n++;
				if (status !== want) {
					c.bad++;
					if (failures.length < 20)
						failures.push(`${name}: got ${status}, want ${want}`);
				}
				counts.set(name, c);
			}
		};
		const end = sleep(SECS * 1000).then(() => (stopping = true));
		await Promise.all([end, ...Array.from({ length: CONCURRENCY }, loop)]);
		clearInterval(sampler);
		samples.push({ ...procSample(srv.pid, srv.dataDir), requests });
		await report(srv, samples, counts, requests, failures);
	} finally {
		stopping = true;
		const dataDir = srv.dataDir;
		await srv.stop({ keepData: true });
		const v = await runCli(['audit', 'verify', '--data', dataDir], { timeout: 300000 });
		if (v.code !== 0)
			failures.push(`audit verify: ${v.code} ${v.stderr.trim().slice(0, 300)}`);
		else
			log(`audit verify: ${v.stdout.trim().split('\n').pop()}`);
		fs.rmSync(dataDir, { recursive: true, force: true });
	}
	if (failures.length) {
		console.log(`\nFAILED:\n  ${failures.join('\n  ')}`);
		process.exitCode = 1;
	}
}

async function report(srv, samples, counts, requests, failures) {
	const mib = (k) => (k / 1024).toFixed(1);
	const warm = samples.filter((s) => s.t >= samples[samples.length - 1].t / 5);
	const half = samples.filter((s) => s.t >= samples[samples.length - 1].t / 2);
	const first = warm[0] || samples[0], last = samples[samples.length - 1];
	const growth = slope(half.map((s) => s.requests), half.map((s) => s.anonKiB)) * 10000;
	const max = (k) => Math.max(...samples.map((s) => s[k]));
	const L = [];
	L.push(`soak: ${SECS} s at ${CONCURRENCY} concurrent loops, ${requests} requests (${(requests / SECS).toFixed(0)}/s), server pid ${srv.pid}`);
	L.push(`requests by kind: ${[...counts].map(([k, c]) => `${k} ${c.n}${c.bad ? ` (${c.bad} wrong)` : ''}`).join(', ')}`);
	const mem = (s) => `${mib(s.anonKiB)} MiB anonymous + ${mib(s.fileKiB)} MiB of mapped files`;
	L.push(`resident memory: ${mem(samples[0])} at the start; ${mem(first)} after the warm-up (${first.t.toFixed(0)} s, ${first.requests} requests); ` +
		`${mem(last)} at the end; peak resident ${mib(max('hwmKiB'))} MiB`);
	L.push(`anonymous memory over the second half: ${growth >= 0 ? '+' : ''}${growth.toFixed(0)} KiB per 10,000 requests`);
	L.push(`threads ${samples[0].threads} → ${last.threads} (max ${max('threads')}); open descriptors ${samples[0].fds} → ${last.fds} (max ${max('fds')})`);
	L.push(`veranda.db + WAL ${mib(samples[0].db / 1024)} → ${mib(last.db / 1024)} MiB (WAL at most ${mib(max('wal') / 1024)} MiB); audit.db ${mib(samples[0].audit / 1024)} → ${mib(last.audit / 1024)} MiB`);
	L.push(failures.length ? `wrong answers or errors: ${failures.length}` : 'every answer had the status its request must get');
	console.log(`\n${L.join('\n')}`);
	const out = path.join(HERE, 'results');
	fs.mkdirSync(out, { recursive: true });
	fs.writeFileSync(path.join(out, 'soak.txt'), `${L.join('\n')}\n`);
	fs.writeFileSync(path.join(out, 'soak.json'), JSON.stringify({ secs: SECS, concurrency: CONCURRENCY, requests, counts: Object.fromEntries(counts), samples, growthKiBPer10k: growth, failures }, null, 1));
}

main().catch((e) => {
	console.error(`soak: ${e.stack || e.message}`);
	process.exit(1);
});
