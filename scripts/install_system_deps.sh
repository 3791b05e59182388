#!/usr/bin/env bash
# Debian packages the real environments need, installed only when missing (idempotent, quiet):
#   chromium + chromium-driver   MiniWoB++ (headless browser and its WebDriver; nothing downloads a driver)
#   libegl1 + libgl1-mesa-dri    Meta-World / MuJoCo off-screen rendering with MUJOCO_GL=egl (software GL)
# Needs root (or sudo) and apt-get; elsewhere it says what to install and exits 0, so the Python
# set-up still runs (the environments' tests then skip with this hint).
set -euo pipefail

PACKAGES=(chromium chromium-driver libegl1 libgl1-mesa-dri fonts-liberation)

missing=()
for pkg in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$pkg")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install_system_deps: no apt-get here; install these yourself: ${missing[*]}" >&2
    exit 0
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
        SUDO="sudo -n"
    else
        echo "install_system_deps: not root; run: sudo apt-get install -y ${missing[*]}" >&2
        exit 0
    fi
fi
echo "install_system_deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
