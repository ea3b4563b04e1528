"""Python Authlib (1.9.6) as an OpenID Connect relying party of keygate: run
by tests/api/relying_parties.rs.

    rp.py ISSUER CLIENT_ID CLIENT_SECRET REDIRECT_URI USERNAME PASSWORD

Unmodified library use: Authlib's `OAuth2Session` (requests client) builds
the authorization URL with PKCE (S256), `nonce` and `state`, and exchanges
the code (checking `state`); the ID token is then parsed and validated as
Authlib's own OpenID client does it (`OpenIDMixin.parse_id_token`): the
signature against keygate's JWKS with the algorithms the discovery document
publishes (joserfc `jwt.decode`), then `authlib.oidc.core.CodeIDToken` with
`iss` and `aud` as claims options and `nonce`, `client_id` and
`access_token` as parameters (so it checks `iss`, `aud`, `exp`, `iat`,
`nonce`, `azp` and `at_hash`). To show that the validation has teeth, the
same token is validated again with a wrong nonce and with another access
token; both must be refused. UserInfo is fetched through the session.

The only custom part is the "browser" (`Browser`): it follows the
authorization URL, fills keygate's login form and allows the consent form
over an HTTP session with cookies. Prints one JSON line.
"""

import html.parser
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
import warnings
from http.cookiejar import CookieJar

import requests
from authlib.common.security import generate_token
from authlib.integrations.requests_client import OAuth2Session
from authlib.oidc.core import CodeIDToken
from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet
from joserfc.jws import JWSRegistry

warnings.simplefilter("error", DeprecationWarning)


class Forms(html.parser.HTMLParser):
    """The forms of a page: action, and inputs and buttons by name."""

    def __init__(self):
        super().__init__()
        self.forms = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.forms.append({"action": a.get("action", ""), "fields": {}, "buttons": {}})
        elif tag in ("input", "button") and self.forms and a.get("name"):
            kind = "buttons" if tag == "button" else "fields"
            self.forms[-1][kind].setdefault(a["name"], []).append(a.get("value") or "")


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


class Browser:
    """Just enough of a browser for keygate's login and consent pages."""

    def __init__(self, username, password, stop):
        self.username = username
        self.password = password
        self.stop = stop
        self.opener = urllib.request.build_opener(
            urllib.request.HTTPCookieProcessor(CookieJar()), NoRedirect()
        )

    def open(self, url, form=None):
        data = urllib.parse.urlencode(form).encode() if form is not None else None
        try:
            resp = self.opener.open(urllib.request.Request(url, data=data), timeout=10)
        except urllib.error.HTTPError as e:  # 3xx (not followed) and errors
            resp = e
        return resp.status, resp.headers.get("Location"), resp.read().decode()

    def authorize(self, url):
        """Follows `url` until keygate redirects to `stop`; returns that URL."""
        form = None
        for _ in range(10):
            status, location, body = self.open(url, form)
            form = None
            if status in (302, 303):
                url = urllib.parse.urljoin(url, location)
                if url.startswith(self.stop):
                    return url
                continue
            if status != 200:
                raise RuntimeError(f"{url}: HTTP {status}: {body[:2000]}")
            parser = Forms()
            parser.feed(body)
            page = next(
                (
                    f
                    for f in parser.forms
                    if "password" in f["fields"] or "allow" in f["buttons"].get("decision", [])
                ),
                None,
            )
            if page is None:
                raise RuntimeError(f"{url}: neither a sign-in nor a consent form: {body[:3000]}")
            form = {k: v[0] for k, v in page["fields"].items()}
            if "password" in form:
                form.update(username=self.username, password=self.password)
            else:
                form["decision"] = "allow"
            url = urllib.parse.urljoin(url, page["action"])
        raise RuntimeError("too many steps in the authorization")


def main():
    issuer, client_id, client_secret, redirect_uri, username, password = sys.argv[1:7]
    meta = requests.get(f"{issuer}/.well-known/openid-configuration", timeout=10).json()
    session = OAuth2Session(
        client_id,
        client_secret,
        scope="openid profile email",
        redirect_uri=redirect_uri,
        code_challenge_method="S256",
        token_endpoint_auth_method="client_secret_basic",
    )
    verifier = generate_token(48)
    nonce = generate_token(20)
    url, _state = session.create_authorization_url(
        meta["authorization_endpoint"], nonce=nonce, code_verifier=verifier
    )
    back = Browser(username, password, redirect_uri).authorize(url)
    token = session.fetch_token(
        meta["token_endpoint"], authorization_response=back, code_verifier=verifier
    )

    # As authlib.integrations.base_client.OpenIDMixin.parse_id_token.
    keys = KeySet.import_key_set(requests.get(meta["jwks_uri"], timeout=10).json())
    decoded = jwt.decode(
        token["id_token"],
        key=keys,
        registry=JWSRegistry(algorithms=meta["id_token_signing_alg_values_supported"]),
    )

    def validate(nonce, access_token):
        claims = CodeIDToken(
            decoded.claims,
            decoded.header,
            {
                "iss": {"essential": True, "value": meta["issuer"]},
                "aud": {"essential": True, "value": client_id},
            },
            {"nonce": nonce, "client_id": client_id, "access_token": access_token},
        )
        claims.validate(leeway=5)
        return claims

    def refused(nonce, access_token):
        try:
            validate(nonce, access_token)
        except JoseError as e:
            return e.error
        return None

    claims = validate(nonce, token["access_token"])
    userinfo = session.get(meta["userinfo_endpoint"], timeout=10)
    userinfo.raise_for_status()
    print(
        json.dumps(
            {
                "header": decoded.header,
                "claims": dict(claims),
                "userinfo": userinfo.json(),
                "wrong_nonce": refused("another-nonce", token["access_token"]),
                "wrong_access_token": refused(nonce, token["access_token"] + "x"),
            }
        )
    )


main()
