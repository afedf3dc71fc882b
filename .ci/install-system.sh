#!/usr/bin/env bash
# System packages that `nucleiseg report` needs to print its PDF, installed only when missing:
#   - a Chromium/Chrome browser (prints the HTML report to PDF, headless)
#   - poppler-utils (pdftoppm/pdftotext: to look at and check the PDF)
#   - fonts: DejaVu and Liberation (the report's fonts)
# Idempotent: a second run finds everything and installs nothing.
# Usage: .ci/install-system.sh            (as root, or with sudo available)
# Without apt-get (macOS, other distributions) it installs nothing and exits 0: the tests that need a browser or
# poppler skip, each with one line saying what to install; it prints how to get a browser.
set -euo pipefail
PYTHON="${PYTHON:-python3}"

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi

have_browser() {
    if [ -n "${NUCLEISEG_CHROMIUM:-}" ] && [ -x "${NUCLEISEG_CHROMIUM}" ]; then
        return 0
    fi
    local b
    for b in chromium chromium-browser google-chrome google-chrome-stable; do
        # chromium-browser on Ubuntu may be a snap stub: it must really answer --version
        if command -v "$b" >/dev/null 2>&1 && "$b" --version >/dev/null 2>&1; then
            echo "browser: $(command -v "$b") ($("$b" --version 2>/dev/null | tail -n 1))"
            return 0
        fi
    done
    for b in "${PLAYWRIGHT_BROWSERS_PATH:-$HOME/.cache/ms-playwright}"/chromium-*/chrome-linux*/chrome; do
        if [ -x "$b" ]; then
            echo "browser: $b (Playwright's)"
            return 0
        fi
    done
    return 1
}

have_font() {
    command -v fc-list >/dev/null 2>&1 && fc-list 2>/dev/null | grep -qi "$1"
}

need=()
have_browser || need+=(chromium)
command -v pdftoppm >/dev/null 2>&1 || need+=(poppler-utils)
have_font "DejaVu" || need+=(fonts-dejavu-core)
have_font "Liberation" || need+=(fonts-liberation)

if [ "${#need[@]}" -eq 0 ]; then
    echo "install-system: everything the PDF report needs is installed"
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-system: missing ${need[*]}, and this system has no apt-get: the tests and the PDF that need them" \
         "will skip or say so. To get a browser: $PYTHON -m playwright install chromium (or install Chrome and" \
         "set NUCLEISEG_CHROMIUM to its path); poppler: brew install poppler (macOS)." >&2
    exit 0
fi

# (grep -q on a pipe under pipefail fails when apt-cache gets SIGPIPE: read the policy into a variable first)
has_candidate() {
    local policy
    policy="$(apt-cache policy "$1" 2>/dev/null || true)"
    [[ "$policy" =~ Candidate:\ [0-9] ]]
}

# On Ubuntu "chromium" is not an apt package (only a snap stub, useless in containers):
# take Chrome from Playwright there, or the Debian package elsewhere.
if [[ " ${need[*]} " == *" chromium "* ]] && ! has_candidate chromium; then
    $SUDO apt-get update
    if ! has_candidate chromium; then
        need=("${need[@]/chromium}")
        echo "install-system: no apt package 'chromium' here; installing Playwright's Chromium instead"
        "$PYTHON" -m playwright install --with-deps chromium
    fi
    updated=1
fi

pkgs=()
for p in "${need[@]}"; do
    [ -n "$p" ] && pkgs+=("$p")
done
if [ "${#pkgs[@]}" -gt 0 ]; then
    echo "install-system: installing ${pkgs[*]}"
    if [ -z "${updated:-}" ]; then
        $SUDO apt-get update
    fi
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${pkgs[@]}"
fi
have_browser || { echo "install-system: still no browser for the PDF report" >&2; exit 1; }
