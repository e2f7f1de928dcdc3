// auth-oidc.mjs - panva's oidc-provider (npm) set up like Veranda's token
// endpoint, as the reference for bench/auth.mjs.  Started by auth.mjs with
// child_process.fork (it needs the IPC channel); never run by hand.
//
// The grant is the one the benchmark drives on Veranda: a public client
// ("bench", token_endpoint_auth_method none) with PKCE S256, authorization_code
// then refresh_token with rotation on every use; access tokens are JWTs signed
// with ES256 for the FHIR base as the resource (features.resourceIndicators,
// accessTokenFormat 'jwt', 15 minutes), carrying patient and fhirUser like
// Veranda's; id tokens RS256 with fhirUser; the token response carries
// patient, need_patient_banner and smart_style_url like a SMART server's.
// The signing keys are Veranda's own (its DATA/keys PEM files, same sizes
// and curves).  Storage is an in-memory adapter (a Map; no eviction: the
// package's own memory adapter keeps only 1,000 entries, fewer than the
// codes minted for one run).
//
// Messages from the parent (process.send):
//   {cmd: 'mint', n, file}  mint n authorization codes for alice in-process
//       (one Grant and one AuthorizationCode each, through the provider's own
//       model classes) and write one token-request body a line into file;
//       answers {ok: true, minted}
// On start it listens on 127.0.0.1:PORT and sends {ready: true, port}.
//
// argv: PORT KEYS_DIR
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

import { Provider } from 'oidc-provider';

const [portArg, keysDir] = process.argv.slice(2);
const ISSUER = `http://127.0.0.1:${portArg}`;
const FHIR = `${ISSUER}/fhir`;
const CLIENT_ID = 'bench';
const REDIRECT = 'http://127.0.0.1:9999/cb';
const ACCOUNT = 'alice';
const PATIENT = 'alice';
/* BENCH_AUTH_OPENID=0 (inherited from bench/auth.mjs): no openid, so no id token */
const OPENID = process.env.BENCH_AUTH_OPENID !== '0';
const OIDC_SCOPE = OPENID ? 'openid fhirUser offline_access' : 'offline_access';
const RESOURCE_SCOPE = 'launch/patient patient/*.rs';
const SCOPE = OPENID ? 'launch/patient openid fhirUser offline_access patient/*.rs' : 'launch/patient offline_access patient/*.rs';

/* ---- an in-memory adapter without eviction ---- */

const stores = new Map();
const grants = new Map(); /* grantId -> Set of "Model:id" */

class MapAdapter {
	constructor(name) {
		this.name = name;
		if (!stores.has(name))
			stores.set(name, new Map());
		this.m = stores.get(name);
	}

	async upsert(id, payload, expiresIn) {
		const exp = expiresIn ? Date.now() + expiresIn * 1000 : Infinity;
		this.m.set(id, { payload, exp });
		if (payload.grantId) {
			let g = grants.get(payload.grantId);
			if (!g)
				grants.set(payload.grantId, (g = new Set()));
			g.add(`${this.name}:${id}`);
		}
	}

	async find(id) {
		const e = this.m.get(id);
		if (!e)
			return undefined;
		if (e.exp <= Date.now()) {
			this.m.delete(id);
			return undefined;
		}
		return e.payload;
	}

	async findByUid(uid) {
		for (const [id, e] of this.m)
			if (e.payload.uid === uid)
				return this.find(id);
		return undefined;
	}

	async findByUserCode(code) {
		for (const [id, e] of this.m)
			if (e.payload.userCode === code)
				return this.find(id);
		return undefined;
	}

	async consume(id) {
		const e = this.m.get(id);
		if (e)
			e.payload.consumed = Math.floor(Date.now() / 1000);
	}

	async destroy(id) {
		this.m.delete(id);
	}

	async revokeByGrantId(grantId) {
		const g = grants.get(grantId);
		if (!g)
			return;
		for (const key of g) {
			const i = key.indexOf(':');
			stores.get(key.slice(0, i))?.delete(key.slice(i + 1));
		}
		grants.delete(grantId);
	}
}

/* ---- Veranda's signing keys as JWKs ---- */

function jwks(dir) {
	const keys = [];
	for (const f of fs.readdirSync(dir).sort()) {
		const m = f.match(/^(rs256|es256)-(\d+)\.pem$/);
		if (!m)
			continue;
		const jwk = crypto.createPrivateKey(fs.readFileSync(path.join(dir, f))).export({ format: 'jwk' });
		keys.push({ ...jwk, kid: `${m[1]}-${m[2]}`, alg: m[1].toUpperCase(), use: 'sig' });
	}
	for (const alg of ['RS256', 'ES256'])
		if (!keys.some((k) => k.alg === alg))
			throw new Error(`no ${alg} key in ${dir}`);
	return { keys };
}

const provider = new Provider(ISSUER, {
	adapter: MapAdapter,
	jwks: jwks(keysDir),
	clients: [{
		client_id: CLIENT_ID,
		token_endpoint_auth_method: 'none',
		redirect_uris: [REDIRECT],
		grant_types: ['authorization_code', 'refresh_token'],
		response_types: ['code'],
		id_token_signed_response_alg: 'RS256',
	}],
	scopes: ['openid', 'offline_access', 'fhirUser'],
	claims: { openid: ['sub'], fhirUser: ['fhirUser'] },
	pkce: { required: () => true },
	rotateRefreshToken: true,
	ttl: { AccessToken: 900, AuthorizationCode: 600, IdToken: 900, RefreshToken: 90 * 86400, Grant: 365 * 86400,
		Session: 43200, Interaction: 600 },
	cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
	features: {
		devInteractions: { enabled: false },
		resourceIndicators: {
			enabled: true,
			defaultResource: () => FHIR,
			useGrantedResource: () => true,
			getResourceServerInfo: () => ({
				scope: RESOURCE_SCOPE,
				audience: FHIR,
				accessTokenTTL: 900,
				accessTokenFormat: 'jwt',
				jwt: { sign: { alg: 'ES256' } },
			}),
		},
	},
	extraTokenClaims: () => ({ patient: PATIENT, fhirUser: `Patient/${PATIENT}` }),
	findAccount: (ctx, sub) => ({
		accountId: sub,
		claims: () => ({ sub, fhirUser: `${FHIR}/Patient/${PATIENT}` }),
	}),
});

/* SMART's token-response parameters, as Veranda sends them. */
provider.use(async (ctx, next) => {
	await next();
	if (ctx.path === '/token' && ctx.status === 200 && ctx.body && ctx.body.access_token) {
		ctx.body.patient = PATIENT;
		ctx.body.need_patient_banner = true;
		ctx.body.smart_style_url = `${ISSUER}/smart-style.json`;
	}
});

/* ---- minting codes in-process ---- */

async function mint(n, file) {
	const client = await provider.Client.find(CLIENT_ID);
	const lines = [];
	const authTime = Math.floor(Date.now() / 1000);
	for (let i = 0; i < n; i++) {
		const grant = new provider.Grant({ accountId: ACCOUNT, clientId: CLIENT_ID });
		grant.addOIDCScope(OIDC_SCOPE);
		grant.addResourceScope(FHIR, RESOURCE_SCOPE);
		const grantId = await grant.save();
		const verifier = crypto.randomBytes(32).toString('base64url');
		const code = new provider.AuthorizationCode({
			accountId: ACCOUNT,
			grantId,
			client,
			scope: SCOPE,
			resource: FHIR,
			redirectUri: REDIRECT,
			codeChallenge: crypto.createHash('sha256').update(verifier).digest('base64url'),
			codeChallengeMethod: 'S256',
			authTime,
			nonce: crypto.randomBytes(8).toString('base64url'),
			expiresWithSession: false,
		});
		const value = await code.save();
		lines.push(new URLSearchParams({ grant_type: 'authorization_code', code: value, redirect_uri: REDIRECT,
			code_verifier: verifier, client_id: CLIENT_ID }).toString());
	}
	fs.writeFileSync(file, lines.join('\n') + '\n');
	return n;
}

process.on('message', (m) => {
	if (m && m.cmd === 'mint')
		mint(m.n, m.file).then((minted) => process.send({ ok: true, minted }),
			(e) => process.send({ ok: false, error: e.stack || String(e) }));
});
process.on('disconnect', () => process.exit(0));

const server = provider.listen(Number(portArg), '127.0.0.1', () => process.send({ ready: true, port: Number(portArg) }));
server.keepAliveTimeout = 75000;
