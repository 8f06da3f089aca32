// A real OpenID provider on loopback for the console's tests. Users log in
// through oidc-provider's own login and consent pages (any password); their
// groups come from the ACCOUNTS environment variable ({"alice": ["it-ops"]}).
// It prints "ready <issuer>" once listening.
import Provider from 'oidc-provider';

const port = Number(process.env.PORT);
const issuer = `http://127.0.0.1:${port}`;
const accounts = JSON.parse(process.env.ACCOUNTS || '{}');
const redirects = (process.env.REDIRECT_URIS || '').split(' ').filter(Boolean);

const provider = new Provider(issuer, {
  clients: [{
    client_id: process.env.CLIENT_ID || 'gateway',
    client_secret: process.env.CLIENT_SECRET || 'gateway-secret',
    redirect_uris: redirects,
    post_logout_redirect_uris: redirects.map((u) => new URL('/', u).href),
    grant_types: ['authorization_code'],
    response_types: ['code'],
  }],
  claims: { openid: ['sub', 'groups'] },
  conformIdTokenClaims: false,
  findAccount: async (ctx, id) => ({
    accountId: id,
    claims: async () => ({ sub: id, groups: accounts[id] || [] }),
  }),
  features: { devInteractions: { enabled: true } },
  ttl: { IdToken: 3600, AccessToken: 3600, Session: 3600, Interaction: 600, Grant: 3600 },
  cookies: { keys: ['test-only-cookie-key'] },
});
provider.proxy = false;
provider.listen(port, '127.0.0.1', () => console.log(`ready ${issuer}`));
