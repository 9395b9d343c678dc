// A real OpenID Connect provider for the end-to-end tests: npm's
// `oidc-provider` (OpenID certified), on a loopback port, with the fixture
// people, clients and keys below. It signs real tokens with keys made at
// start (RS256 for people's ID tokens, ES256 for CI's access tokens) and
// serves its discovery document and JWKS like any issuer; the tests verify
// nothing themselves, the server under test does.
//
// What is the test's own: the sign-in screens approve at once (as the
// person `login_hint` names, else the one last set with /test/login-as), and
// /test/token runs the authorization code flow against this same provider
// over HTTP, so a test can hold a person's real ID token without a browser.
//
// Usage: node provider.mjs MODULES_DIR   (MODULES_DIR holds oidc-provider)
// Listens on OIDC_PORT (default: any free port) and prints one line
// `{"issuer": "http://127.0.0.1:PORT"}` once it listens. Its key ids are new
// at every start, as a provider's are after it rotates its keys.

import { createHash, randomBytes } from 'node:crypto';
import { createServer } from 'node:http';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';

const modules = process.argv[2];
if (!modules) {
  console.error('usage: node provider.mjs MODULES_DIR');
  process.exit(2);
}
const { default: Provider } = await import(
  pathToFileURL(join(modules, 'oidc-provider', 'lib', 'index.js')).href
);
const jose = await import(pathToFileURL(join(modules, 'jose', 'dist', 'webapi', 'index.js')).href);

// The people of the fixtures. `brief` is a developer whose ID tokens live
// one second (for the expiry tests).
const people = {
  dev: { name: 'Dana Developer', email: 'dana@example.com', groups: ['dev-team'] },
  sre: { name: 'Sam Reliability', email: 'sam@example.com', groups: ['sre'] },
  nobody: { name: 'Nora Nobody', email: 'nora@example.com', groups: [] },
  brief: { name: 'Bree Brief', email: 'bree@example.com', groups: ['dev-team'] },
};
let signedIn = process.env.OIDC_LOGIN_AS || 'dev';

async function key(alg, kid) {
  const { privateKey } = await jose.generateKeyPair(alg, { extractable: true });
  return { ...(await jose.exportJWK(privateKey)), kid, alg, use: 'sig' };
}

// The audience CI tokens are minted for (as GitHub Actions' `aud`).
const ciAudience = process.env.OIDC_CI_AUDIENCE || 'https://release-manager.test';

const configuration = {
  clients: [
    {
      // hamctl and the dashboard: a public client with PKCE, loopback
      // redirects on any port (RFC 8252), the device flow, refresh tokens.
      client_id: 'hamctl',
      application_type: 'native',
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code', 'refresh_token', 'urn:ietf:params:oauth:grant-type:device_code'],
      response_types: ['code'],
      redirect_uris: ['http://127.0.0.1/callback', 'http://127.0.0.1/login/callback'],
    },
    // Two CI pipelines with tokens of their own (client credentials), as
    // GitHub Actions' are: one of acme's repositories, and another owner's.
    ...[['ci-acme', 'acme'], ['ci-other', 'mallory']].map(([id, owner]) => ({
      client_id: id,
      client_secret: `${id}-secret`,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      repository_owner: owner,
      repository: `${owner}/shop`,
    })),
  ],
  extraClientMetadata: { properties: ['repository_owner', 'repository'] },
  async findAccount(ctx, id) {
    const person = people[id];
    if (!person) return undefined;
    return {
      accountId: id,
      async claims() {
        return { sub: id, name: person.name, email: person.email, email_verified: true, groups: person.groups };
      },
    };
  },
  claims: {
    openid: ['sub'],
    profile: ['name'],
    email: ['email', 'email_verified'],
    groups: ['groups'],
  },
  scopes: ['openid', 'offline_access', 'profile', 'email', 'groups'],
  // The ID token carries the person's claims (it is the bearer token).
  conformIdTokenClaims: false,
  jwks: {
    keys: [
      await key('RS256', `people-rs256-${randomBytes(4).toString('hex')}`),
      await key('ES256', `ci-es256-${randomBytes(4).toString('hex')}`),
    ],
  },
  pkce: { required: () => true },
  features: {
    devInteractions: { enabled: false },
    deviceFlow: {
      enabled: true,
      userCodeInputSource(ctx, form) {
        ctx.body = `<!DOCTYPE html><html><body><h1>Enter the code</h1>${form}<button id="submit" type="submit" form="op.deviceInputForm">Continue</button></body></html>`;
      },
      userCodeConfirmSource(ctx, form, client, deviceInfo, userCode) {
        ctx.body = `<!DOCTYPE html><html><body><h1>Confirm device</h1><p><code id="code">${userCode}</code></p>${form}<button id="continue" type="submit" form="op.deviceConfirmForm">Continue</button></body></html>`;
      },
      successSource(ctx) {
        ctx.body = '<!DOCTYPE html><html><body><h1 id="done">Signed in</h1></body></html>';
      },
    },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: (ctx, client) => (client.grantTypeAllowed('client_credentials') ? ciAudience : undefined),
      useGrantedResource: () => true,
      getResourceServerInfo: () => ({
        scope: 'push',
        audience: ciAudience,
        accessTokenFormat: 'jwt',
        jwt: { sign: { alg: 'ES256' } },
      }),
    },
  },
  async extraTokenClaims(ctx, token) {
    const client = token.client || ctx.oidc.client;
    if (token.kind === 'ClientCredentials' && client?.repository_owner) {
      return { repository_owner: client.repository_owner, repository: client.repository };
    }
    return undefined;
  },
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  ttl: {
    IdToken: (ctx, token) => (token.available?.sub === 'brief' ? 1 : 3600),
    AccessToken: 3600,
    ClientCredentials: 3600,
    DeviceCode: 600,
    Interaction: 600,
    Session: 3600,
    Grant: 3600,
    RefreshToken: 86400,
  },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  cookies: { keys: [randomBytes(16).toString('hex')] },
};

const server = createServer();
await new Promise((resolve) => server.listen(Number(process.env.OIDC_PORT || 0), '127.0.0.1', resolve));
const issuer = `http://127.0.0.1:${server.address().port}`;
const provider = new Provider(issuer, configuration);

// Sign-in and consent approve at once, as the person asked for.
async function approve(ctx) {
  const details = await provider.interactionDetails(ctx.req, ctx.res);
  const accountId = details.params.login_hint || signedIn;
  if (details.prompt.name === 'login') {
    await provider.interactionFinished(ctx.req, ctx.res, { login: { accountId } }, { mergeWithLastSubmission: false });
    return;
  }
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId: details.session.accountId, clientId: details.params.client_id });
  const missing = details.prompt.details;
  if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
  if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
  for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes || {})) {
    grant.addResourceScope(indicator, scopes.join(' '));
  }
  const grantId = await grant.save();
  await provider.interactionFinished(ctx.req, ctx.res, { consent: { grantId } }, { mergeWithLastSubmission: true });
}

// The authorization code flow with PKCE, run over HTTP as a browser would
// (redirects followed by hand, cookies kept): the person's real tokens.
async function codeFlow(user) {
  const verifier = randomBytes(32).toString('base64url');
  const challenge = createHash('sha256').update(verifier).digest('base64url');
  const redirect = 'http://127.0.0.1:1/callback';
  const query = new URLSearchParams({
    client_id: 'hamctl',
    response_type: 'code',
    scope: 'openid profile email groups offline_access',
    redirect_uri: redirect,
    code_challenge: challenge,
    code_challenge_method: 'S256',
    state: 'test',
    login_hint: user,
    prompt: 'consent',
  });
  let url = `${issuer}/auth?${query}`;
  const jar = new Map();
  for (let hop = 0; hop < 20; hop += 1) {
    const cookie = [...jar].map(([k, v]) => `${k}=${v}`).join('; ');
    const res = await fetch(url, { redirect: 'manual', headers: cookie ? { cookie } : {} });
    for (const line of res.headers.getSetCookie()) {
      const [pair] = line.split(';');
      const at = pair.indexOf('=');
      jar.set(pair.slice(0, at), pair.slice(at + 1));
    }
    const location = res.headers.get('location');
    if (!location) throw new Error(`the flow stopped at ${url}: ${res.status} ${await res.text()}`);
    if (location.startsWith(redirect)) {
      const code = new URL(location).searchParams.get('code');
      if (!code) throw new Error(`no code: ${location}`);
      const token = await fetch(`${issuer}/token`, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: new URLSearchParams({ grant_type: 'authorization_code', code, redirect_uri: redirect, client_id: 'hamctl', code_verifier: verifier }),
      });
      return { status: token.status, body: await token.text() };
    }
    url = new URL(location, url).href;
  }
  throw new Error('too many redirects');
}

provider.use(async (ctx, next) => {
  if (ctx.path.startsWith('/interaction/')) {
    await approve(ctx);
    return;
  }
  if (ctx.path === '/test/login-as') {
    const user = ctx.query.user;
    if (!people[user]) ctx.throw(400, `no such person: ${user}`);
    signedIn = user;
    ctx.body = `signed in as ${user}\n`;
    return;
  }
  if (ctx.path === '/test/token') {
    const user = ctx.query.user;
    if (!people[user]) ctx.throw(400, `no such person: ${user}`);
    const { status, body } = await codeFlow(user);
    ctx.status = status;
    ctx.type = 'application/json';
    ctx.body = body;
    return;
  }
  await next();
});
provider.on('server_error', (ctx, error) => console.error('server_error', error));

server.on('request', provider.callback());
console.log(JSON.stringify({ issuer }));
