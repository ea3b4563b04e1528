#!/usr/bin/env bash
# Installs the pinned OpenID Connect relying parties that
# tests/api/relying_parties.rs runs:
#   TARGET/oidc-py         a Python venv from requirements.txt (Authlib 1.9.6)
#   tests/oidc/node_modules npm ci: openid-client 6.8.9 and node@22 (package-lock.json)
# TARGET is $CARGO_TARGET_DIR or target/. Each install is skipped while its
# stamp (a copy of the file it was installed from) is current, so a second run
# is instant. Concurrent runs wait for each other (flock). Needs python3 (with
# venv) and npm; installs nothing outside TARGET and tests/oidc/node_modules.
# Apache httpd and mod_auth_openidc come from apt (`make test-deps`).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
target="${CARGO_TARGET_DIR:-$root/target}"
mkdir -p "$target"

missing=""
command -v python3 >/dev/null 2>&1 || missing="$missing python3 python3-venv"
command -v npm >/dev/null 2>&1 || missing="$missing nodejs npm"
if [ -n "$missing" ]; then
  echo "tests/oidc/setup.sh: missing:$missing; install them (Debian/Ubuntu:" \
    "sudo apt-get install -y$missing) and run the tests again" >&2
  exit 1
fi

exec 9>"$target/oidc-setup.lock"
flock 9

dir="$target/oidc-py"
req="$here/requirements.txt"
if ! { cmp -s "$req" "$dir/.keygate-requirements" 2>/dev/null && [ -x "$dir/bin/python" ]; }; then
  echo "tests/oidc/setup.sh: installing $(grep -i '^authlib==' "$req") into $dir (pip)" >&2
  rm -rf "$dir"
  python3 -m venv "$dir" || {
    echo "python3 -m venv failed: install python3-venv (Debian/Ubuntu: sudo apt-get install -y python3-venv)" >&2
    exit 1
  }
  "$dir/bin/python" -m pip install -q --disable-pip-version-check -r "$req" >&2
  cp "$req" "$dir/.keygate-requirements"
fi

stamp="$here/node_modules/.keygate-package-lock.json"
if ! cmp -s "$here/package-lock.json" "$stamp" 2>/dev/null; then
  echo "tests/oidc/setup.sh: npm ci in tests/oidc (openid-client, node@22)" >&2
  rm -f "$stamp"
  (cd "$here" && npm ci --no-audit --no-fund --loglevel=error >&2)
  # node@22 fetches its binary in an install script (allowScripts in package.json).
  "$here/node_modules/.bin/node" --version >/dev/null
  cp "$here/package-lock.json" "$stamp"
fi
