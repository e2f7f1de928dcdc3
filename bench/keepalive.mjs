// keepalive.mjs - does the server keep HTTP/1.1 connections alive?
//
// Opens at most N keep-alive connections (http.Agent keepAlive, maxSockets
// N), sends M requests over them, and counts the distinct sockets used, TCP
// connects, and responses that carry "Connection: close".  Keep-alive holds
// when exactly N sockets served all M requests.
//
//   node bench/keepalive.mjs URL [N] [M] [METHOD] [BODY_FILE]
import fs from 'node:fs';
import http from 'node:http';
import { fileURLToPath } from 'node:url';

export async function keepAliveCheck({ url, method = 'GET', body = null, headers = {}, sockets = 8,
	requests = 400, timeoutMs = 20000 }) {
	const u = new URL(url);
	const agent = new http.Agent({ keepAlive: true, maxSockets: sockets, maxFreeSockets: sockets,
		scheduling: 'fifo' });
	const seen = new Set();
	const statuses = {};
	let connects = 0, closeHeaders = 0, errors = 0, firstError = null, done = 0;

	const one = () => new Promise((resolve) => {
		const h = { Accept: 'application/fhir+json', ...headers };
		if (body != null)
			h['Content-Length'] = Buffer.byteLength(body);
		const req = http.request({ host: u.hostname, port: u.port, path: u.pathname + u.search, method,
			agent, headers: h }, (res) => {
			statuses[res.statusCode] = (statuses[res.statusCode] || 0) + 1;
			if (/\bclose\b/i.test(res.headers.connection || ''))
				closeHeaders++;
			res.resume();
			res.on('end', () => { done++; resolve(); });
			res.on('error', (e) => { errors++; firstError ??= e.message; resolve(); });
		});
		req.on('socket', (s) => {
			if (seen.has(s))
				return;
			seen.add(s);
			if (s.connecting)
				s.once('connect', () => connects++);
			else
				connects++;
		});
		req.setTimeout(timeoutMs, () => req.destroy(new Error('timeout')));
		req.on('error', (e) => { errors++; firstError ??= e.message; resolve(); });
		req.end(body ?? undefined);
	});

	const t0 = process.hrtime.bigint();
	await Promise.all(Array.from({ length: requests }, one));
	const ms = Number(process.hrtime.bigint() - t0) / 1e6;
	agent.destroy();
	const ok = seen.size === sockets && connects === sockets && closeHeaders === 0 && errors === 0 &&
		done === requests;
	return { ok, sockets: seen.size, connects, requests, done, closeHeaders, errors, firstError,
		statuses, ms, wanted: sockets };
}

export function describe(r) {
	const st = Object.entries(r.statuses).map(([k, v]) => `${k}×${v}`).join(' ');
	if (r.ok)
		return `OK (${r.sockets} sockets for ${r.requests} requests; status ${st})`;
	return `FAIL (${r.sockets} distinct sockets, ${r.connects} connects for ${r.requests} requests, ` +
		`wanted ${r.wanted}; ${r.closeHeaders} "Connection: close" responses; ${r.errors} errors` +
		`${r.firstError ? ` (${r.firstError})` : ''}; status ${st || 'none'})`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
	const [url, n, m, method, bodyFile] = process.argv.slice(2);
	if (!url) {
		console.error('usage: node bench/keepalive.mjs URL [N] [M] [METHOD] [BODY_FILE]');
		process.exit(2);
	}
	const body = bodyFile ? fs.readFileSync(bodyFile, 'utf8') : null;
	const r = await keepAliveCheck({ url, method: method || (body ? 'POST' : 'GET'), body,
		headers: body ? { 'Content-Type': 'application/fhir+json' } : {},
		sockets: Number(n || 8), requests: Number(m || 400) });
	console.log(`keep-alive: ${describe(r)}`);
	process.exit(r.ok ? 0 : 1);
}
