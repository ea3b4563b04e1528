#!/usr/bin/env bash
# Every grant keygate serves, with curl, against `make run` (config/keygate.toml).
#   bash examples/curl_walkthrough.sh [BASE_URL]
# Needs curl and openssl. Uses the dev-only demo clients and the demo user.
set -euo pipefail
BASE=${1:-http://127.0.0.1:8080}
REDIRECT=http://127.0.0.1:3000/callback
JAR=$(mktemp); trap 'rm -f "$JAR"' EXIT
json() { python3 -c "import json,sys; print(json.load(sys.stdin)$1)"; }
csrf() { sed -n 's/.*name="csrf_token" value="\([^"]*\)".*/\1/p' | head -n 1; }
step() { printf '\n== %s\n' "$*"; }

step "client_credentials (machine to machine)"
curl -sf -u demo-service:demo-service-secret -d grant_type=client_credentials -d scope=api:read "$BASE/oauth/token" | tee /dev/stderr | json '["token_type"]' >/dev/null

step "authorization_code + PKCE (web and native apps)"
VERIFIER=$(openssl rand -base64 48 | tr -d '=+/\n' | cut -c1-64)
CHALLENGE=$(printf '%s' "$VERIFIER" | openssl dgst -sha256 -binary | openssl base64 -A | tr '+/' '-_' | tr -d '=')
AUTHZ="/oauth/authorize?response_type=code&client_id=demo-app&redirect_uri=http%3A%2F%2F127.0.0.1%3A3000%2Fcallback&scope=profile+email&state=xyz&code_challenge=$CHALLENGE&code_challenge_method=S256"
# 1. sign in as the demo user (the login form, as a browser would post it)
CSRF=$(curl -sf -c "$JAR" -b "$JAR" "$BASE/login" | csrf)
curl -sf -o /dev/null -c "$JAR" -b "$JAR" --data-urlencode "csrf_token=$CSRF" \
  -d username=demo -d password=demo-password --data-urlencode "return_to=$AUTHZ" "$BASE/login"
# 2. the consent page, then "Allow"
CSRF=$(curl -sf -c "$JAR" -b "$JAR" "$BASE$AUTHZ" | csrf)
LOCATION=$(curl -s -o /dev/null -w '%{redirect_url}' -c "$JAR" -b "$JAR" \
  --data-urlencode "csrf_token=$CSRF" -d decision=allow "$BASE$AUTHZ")
echo "redirected to: $LOCATION"
CODE=$(printf '%s' "$LOCATION" | sed -n 's/.*[?&]code=\([^&]*\).*/\1/p')
# 3. exchange the code
TOKENS=$(curl -sf -u demo-app:demo-app-secret -d grant_type=authorization_code -d "code=$CODE" \
  -d "redirect_uri=$REDIRECT" -d "code_verifier=$VERIFIER" "$BASE/oauth/token")
echo "$TOKENS"
ACCESS=$(echo "$TOKENS" | json '["access_token"]')
REFRESH=$(echo "$TOKENS" | json '["refresh_token"]')

step "the protected resource"
curl -sf -H "Authorization: Bearer $ACCESS" "$BASE/api/me"; echo

step "refresh_token (rotation: the old refresh token is now spent)"
TOKENS=$(curl -sf -u demo-app:demo-app-secret -d grant_type=refresh_token -d "refresh_token=$REFRESH" "$BASE/oauth/token")
echo "$TOKENS"
REFRESH=$(echo "$TOKENS" | json '["refresh_token"]')

step "introspection (RFC 7662)"
curl -sf -u demo-app:demo-app-secret -d "token=$ACCESS" "$BASE/oauth/introspect"; echo

step "revocation (RFC 7009): the refresh token family, then the access token"
curl -sf -u demo-app:demo-app-secret -d "token=$REFRESH" "$BASE/oauth/revoke"
curl -sf -u demo-app:demo-app-secret -d "token=$ACCESS" "$BASE/oauth/revoke"
curl -s -u demo-app:demo-app-secret -d "token=$ACCESS" "$BASE/oauth/introspect"; echo

step "password (legacy profile only; RFC 9700 says do not use it)"
curl -sf -d grant_type=password -d username=demo -d password=demo-password -d scope=profile \
  -d client_id=demo-legacy -d client_secret=demo-legacy-secret "$BASE/oauth/token"; echo

step "implicit (legacy profile only; RFC 9700 says do not use it)"
IMPLICIT="/oauth/authorize?response_type=token&client_id=demo-legacy&redirect_uri=http%3A%2F%2F127.0.0.1%3A3000%2Fcallback&scope=profile&state=abc"
CSRF=$(curl -sf -c "$JAR" -b "$JAR" "$BASE$IMPLICIT" | csrf)
curl -s -o /dev/null -w '%{redirect_url}\n' -c "$JAR" -b "$JAR" --data-urlencode "csrf_token=$CSRF" -d decision=allow "$BASE$IMPLICIT"

step "done: every grant worked"
