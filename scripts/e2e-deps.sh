#!/usr/bin/env bash
# What the browser tests (tests/e2e) need from the system: Debian's Chromium and a font
# with Hangul, so Korean renders in screenshots instead of empty boxes.
#
# Idempotent: installs through apt only what is missing, and says clearly what to do when
# it cannot. The Playwright Python package comes from the venv's dev extras; we never run
# `playwright install` (no browser downloads: the tests launch /usr/bin/chromium).
set -euo pipefail

CHROMIUM="${MEMLAYER_E2E_CHROMIUM:-/usr/bin/chromium}"

missing=()
[[ -x "$CHROMIUM" ]] || missing+=(chromium)
if ! fc-list :lang=ko 2>/dev/null | grep -q .; then
    missing+=(fonts-nanum)
fi

if [[ ${#missing[@]} -eq 0 ]]; then
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "e2e-deps: missing ${missing[*]} and apt-get is not available." >&2
    echo "e2e-deps: install Chromium and a Korean font yourself, then set" \
        "MEMLAYER_E2E_CHROMIUM to the browser's path." >&2
    exit 1
fi

sudo=()
if [[ $(id -u) -ne 0 ]]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        sudo=(sudo -n)
    else
        echo "e2e-deps: missing ${missing[*]}; installing needs root." >&2
        echo "e2e-deps: run: sudo apt-get update && sudo apt-get install -y ${missing[*]}" >&2
        exit 1
    fi
fi

echo "e2e-deps: installing ${missing[*]} (apt)"
if ! { "${sudo[@]}" apt-get update -qq &&
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq \
        --no-install-recommends "${missing[@]}"; }; then
    echo "e2e-deps: apt-get could not install ${missing[*]} (offline or no such package?)." >&2
    exit 1
fi

if [[ ! -x "$CHROMIUM" ]]; then
    echo "e2e-deps: apt finished but $CHROMIUM is still missing." >&2
    exit 1
fi
