"""The official Python MCP SDK client (`mcp` 1.x or 2.x) against an MCP server
protected by keygate: run by tests/api/mcp_clients.rs.

    client.py MCP_URL USERNAME PASSWORD WAIT_SECONDS [CLIENT_METADATA_URL]

Unmodified SDK usage: `OAuthClientProvider` discovers the authorization server
from the MCP server's 401 (RFC 9728), registers (RFC 7591) — or, given
CLIENT_METADATA_URL (`client_metadata_url=`, in mcp 1.30.0 and 2.x), uses
that https URL as its `client_id` (a client ID metadata document, which the
authorization server fetches; no registration) —, authorizes with PKCE and
`resource` (RFC 8707), exchanges the code and refreshes the token.
The only custom part is the "browser" (`Browser`): it follows the
authorization URL, fills keygate's login form and allows the consent form
over an HTTP session with cookies, and hands `code`, `state` (and `iss`,
RFC 9207, to mcp 2.x) from the final redirect back to the SDK's callback.

Calls `whoami`, waits WAIT_SECONDS (past the access token's lifetime, so the
SDK must refresh), calls `whoami` again, and prints one JSON line: the two
`whoami` results, every access token the SDK stored and how many times it
sent the user to the authorization page.
"""

import asyncio
import html.parser
import json
import sys
import urllib.error
import urllib.parse
import urllib.request
from http.cookiejar import CookieJar

try:  # mcp 2.x
    import httpx2 as httpx
except ImportError:  # mcp 1.x
    import httpx

from mcp import ClientSession
from mcp.client.auth import OAuthClientProvider, TokenStorage
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import OAuthClientInformationFull, OAuthClientMetadata, OAuthToken

REDIRECT_URI = "http://127.0.0.1:9/callback"  # never contacted: the browser stops at it


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

    def __init__(self, username, password):
        self.username = username
        self.password = password
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
        """Follows `url` until keygate redirects to REDIRECT_URI; returns that URL."""
        form = None
        for _ in range(10):
            status, location, body = self.open(url, form)
            form = None
            if status in (302, 303):
                url = urllib.parse.urljoin(url, location)
                if url.startswith(REDIRECT_URI):
                    return url
                continue
            if status != 200:
                raise RuntimeError(f"{url}: HTTP {status}: {body[:2000]}")
            parser = Forms()
            parser.feed(body)
            # The sign-in form or the consent form (the page has others, e.g. sign out).
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


class Memory(TokenStorage):
    def __init__(self):
        self.tokens = None
        self.client = None
        self.access_tokens = []

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens: OAuthToken):
        self.tokens = tokens
        self.access_tokens.append(tokens.access_token)

    async def get_client_info(self):
        return self.client

    async def set_client_info(self, client_info: OAuthClientInformationFull):
        self.client = client_info


async def main(mcp_url, username, password, wait, client_metadata_url=None):
    browser = Browser(username, password)
    storage = Memory()
    redirects = []

    async def redirect_handler(url: str):
        redirects.append(browser.authorize(url))

    async def callback_handler():
        query = urllib.parse.parse_qs(urllib.parse.urlparse(redirects[-1]).query)
        if "code" not in query:
            raise RuntimeError(f"no code in {redirects[-1]}")
        code, state = query["code"][0], query.get("state", [None])[0]
        try:  # mcp 2.x: AuthorizationCodeResult, with RFC 9207 `iss` (keygate sends it)
            from mcp.shared.auth import AuthorizationCodeResult

            return AuthorizationCodeResult(code=code, state=state, iss=query.get("iss", [None])[0])
        except ImportError:  # mcp 1.x: (code, state)
            return code, state

    auth = OAuthClientProvider(
        server_url=mcp_url,
        client_metadata=OAuthClientMetadata(
            client_name="keygate test: Python MCP SDK",
            redirect_uris=[REDIRECT_URI],
            grant_types=["authorization_code", "refresh_token"],
            response_types=["code"],
            token_endpoint_auth_method="none",
        ),
        storage=storage,
        redirect_handler=redirect_handler,
        callback_handler=callback_handler,
        client_metadata_url=client_metadata_url,
    )
    calls = []
    async with httpx.AsyncClient(auth=auth, timeout=30) as http:
        async with streamable_http_client(mcp_url, http_client=http) as streams:
            async with ClientSession(streams[0], streams[1]) as session:
                await session.initialize()
                for i in range(2):
                    if i:
                        await asyncio.sleep(wait)
                    result = await session.call_tool("whoami", {})
                    if result.isError if hasattr(result, "isError") else result.is_error:
                        raise RuntimeError(f"whoami failed: {result}")
                    calls.append(json.loads(result.content[0].text))
    print(
        json.dumps(
            {
                "whoami": calls,
                "access_tokens": storage.access_tokens,
                "client_id": storage.client.client_id if storage.client else None,
                "authorizations": len(redirects),
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4], float(sys.argv[4]), *sys.argv[5:6]))
