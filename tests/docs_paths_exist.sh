#!/bin/sh
# docs_paths_exist.sh SOURCE_DIR — every file or folder the documentation names in backquotes
# (`docs/ARCHITECTURE.md`, `examples/models/lenet.json`, `src/io/`, ...) exists, so a reader is
# never sent to a file that is not there (the README once pointed to a DESIGN.md it did not ship).
set -eu
cd "$1"
missing=0
for doc in README.md docs/ARCHITECTURE.md examples/models/README.md; do
    [ -f "$doc" ] || { echo "docs_paths_exist: $doc is missing"; missing=1; continue; }
    # backquoted words that look like repository paths: a known top folder, or a root file
    for path in $(grep -o '`[A-Za-z0-9_./*-]*`' "$doc" | tr -d '`' |
                  grep -E '^(src|include|tools|tests|bench|examples|docs|fuzz)/|^[A-Z]+\.md$|^(Makefile|CMakeLists\.txt)$' |
                  grep -v '[*]' | sort -u); do
        [ -e "$path" ] || { echo "docs_paths_exist: $doc names $path, which does not exist"; missing=1; }
    done
done
[ "$missing" -eq 0 ] && echo "docs_paths_exist: every path the documentation names exists"
exit "$missing"
