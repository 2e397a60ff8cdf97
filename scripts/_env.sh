# Shared by scripts/demo and scripts/test: a virtual environment in the repo, and Debian packages.
# Sourced, not run.

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$REPO/.venv"

pick_python() {
    for candidate in python3.13 python3.12 python3.11 python3; do
        if command -v "$candidate" >/dev/null 2>&1 &&
            "$candidate" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)' 2>/dev/null; then
            echo "$candidate"
            return 0
        fi
    done
    echo "Smart Chumphae needs Python 3.11 or newer; none found on PATH." >&2
    return 1
}

# ensure_venv EXTRAS: create .venv if missing; (re)install the package when pyproject.toml changed.
ensure_venv() {
    local extras="$1" stamp want
    if [ ! -x "$VENV/bin/python" ]; then
        echo "==> creating virtual environment in .venv" >&2
        "$(pick_python)" -m venv "$VENV"
        "$VENV/bin/python" -m pip install --quiet --upgrade pip
    fi
    stamp="$VENV/.installed${extras:+-$extras}"
    want="$(sha256sum "$REPO/pyproject.toml" | cut -d' ' -f1)"
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        echo "==> installing Smart Chumphae${extras:+ with [$extras]} into .venv (first run takes a few minutes)" >&2
        "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e "$REPO${extras:+[$extras]}"
        echo "$want" >"$stamp"
    fi
}

# ensure_debs PKG...: install missing Debian packages when we are root; otherwise say what is missing.
ensure_debs() {
    local missing=() pkg
    command -v dpkg >/dev/null 2>&1 || return 0
    for pkg in "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    [ ${#missing[@]} -eq 0 ] && return 0
    if [ "$(id -u)" -eq 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "==> installing Debian packages: ${missing[*]}" >&2
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
        echo "==> missing Debian packages (tests that need them will skip): ${missing[*]}" >&2
        echo "    install with: sudo apt-get install ${missing[*]}" >&2
    fi
}

# ensure_web: the caregiver page (web/ → chumphae/web/dist): npm ci when package-lock.json
# changed, npm run build when a source is newer than the built page. Needs Node.js 20+ and npm.
ensure_web() {
    local web="$REPO/web" dist="$REPO/chumphae/web/dist" stamp want
    if ! command -v npm >/dev/null 2>&1; then
        echo "==> npm not found: the caregiver page cannot be built (install Node.js 20+ with npm)" >&2
        return 0
    fi
    stamp="$web/node_modules/.package-lock.sha256"
    want="$(sha256sum "$web/package-lock.json" | cut -d' ' -f1)"
    if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
        echo "==> installing the caregiver page's front-end libraries (npm ci)" >&2
        (cd "$web" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
        echo "$want" >"$stamp"
    fi
    if [ ! -f "$dist/index.html" ] || [ -n "$(find "$web/src" "$web/index.html" "$web/package-lock.json" \
        "$web/vite.config.ts" "$web/tsconfig.json" -newer "$dist/index.html" 2>/dev/null | head -n 1)" ]; then
        echo "==> building the caregiver page into chumphae/web/dist (npm run build)" >&2
        (cd "$web" && npm run --silent build >/dev/null)
    fi
}
