// The official TypeScript MCP SDK client (@modelcontextprotocol/sdk) against
// an MCP server protected by keygate: run by tests/api/mcp_clients.rs.
//
//     node client.mjs MCP_URL USERNAME PASSWORD WAIT_SECONDS [CLIENT_METADATA_URL]
//
// Unmodified SDK usage: the transport's `authProvider` (the SDK's own
// `OAuthClientProvider` interface, kept in memory as in the SDK's example)
// discovers the authorization server from the MCP server's 401 (RFC 9728),
// registers (RFC 7591) — or, given CLIENT_METADATA_URL (the provider's
// `clientMetadataUrl`), uses that https URL as its `client_id` (a client ID
// metadata document, which the authorization server fetches; no
// registration) —, authorizes with PKCE and `resource` (RFC 8707),
// exchanges the code (`finishAuth`) and refreshes the token on a 401. The
// only custom part is the "browser" (`authorizeInBrowser`): it follows the
// authorization URL, fills keygate's login form and allows the consent form
// over an HTTP session with cookies, and hands `code` from the final redirect
// back to the SDK.
//
// Calls `whoami`, waits WAIT_SECONDS (past the access token's lifetime, so
// the SDK must refresh), calls `whoami` again, and prints one JSON line: the
// two `whoami` results, every access token the SDK stored and how many times
// it sent the user to the authorization page.

import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';

const [mcpUrl, username, password, wait, clientMetadataUrl] = process.argv.slice(2);
const REDIRECT_URI = 'http://127.0.0.1:9/callback'; // never contacted: the browser stops at it

/** The forms of a page: action, and inputs and buttons by name. */
function forms(html) {
  const attrs = tag => Object.fromEntries([...tag.matchAll(/([a-z_-]+)="([^"]*)"/g)].map(m => [m[1], unescape(m[2])]));
  const named = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };
  const unescape = s =>
    s.replace(/&(#x[0-9a-f]+|#[0-9]+|[a-z]+);/gi, (m, e) =>
      e[0] !== '#' ? (named[e] ?? m) : String.fromCodePoint(e[1] === 'x' || e[1] === 'X' ? parseInt(e.slice(2), 16) : Number(e.slice(1))),
    );
  return [...html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/g)].map(([, open, inner]) => {
    const form = { action: attrs(open).action ?? '', fields: {}, buttons: {} };
    for (const [tag, kind] of inner.matchAll(/<(input|button)\b[^>]*>/g)) {
      const a = attrs(tag);
      if (a.name) (form[kind === 'button' ? 'buttons' : 'fields'][a.name] ??= []).push(a.value ?? '');
    }
    return form;
  });
}

/** Just enough of a browser for keygate's login and consent pages. */
async function authorizeInBrowser(start) {
  const cookies = new Map();
  let url = start;
  let body;
  for (let i = 0; i < 10; i++) {
    const resp = await fetch(url, {
      method: body ? 'POST' : 'GET',
      body,
      redirect: 'manual',
      headers: { cookie: [...cookies].map(([k, v]) => `${k}=${v}`).join('; ') },
    });
    body = undefined;
    for (const c of resp.headers.getSetCookie()) {
      const [pair] = c.split(';');
      const eq = pair.indexOf('=');
      cookies.set(pair.slice(0, eq).trim(), pair.slice(eq + 1).trim());
    }
    const text = await resp.text();
    if (resp.status === 302 || resp.status === 303) {
      url = new URL(resp.headers.get('location'), url).href;
      if (url.startsWith(REDIRECT_URI)) return new URL(url);
      continue;
    }
    if (resp.status !== 200) throw new Error(`${url}: HTTP ${resp.status}: ${text.slice(0, 2000)}`);
    // The sign-in form or the consent form (the page has others, e.g. sign out).
    const page = forms(text).find(f => 'password' in f.fields || f.buttons.decision?.includes('allow'));
    if (!page) throw new Error(`${url}: neither a sign-in nor a consent form: ${text.slice(0, 3000)}`);
    const form = new URLSearchParams(Object.entries(page.fields).map(([k, v]) => [k, v[0]]));
    if (form.has('password')) {
      form.set('username', username);
      form.set('password', password);
    } else {
      form.set('decision', 'allow');
    }
    body = form;
    url = new URL(page.action, url).href;
  }
  throw new Error('too many steps in the authorization');
}

const accessTokens = [];
const redirects = [];

// The SDK's OAuthClientProvider interface, in memory (as the SDK's
// simpleOAuthClientProvider example).
const provider = {
  clientMetadataUrl,
  get redirectUrl() {
    return REDIRECT_URI;
  },
  get clientMetadata() {
    return {
      client_name: 'keygate test: TypeScript MCP SDK',
      redirect_uris: [REDIRECT_URI],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  },
  clientInformation() {
    return this._client;
  },
  saveClientInformation(info) {
    this._client = info;
  },
  tokens() {
    return this._tokens;
  },
  saveTokens(tokens) {
    this._tokens = tokens;
    accessTokens.push(tokens.access_token);
  },
  async redirectToAuthorization(url) {
    redirects.push(await authorizeInBrowser(url.href));
  },
  saveCodeVerifier(v) {
    this._verifier = v;
  },
  codeVerifier() {
    return this._verifier;
  },
};

async function connect() {
  const transport = new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: provider });
  const client = new Client({ name: 'keygate-test', version: '1.0.0' });
  try {
    await client.connect(transport);
    return client;
  } catch (e) {
    if (!(e instanceof UnauthorizedError) || redirects.length === 0) throw e;
  }
  const back = redirects.at(-1);
  const code = back.searchParams.get('code');
  if (!code) throw new Error(`no code in ${back}`);
  await transport.finishAuth(code);
  const again = new Client({ name: 'keygate-test', version: '1.0.0' });
  await again.connect(new StreamableHTTPClientTransport(new URL(mcpUrl), { authProvider: provider }));
  return again;
}

const client = await connect();
const calls = [];
for (let i = 0; i < 2; i++) {
  if (i) await new Promise(r => setTimeout(r, Number(wait) * 1000));
  const result = await client.callTool({ name: 'whoami', arguments: {} });
  if (result.isError) throw new Error(`whoami failed: ${JSON.stringify(result)}`);
  calls.push(JSON.parse(result.content[0].text));
}
await client.close();
console.log(
  JSON.stringify({
    whoami: calls,
    access_tokens: accessTokens,
    client_id: provider._client?.client_id ?? null,
    authorizations: redirects.length,
  }),
);
