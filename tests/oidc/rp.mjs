// Node `openid-client` (6.8.9, OpenID Connect mode) as a relying party of
// keygate: run by tests/api/relying_parties.rs.
//
//     node rp.mjs ISSUER CLIENT_ID CLIENT_SECRET REDIRECT_URI USERNAME PASSWORD [POST_LOGOUT_REDIRECT_URI]
//
// Unmodified library use: `discovery` (with `allowInsecureRequests`, because
// the test's keygate is plain http on loopback), `buildAuthorizationUrl` with
// PKCE (S256), `nonce` and `state`, `authorizationCodeGrant` (the library
// checks `state`, `iss` (RFC 9207) and validates the ID token: signature by
// the JWKS, `iss`, `aud`, `exp`, `iat`, `nonce`, `at_hash`…), `fetchUserInfo`
// (with the expected `sub`) and `refreshTokenGrant` (a new ID token).
// Given POST_LOGOUT_REDIRECT_URI: `buildEndSessionUrl` with `id_token_hint`,
// `post_logout_redirect_uri` and `state`, followed by the browser (confirming
// on keygate's logout page if it shows one) to the registered URI; then the
// browser tries to authorize again to see whether keygate still knows it.
//
// The only custom part is the "browser": it follows redirects with a cookie
// jar and fills keygate's login, consent and logout forms (the form contract
// in SPEC.md). Prints one JSON line.

import * as client from 'openid-client';

const [issuer, clientId, clientSecret, redirectUri, username, password, postLogout] = process.argv.slice(2);

/** The forms of a page: action, and inputs and buttons by name. */
function forms(html) {
  const named = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'" };
  const unescape = s =>
    s.replace(/&(#x[0-9a-f]+|#[0-9]+|[a-z]+);/gi, (m, e) =>
      e[0] !== '#' ? (named[e] ?? m) : String.fromCodePoint(e[1] === 'x' || e[1] === 'X' ? parseInt(e.slice(2), 16) : Number(e.slice(1))),
    );
  const attrs = tag => Object.fromEntries([...tag.matchAll(/([a-z_-]+)="([^"]*)"/g)].map(m => [m[1], unescape(m[2])]));
  return [...html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form>/g)].map(([, open, inner]) => {
    const form = { action: attrs(open).action ?? '', fields: {}, buttons: {} };
    for (const [tag, kind] of inner.matchAll(/<(input|button)\b[^>]*>/g)) {
      const a = attrs(tag);
      if (a.name) (form[kind === 'button' ? 'buttons' : 'fields'][a.name] ??= []).push(a.value ?? '');
    }
    return form;
  });
}

const cookies = new Map();

/** One request with the cookie jar, no redirect following. */
async function request(url, body) {
  const resp = await fetch(url, {
    method: body ? 'POST' : 'GET',
    body,
    redirect: 'manual',
    headers: { cookie: [...cookies].map(([k, v]) => `${k}=${v}`).join('; ') },
  });
  for (const c of resp.headers.getSetCookie()) {
    const [pair] = c.split(';');
    const eq = pair.indexOf('=');
    const expired = /;\s*max-age=0\b/i.test(c) || /;\s*expires=Thu, 01 Jan 1970/i.test(c);
    if (expired) cookies.delete(pair.slice(0, eq).trim());
    else cookies.set(pair.slice(0, eq).trim(), pair.slice(eq + 1).trim());
  }
  return { resp, text: await resp.text() };
}

/**
 * Follows `start` until a redirect to a URL starting with `stop`; signs in,
 * allows consent and confirms logout on the way. Returns that URL and the
 * pages it filled in.
 */
async function browse(start, stop) {
  let url = start;
  let body;
  const pages = [];
  for (let i = 0; i < 10; i++) {
    const { resp, text } = await request(url, body);
    body = undefined;
    if (resp.status === 302 || resp.status === 303) {
      url = new URL(resp.headers.get('location'), url).href;
      if (url.startsWith(stop)) return { url: new URL(url), pages };
      continue;
    }
    if (resp.status !== 200) throw new Error(`${url}: HTTP ${resp.status}: ${text.slice(0, 2000)}`);
    const all = forms(text);
    const page =
      all.find(f => 'password' in f.fields) ??
      all.find(f => f.buttons.decision?.includes('allow')) ??
      all.find(f => f.buttons.decision?.includes('logout'));
    if (!page) throw new Error(`${url}: no sign-in, consent or logout form: ${text.slice(0, 3000)}`);
    const form = new URLSearchParams(Object.entries(page.fields).map(([k, v]) => [k, v[0]]));
    if (form.has('password')) {
      form.set('username', username);
      form.set('password', password);
      pages.push('login');
    } else if (page.buttons.decision.includes('allow')) {
      form.set('decision', 'allow');
      pages.push('consent');
    } else {
      form.set('decision', 'logout');
      pages.push('logout');
    }
    body = form;
    url = new URL(page.action, url).href;
  }
  throw new Error(`too many steps from ${start}`);
}

/** Whether an authorization request now meets keygate's sign-in form. */
async function signInAsked(config) {
  const url = client.buildAuthorizationUrl(config, {
    redirect_uri: redirectUri,
    scope: 'openid',
    code_challenge: await client.calculatePKCECodeChallenge(client.randomPKCECodeVerifier()),
    code_challenge_method: 'S256',
    nonce: client.randomNonce(),
    state: client.randomState(),
  });
  let target = url.href;
  for (let i = 0; i < 5; i++) {
    const { resp, text } = await request(target);
    if (resp.status === 302 || resp.status === 303) {
      target = new URL(resp.headers.get('location'), target).href;
      if (target.startsWith(redirectUri)) return false;
      continue;
    }
    return forms(text).some(f => 'password' in f.fields);
  }
  throw new Error('too many redirects');
}

const config = await client.discovery(new URL(issuer), clientId, clientSecret, client.ClientSecretBasic(clientSecret), {
  execute: [client.allowInsecureRequests],
});

const verifier = client.randomPKCECodeVerifier();
const nonce = client.randomNonce();
const state = client.randomState();
const authUrl = client.buildAuthorizationUrl(config, {
  redirect_uri: redirectUri,
  scope: 'openid profile email',
  code_challenge: await client.calculatePKCECodeChallenge(verifier),
  code_challenge_method: 'S256',
  nonce,
  state,
});
const back = await browse(authUrl.href, redirectUri);
const tokens = await client.authorizationCodeGrant(config, back.url, {
  pkceCodeVerifier: verifier,
  expectedNonce: nonce,
  expectedState: state,
  idTokenExpected: true,
});
const claims = tokens.claims();
const userinfo = await client.fetchUserInfo(config, tokens.access_token, claims.sub);
const refreshed = await client.refreshTokenGrant(config, tokens.refresh_token);
const report = {
  authorization_pages: back.pages,
  id_token: tokens.id_token,
  claims,
  userinfo,
  refreshed_claims: refreshed.claims() ?? null,
  refreshed_id_token: refreshed.id_token ?? null,
};

if (postLogout) {
  report.sign_in_asked_before_logout = await signInAsked(config);
  const logoutState = client.randomState();
  const endUrl = client.buildEndSessionUrl(config, {
    id_token_hint: refreshed.id_token ?? tokens.id_token,
    post_logout_redirect_uri: postLogout,
    state: logoutState,
  });
  const landed = await browse(endUrl.href, postLogout);
  report.end_session_url = endUrl.href;
  report.logout_pages = landed.pages;
  report.logout_landed = landed.url.href;
  report.logout_state_sent = logoutState;
  report.sign_in_asked_after_logout = await signInAsked(config);
}
console.log(JSON.stringify(report));
