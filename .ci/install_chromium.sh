#!/usr/bin/env bash
# Installs Debian's chromium for the book's real-browser check (tests/book), if it is absent.
# Idempotent; retries apt with a timeout on each attempt (house rule 13: CI breaks loudly, not flakily).
set -eo pipefail
if command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ]; then
    echo "chromium: $(/usr/bin/chromium --version 2>/dev/null || echo present)"
    exit 0
fi
SUDO=""
if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
for attempt in 1 2 3; do
    if timeout 300 $SUDO apt-get update -qq && timeout 900 $SUDO apt-get install -y -qq --no-install-recommends chromium; then
        echo "chromium: $(/usr/bin/chromium --version 2>/dev/null)"
        exit 0
    fi
    echo "apt-get attempt $attempt failed; retrying in 10 s" >&2
    sleep 10
done
echo "could not install chromium" >&2
exit 1
