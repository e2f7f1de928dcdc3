// The HTTP layer: security headers, request ids, trace context, the access
// log (and what must never be in it), health endpoints, graceful shutdown.
import { describe, it, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import { startServer, sleep } from './lib/server.mjs';

const FHIR_JSON = 'application/fhir+json';
const REQUEST_ID_RE = /^[A-Za-z0-9._:-]{1,64}$/;

describe('HTTP layer', () => {
  let srv;
  before(async () => {
    srv = await startServer();
  });
  after(async () => {
    if (srv) await srv.stop();
  });

  function assertSecurityHeaders(r, what) {
    const h = r.headers;
    assert.ok(h.get('content-security-policy'), `${what}: Content-Security-Policy`);
    assert.equal(h.get('x-content-type-options'), 'nosniff', `${what}: X-Content-Type-Options`);
    assert.ok(h.get('referrer-policy'), `${what}: Referrer-Policy`);
    assert.match(h.get('x-frame-options') || '', /^(DENY|SAMEORIGIN)$/i, `${what}: X-Frame-Options`);
    assert.equal(h.get('strict-transport-security'), null, `${what}: no HSTS over plain http`);
  }

  it('security headers are on every kind of response, without HSTS over http', async () => {
    assertSecurityHeaders(await srv.fetch('/healthz'), '/healthz');
    assertSecurityHeaders(await srv.fetch('/readyz'), '/readyz');
    assertSecurityHeaders(await srv.fetch('/fhir/metadata'), 'metadata');
    const c = await srv.fetch('/fhir/Patient', {
      method: 'POST',
      headers: { 'content-type': FHIR_JSON },
      body: JSON.stringify({ resourceType: 'Patient' }),
    });
    assert.equal(c.status, 201);
    assertSecurityHeaders(c, 'create');
    assertSecurityHeaders(await srv.fetch('/fhir/Patient/does-not-exist'), 'FHIR 404');
    assertSecurityHeaders(await srv.fetch('/no/such/path'), 'plain 404');
    assertSecurityHeaders(await srv.fetch('/fhir/Patient', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: 'x' }), '415');
    const etag = c.headers.get('etag');
    const nm = await srv.fetch(`/fhir/Patient/${c.json.id}`, { headers: { 'if-none-match': etag } });
    assert.equal(nm.status, 304);
    assertSecurityHeaders(nm, '304');
  });

  it('/healthz and /readyz answer 200', async () => {
    const h = await srv.fetch('/healthz');
    assert.equal(h.status, 200);
    assert.equal(h.json.status, 'ok');
    const r = await srv.fetch('/readyz');
    assert.equal(r.status, 200);
    assert.ok(r.json && r.json.status, r.text);
  });

  it('a well-formed X-Request-Id is kept and echoed', async () => {
    const id = `e2e-req.${process.pid}:1`;
    const r = await srv.fetch('/healthz', { headers: { 'x-request-id': id } });
    assert.equal(r.headers.get('x-request-id'), id);
    const line = await srv.waitForLog((l) => l.request_id === id);
    assert.ok(line, `a log line carries request_id ${id}`);
  });

  it('a malformed or missing X-Request-Id is replaced by a generated one', async () => {
    const seen = new Set();
    for (const sent of [undefined, 'has spaces in it', 'x'.repeat(65), 'semi;colon', '']) {
      const headers = sent === undefined ? {} : { 'x-request-id': sent };
      const r = await srv.fetch('/fhir/metadata', { headers });
      const got = r.headers.get('x-request-id');
      assert.ok(got, `a request id is returned for ${JSON.stringify(sent)}`);
      assert.match(got, REQUEST_ID_RE);
      assert.notEqual(got, sent);
      seen.add(got);
      assert.ok(await srv.waitForLog((l) => l.request_id === got), `log line with generated id ${got}`);
    }
    assert.equal(seen.size, 5, 'generated ids are unique');
  });

  it('the traceparent trace id appears in the log line; a bad one starts a new trace', async () => {
    const traceId = '4bf92f3577b34da6a3ce929d0e0e4736';
    const rid = `trace-${process.pid}`;
    await srv.fetch('/fhir/metadata', {
      headers: { traceparent: `00-${traceId}-00f067aa0ba902b7-01`, 'x-request-id': rid },
    });
    const line = await srv.waitForLog((l) => l.request_id === rid);
    assert.ok(line, 'access log line');
    assert.equal(line.trace_id, traceId);

    const rid2 = `trace-bad-${process.pid}`;
    await srv.fetch('/fhir/metadata', {
      headers: { traceparent: '00-00000000000000000000000000000000-00f067aa0ba902b7-01', 'x-request-id': rid2 },
    });
    const line2 = await srv.waitForLog((l) => l.request_id === rid2);
    assert.ok(line2);
    assert.match(line2.trace_id || '', /^[0-9a-f]{32}$/);
    assert.notEqual(line2.trace_id, '0'.repeat(32));
  });

  it('the access log line has route template, status, duration and request id', async () => {
    const c = await srv.fetch('/fhir/Patient', {
      method: 'POST',
      headers: { 'content-type': FHIR_JSON },
      body: JSON.stringify({ resourceType: 'Patient' }),
    });
    const rid = `access-${process.pid}`;
    const r = await srv.fetch(`/fhir/Patient/${c.json.id}`, { headers: { 'x-request-id': rid } });
    assert.equal(r.status, 200);
    const line = await srv.waitForLog((l) => l.request_id === rid && 'status' in l);
    assert.ok(line, `access log line for ${rid}: ${srv.logText().slice(-2000)}`);
    assert.equal(line.route, '/fhir/{type}/{id}');
    assert.equal(line.status, 200);
    const dur = Object.keys(line).find((k) => /^duration/.test(k));
    assert.ok(dur, `a duration field: ${JSON.stringify(line)}`);
    assert.equal(typeof line[dur], 'number');
    assert.ok(line[dur] >= 0);

    const rid404 = `access404-${process.pid}`;
    await srv.fetch('/fhir/Patient/nope-nope', { headers: { 'x-request-id': rid404 } });
    const l404 = await srv.waitForLog((l) => l.request_id === rid404 && 'status' in l);
    assert.ok(l404);
    assert.equal(l404.status, 404);
    assert.equal(l404.route, '/fhir/{type}/{id}');
  });

  it('logs never hold query values, bodies or credentials', async () => {
    const M = `SECRETMARK${process.pid}X`;
    const reqs = [
      ['/fhir/Patient?name=' + M + 'q1', { method: 'POST', headers: { 'content-type': FHIR_JSON }, body: JSON.stringify({ resourceType: 'Patient', name: [{ family: M + 'b1' }] }) }],
      ['/fhir/_history?_count=1&tag=' + M + 'q2', {}],
      ['/fhir/metadata?' + M + 'q3=' + M + 'q4', { headers: { authorization: `Bearer ${M}auth`, cookie: `session=${M}cookie` } }],
      ['/fhir/Patient', { method: 'POST', headers: { 'content-type': FHIR_JSON }, body: `{"resourceType":"Patient","name":"${M}bad` }],
      ['/fhir/Observation', { method: 'POST', headers: { 'content-type': FHIR_JSON }, body: JSON.stringify({ resourceType: 'Observation', status: 'final', code: { text: M + 'b2' }, effectiveDateTime: `${M}date` }) }],
      ['/fhir/Patient', { method: 'POST', headers: { 'content-type': 'text/plain' }, body: `${M}plain` }],
      ['/fhir/Patient/x?_format=' + M + 'fmt', {}],
      ['/healthz?probe=' + M + 'q5', {}],
    ];
    const rids = [];
    for (const [p, init] of reqs) {
      const rid = `nomark-${rids.length}-${process.pid}`;
      rids.push(rid);
      await srv.fetch(p, { ...init, headers: { ...(init.headers || {}), 'x-request-id': rid } });
    }
    for (const rid of rids) assert.ok(await srv.waitForLog((l) => l.request_id === rid), `log line for ${rid}`);
    await sleep(100);
    const all = srv.logText();
    assert.ok(!all.includes(M), `a marker leaked into the log: ${all.split('\n').filter((l) => l.includes(M)).join('\n')}`);
  });

  it('HTTP/1.1 connections are kept alive across requests', async () => {
    const sock = net.connect(srv.port, '127.0.0.1');
    await new Promise((res, rej) => {
      sock.once('connect', res);
      sock.once('error', rej);
    });
    let buf = '';
    let closed = false;
    sock.setEncoding('utf8');
    sock.on('data', (d) => (buf += d));
    sock.on('close', () => (closed = true));
    sock.on('error', () => {});
    const statuses = [];
    try {
      for (let i = 0; i < 3 && !closed; i++) {
        buf = '';
        sock.write(`GET /fhir/metadata HTTP/1.1\r\nHost: 127.0.0.1:${srv.port}\r\nAccept: ${FHIR_JSON}\r\n\r\n`);
        const t0 = Date.now();
        for (;;) {
          const end = buf.indexOf('\r\n\r\n');
          const len = /\r\ncontent-length:\s*(\d+)/i.exec(buf);
          if (end >= 0 && len && buf.length >= end + 4 + Number(len[1])) break;
          if (closed || Date.now() - t0 > 5000) break;
          await sleep(2);
        }
        statuses.push(Number(buf.slice(9, 12)));
        assert.doesNotMatch(buf.slice(0, buf.indexOf('\r\n\r\n')), /\r\nconnection:\s*close/i, `response ${i + 1} closes the connection`);
      }
    } finally {
      sock.destroy();
    }
    assert.deepEqual(statuses, [200, 200, 200]);
  });

  it('request headers over header_max get 431 and the server carries on', async () => {
    const r = await srv.fetch('/fhir/metadata', { headers: { 'x-filler': 'a'.repeat(40000) } });
    assert.equal(r.status, 431);
    assert.equal(r.json && r.json.resourceType, 'OperationOutcome');
    assert.equal((await srv.fetch('/healthz')).status, 200);
  });

  // Send raw bytes, collect what comes back until the server closes or 'wait' ms pass.
  async function rawExchange(bytes, wait = 3000) {
    const sock = net.connect(srv.port, '127.0.0.1');
    await new Promise((res, rej) => {
      sock.once('connect', res);
      sock.once('error', rej);
    });
    let resp = '';
    sock.setEncoding('utf8');
    sock.on('data', (d) => (resp += d));
    sock.on('error', () => {});
    let closed = false;
    sock.on('close', () => (closed = true));
    sock.write(bytes);
    const t0 = Date.now();
    while (!closed && Date.now() - t0 < wait && !/\r\n\r\n/.test(resp)) await sleep(10);
    await sleep(50);
    const state = closed ? 'closed by the server' : 'left open';
    sock.destroy();
    return { text: resp, state };
  }

  it('a request line with very many query parameters gets an answer (200 or a 4xx OperationOutcome), never silence', async () => {
    const problems = [];
    for (const n of [1100, 1500, 3000]) {
      const q = Array.from({ length: n }, (_, i) => `p${i}=1`).join('&');
      // ~8-23 KB: 1100 and 1500 are under header_max (16 KiB) but over the 256-parameter limit; 3000 is over header_max
      const resp = await rawExchange(`GET /fhir/_history?${q} HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: ${FHIR_JSON}\r\n\r\n`, 1500);
      const m = /^HTTP\/1\.1 (\d{3}) /.exec(resp.text);
      if (!m) problems.push(`${n} parameters (${q.length} bytes): no HTTP response within 1.5 s, connection ${resp.state}`);
      else if (!['200', '400', '414', '431'].includes(m[1])) problems.push(`${n} parameters: status ${m[1]}`);
      else if (m[1] !== '200' && !resp.text.includes('OperationOutcome')) problems.push(`${n} parameters: ${m[1]} without an OperationOutcome`);
    }
    assert.deepEqual(problems, []);
    assert.equal((await srv.fetch('/healthz')).status, 200);
  });

  it('malformed request lines and headers are refused (HTTP/1.1 without Host: 400; a space in the target: 400 or the connection closed), well-formed ones 200', async () => {
    const noHost = await rawExchange('GET /healthz HTTP/1.1\r\n\r\n', 1500);
    assert.match(noHost.text, /^HTTP\/1\.1 400 /, `no Host: ${JSON.stringify(noHost.text.slice(0, 80))}`);
    // libmicrohttpd drops such a connection without an answer: nothing is served for it
    const space = await rawExchange('GET /fhir/Patient?name=a b HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n', 1500);
    assert.ok(/^HTTP\/1\.1 400 /.test(space.text) || (space.text === '' && space.state === 'closed by the server'),
      `a space in the target: ${space.state} ${JSON.stringify(space.text.slice(0, 80))}`);
    // two Content-Length headers (a proxy in front might believe the other one): 400, and the connection ends
    const body = '{"resourceType":"Patient"}';
    const twoCl = await rawExchange(`POST /fhir/Patient HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: ${FHIR_JSON}\r\n` +
      `Content-Length: ${body.length}\r\nContent-Length: 5\r\n\r\n${body}`, 1500);
    assert.match(twoCl.text, /^HTTP\/1\.1 400 /, `two Content-Length: ${JSON.stringify(twoCl.text.slice(0, 80))}`);
    assert.equal((twoCl.text.match(/^HTTP\/1\.1 /gm) || []).length, 1, 'one answer: the body is not read as another request');
    const { text } = await rawExchange('GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n', 1500);
    assert.match(text, /^HTTP\/1\.1 200 /, 'the same request with its Host');
    const { text: old } = await rawExchange('GET /healthz HTTP/1.0\r\n\r\n', 1500);
    assert.match(old, /^HTTP\/1\.[01] 200 /, 'HTTP/1.0 needs no Host');
  });

  it('a body announced over the limit gets 413 before it is sent (Content-Length, Expect: 100-continue)', async () => {
    for (const expect of ['', 'Expect: 100-continue\r\n']) {
      const { text: resp } = await rawExchange(
        `POST /fhir/Patient HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: ${FHIR_JSON}\r\nContent-Length: 20000000\r\n${expect}\r\n`,
      );
      assert.match(resp, /^HTTP\/1\.1 413 /, `${expect || 'plain'}: ${JSON.stringify(resp.slice(0, 100))}`);
      assert.ok(resp.includes('OperationOutcome'));
    }
  });

  it('every log line is one JSON object', async () => {
    const bad = srv.logs.filter((l) => l.trim() && !(() => { try { return typeof JSON.parse(l) === 'object'; } catch { return false; } })());
    assert.deepEqual(bad, []);
  });
});

describe('graceful shutdown', () => {
  it('SIGTERM lets an in-flight request complete, then exits 0; the write is kept', async () => {
    const srv = await startServer();
    try {
      const id = `inflight-${process.pid}`;
      const body = Buffer.from(JSON.stringify({ resourceType: 'Patient', id, name: [{ family: 'Slowpoke', given: ['In', 'Flight'] }] }));
      const half = Math.floor(body.length / 2);
      const sock = net.connect(srv.port, '127.0.0.1');
      await new Promise((res, rej) => {
        sock.once('connect', res);
        sock.once('error', rej);
      });
      let response = '';
      sock.setEncoding('utf8');
      sock.on('data', (d) => (response += d));
      const closed = new Promise((res) => sock.on('close', res));
      sock.on('error', () => {});
      sock.write(
        `PUT /fhir/Patient/${id} HTTP/1.1\r\nHost: 127.0.0.1:${srv.port}\r\nContent-Type: ${FHIR_JSON}\r\n` +
          `Authorization: ${srv.authHeaders.authorization}\r\n` +
          `Accept: ${FHIR_JSON}\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n`,
      );
      sock.write(body.subarray(0, half));
      await sleep(300);
      srv.child.kill('SIGTERM');
      await sleep(500);
      const early = await Promise.race([srv.exited, sleep(1).then(() => null)]);
      assert.equal(early, null, 'the server waits for the request in flight');
      // the rest of the body, the connection left open for writing: libmicrohttpd
      // drops an answer held for the audit log when the client has half-closed
      // (see docs/security.md, known limitations); 'Connection: close' ends it
      sock.write(body.subarray(half));
      await Promise.race([closed, sleep(10000, undefined, { ref: false })]);
      assert.match(response, /^HTTP\/1\.1 201 /, `response: ${response.slice(0, 300)}`);
      assert.ok(response.includes('Slowpoke'));
      const exit = await Promise.race([srv.exited, sleep(15000, undefined, { ref: false }).then(() => ({ code: 'timeout' }))]);
      assert.equal(exit.code, 0, `exit status after SIGTERM: ${JSON.stringify(exit)}; log: ${srv.logText().slice(-1500)}`);
      const again = await startServer({ dataDir: srv.dataDir });
      try {
        const r = await again.fetch(`/fhir/Patient/${id}`);
        assert.equal(r.status, 200);
        assert.equal(r.json.name[0].family, 'Slowpoke');
      } finally {
        await again.stop();
      }
    } finally {
      await srv.stop();
    }
  });

  it('after SIGTERM no new connection is served while an in-flight request finishes', async () => {
    const srv = await startServer();
    try {
      const sock = net.connect(srv.port, '127.0.0.1');
      await new Promise((res) => sock.once('connect', res));
      let response = '';
      sock.setEncoding('utf8');
      sock.on('data', (d) => (response += d));
      sock.on('error', () => {});
      const closed = new Promise((res) => sock.on('close', res));
      const body = JSON.stringify({ resourceType: 'Patient', id: 'drain' });
      sock.write(`PUT /fhir/Patient/drain HTTP/1.1\r\nHost: x\r\nAuthorization: ${srv.authHeaders.authorization}\r\nContent-Type: ${FHIR_JSON}\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body.slice(0, 10)}`);
      await sleep(200);
      srv.child.kill('SIGTERM');
      await sleep(300);
      // a brand-new connection (fetch would reuse the harness's idle keep-alive one)
      const served = await new Promise((resolve) => {
        const req = http.get({ host: '127.0.0.1', port: srv.port, path: '/healthz', agent: false, timeout: 1500 },
          (res) => { res.resume(); resolve(res.statusCode); });
        req.on('timeout', () => { req.destroy(); resolve(null); });
        req.on('error', () => resolve(null)); // refused, reset or never answered: not accepted
      });
      // the rest of the body without half-closing: libmicrohttpd drops an answer held for
      // the audit log when the client has half-closed (docs/security.md); 'Connection: close' ends it
      sock.write(body.slice(10));
      await Promise.race([closed, sleep(10000, undefined, { ref: false })]);
      assert.match(response, /^HTTP\/1\.1 201 /, 'the in-flight request completes');
      assert.equal(served, null, `a connection opened after SIGTERM was served (status ${served}); the server should stop accepting`);
    } finally {
      await srv.stop();
    }
  });

  it('kill -9 loses no acknowledged write', async () => {
    const srv = await startServer();
    const acked = new Map();
    try {
      await Promise.all(
        Array.from({ length: 4 }, async (_, w) => {
          for (let i = 0; i < 25; i++) {
            const id = `durable-${w}-${i % 5}`;
            const r = await srv.fetch(`/fhir/Observation/${id}`, {
              method: 'PUT',
              headers: { 'content-type': FHIR_JSON },
              body: JSON.stringify({ resourceType: 'Observation', id, status: 'final', code: { text: `n${i}` } }),
            });
            assert.ok(r.status === 200 || r.status === 201, r.text);
            acked.set(id, r.json);
          }
        }),
      );
      await srv.kill();
      const again = await startServer({ dataDir: srv.dataDir });
      try {
        for (const [id, res] of acked) {
          const r = await again.fetch(`/fhir/Observation/${id}`);
          assert.equal(r.status, 200, id);
          assert.deepEqual(r.json, res, `${id} is the acknowledged version`);
        }
      } finally {
        await again.stop();
      }
    } finally {
      await srv.stop();
    }
  });

  it('reads whose clients hang up while the answer waits for the audit log do not keep the server from stopping', async () => {
    // Under audit "sync" a read's answer is held until its record is durable;
    // these clients close their connection right after sending, so most
    // connections are gone when their answer is released.
    const srv = await startServer({ patients: 0, seed: true });
    try {
      const req = `GET /fhir/Patient/alice HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: ${srv.authHeaders.authorization}\r\n` +
        `Accept: ${FHIR_JSON}\r\n\r\n`;
      for (let round = 0; round < 5; round++) {
        await Promise.all(Array.from({ length: 40 }, () => new Promise((res) => {
          const sock = net.connect(srv.port, '127.0.0.1', () => sock.end(req, () => setTimeout(() => sock.destroy(), 1)));
          sock.on('error', () => {});
          sock.on('close', res);
        })));
      }
      const ok = await srv.fetch('/fhir/Patient/alice');
      assert.equal(ok.status, 200, 'the server still answers');
      const t0 = Date.now();
      const exit = await srv.stop();
      assert.equal(exit.code, 0, JSON.stringify(exit));
      assert.ok(Date.now() - t0 < 5000, `SIGTERM took ${Date.now() - t0} ms; log: ${srv.logText().slice(-600)}`);
      assert.ok(!/still held/.test(srv.logText()), srv.logText().slice(-600));
    } finally {
      await srv.stop();
    }
  });

  it('SIGTERM on an idle server exits 0 promptly', async () => {
    const srv = await startServer();
    const t0 = Date.now();
    const exit = await srv.stop();
    assert.equal(exit.code, 0, JSON.stringify(exit));
    assert.ok(Date.now() - t0 < 5000, `took ${Date.now() - t0} ms`);
  });
});
