// make bench's peer: node-oidc-provider (the exact version in package-lock.json)
// issuing RFC 9068 JWT access tokens signed RS256 for one client_credentials
// client. One process, no cluster, the default in-memory adapter; the bench
// starts it pinned to keygate's core (examples/bench/peer.rs).
//
//   node server.mjs <port> <issuer> <key.pem> <kid> <client_id> <client_secret>
//
// Every argument can also come from the environment (PEER_PORT, PEER_ISSUER,
// PEER_KEY, PEER_KID, PEER_CLIENT_ID, PEER_CLIENT_SECRET). Prints `listening <port>`.

import { createPrivateKey } from 'node:crypto';
import { readFileSync } from 'node:fs';

import Provider from 'oidc-provider';

const [
  port = process.env.PEER_PORT,
  issuer = process.env.PEER_ISSUER,
  keyPath = process.env.PEER_KEY,
  kid = process.env.PEER_KID,
  clientId = process.env.PEER_CLIENT_ID,
  clientSecret = process.env.PEER_CLIENT_SECRET,
] = process.argv.slice(2);
if (!port || !issuer || !keyPath || !kid || !clientId || !clientSecret) {
  console.error('usage: node server.mjs <port> <issuer> <key.pem> <kid> <client_id> <client_secret>');
  process.exit(2);
}

// keygate's own RS256 key (PKCS#8 PEM, 2048 bits) as the private JWK
// oidc-provider reads, with keygate's kid.
const jwk = {
  ...createPrivateKey(readFileSync(keyPath)).export({ format: 'jwk' }),
  kid,
  alg: 'RS256',
  use: 'sig',
};
// The one resource server: client_credentials requests without `resource`
// get it (defaultResource), and its tokens are JWTs (RFC 9068, typ at+jwt).
const resource = `${issuer}/api`;
const scope = 'api:read';

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: clientId,
      client_secret: clientSecret,
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      token_endpoint_auth_method: 'client_secret_basic',
      scope,
    },
  ],
  jwks: { keys: [jwk] },
  scopes: [scope],
  features: {
    // client_credentials needs no interactions; no other feature is used.
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => resource,
      useGrantedResource: () => true,
      getResourceServerInfo: (_ctx, indicator) => {
        if (indicator !== resource) {
          throw new Provider.errors.InvalidTarget();
        }
        return {
          scope,
          audience: resource,
          // keygate's default tokens.access_ttl.
          accessTokenTTL: 900,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: 'RS256' } },
        };
      },
    },
  },
  ttl: {
    ClientCredentials: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? 900,
  },
  // Not used by client_credentials; set so the provider does not warn.
  cookies: { keys: [clientSecret] },
});

const server = provider.listen(Number(port), '127.0.0.1', () => {
  console.log(`listening ${port}`);
});
// Node closes idle keep-alive connections after 5 s by default; the load
// generator keeps its connections between scenarios (so does keygate).
server.keepAliveTimeout = 120_000;
server.headersTimeout = 121_000;

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
