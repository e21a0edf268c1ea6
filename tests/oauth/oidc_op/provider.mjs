// A real OpenID Connect provider (panva's certified oidc-provider) for hubkit's OAuth tests.
//
// Usage: node provider.mjs <config.json>
// The JSON config (written by the Python fixture) holds: port, module (path to oidc-provider's lib/index.js),
// keys (private JWKs, first key signs), clients, accounts {login: {claims...}}, ttl {AccessToken, IdToken, ...}.
// Prints "READY <issuer>" once listening, so the fixture never sleeps blindly. Port 0 means "any free port":
// the socket is bound first and the issuer is built from the port it got, so nothing races for a port.
import { createServer } from 'node:http';
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';

const cfg = JSON.parse(readFileSync(process.argv[2], 'utf8'));
const { default: Provider } = await import(pathToFileURL(cfg.module).href);
const server = createServer();
await new Promise((resolve, reject) => {
  server.once('error', reject);
  server.listen(cfg.port, '127.0.0.1', resolve);
});
const issuer = `http://127.0.0.1:${server.address().port}`;

function findAccount(ctx, id) {
  const known = cfg.accounts[id];
  if (!known) return undefined; // unknown logins cannot sign in
  return {
    accountId: id,
    async claims() {
      return { sub: id, ...known };
    },
  };
}

const provider = new Provider(issuer, {
  clients: cfg.clients,
  findAccount,
  jwks: { keys: cfg.keys },
  scopes: ['openid', 'offline_access', 'email', 'profile', 'groups'],
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['preferred_username', 'name'],
    groups: ['groups'],
  },
  // The ID token carries the scope's claims too, as many real providers do.
  conformIdTokenClaims: false,
  pkce: { required: () => true, methods: ['S256'] },
  ttl: {
    AccessToken: cfg.ttl.AccessToken,
    IdToken: cfg.ttl.IdToken,
    AuthorizationCode: 60,
    RefreshToken: 3600,
    Grant: 3600,
    Interaction: 600,
    Session: 3600,
  },
  features: {
    devInteractions: { enabled: true },
    rpInitiatedLogout: { enabled: true },
  },
  // Consent is implied for the test clients: skip the consent screen, keep the login form.
  async loadExistingGrant(ctx) {
    const grantId = ctx.oidc.result?.consent?.grantId || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
    if (grantId) return ctx.oidc.provider.Grant.find(grantId);
    const grant = new ctx.oidc.provider.Grant({ clientId: ctx.oidc.client.clientId, accountId: ctx.oidc.session.accountId });
    grant.addOIDCScope('openid email profile groups offline_access');
    grant.addOIDCClaims(['preferred_username', 'email', 'email_verified', 'groups', 'name']);
    await grant.save();
    return grant;
  },
  async issueRefreshToken(ctx, client) {
    return client.grantTypeAllowed('refresh_token');
  },
});
provider.proxy = false;
// Test-only: replace an account's claims (POST /__test/accounts/<login> with a JSON body), so tests can
// change a person's groups at the provider and watch the hub follow at the next login.
provider.use(async (ctx, next) => {
  const m = ctx.path.match(/^\/__test\/accounts\/([\w.-]+)$/);
  if (!m || ctx.method !== 'POST') return next();
  let raw = '';
  for await (const chunk of ctx.req) raw += chunk;
  cfg.accounts[m[1]] = JSON.parse(raw);
  ctx.status = 204;
});
server.on('request', provider.callback());
process.stdout.write(`READY ${issuer}\n`);
const stop = () => server.close(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
