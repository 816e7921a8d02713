#!/bin/sh
# exports_only_nb_names.sh LIBNABLA_SO — the shared library's dynamic symbol table holds the public
# nb_ names and nothing else: no internal nb__ helper, no kernel, no symbol of a static function
# made visible by mistake.  (The sections' own _init/_fini are the linker's, not ours.)
set -eu
lib=$1
symbols=$(nm -D --defined-only "$lib" | awk '{ print $3 }' | grep -v -E '^(_init|_fini)$')
bad=$(printf '%s\n' "$symbols" | grep -v -E '^nb_[a-z0-9]' || true)
internal=$(printf '%s\n' "$symbols" | grep -E '^nb__' || true)
if [ -n "$bad$internal" ]; then
    echo "exports_only_nb_names: $lib exports names outside the public nb_ surface:" >&2
    printf '%s\n' $bad $internal | sed 's/^/    /' >&2
    exit 1
fi
echo "exports_only_nb_names: $(printf '%s\n' "$symbols" | wc -l) symbols, all public nb_ names"
