#!/bin/sh
# install_and_link.sh BUILD_DIR CC [EXTRA_FLAGS] — `make install` as a user runs it, into a
# temporary prefix, then a program built through each pkg-config file:
#   nabla.pc         links libnabla.so (runs with LD_LIBRARY_PATH)
#   nabla-static.pc  links libnabla.a: the program needs no libnabla.so at all
# EXTRA_FLAGS carries the sanitizer flags of an instrumented build.
set -eu
build=$1 cc=$2 extra=${3:-}
tmp=$(mktemp -d /tmp/nabla-install.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
cmake --install "$build" --prefix "$tmp/prefix" >/dev/null
cat > "$tmp/use.c" <<'C'
#include <nabla.h>
int main(void) {
    nb_tensor *a = nb_from_data((float[]){1, 2, 3}, NB_SHAPE(3));
    nb_tensor *s = nb_sum(a);
    int ok = s && nb_item(s) == 6.0f;
    nb_tensor_free(s);
    nb_tensor_free(a);
    return ok ? 0 : 1;
}
C
pcdir=$(dirname "$(find "$tmp/prefix" -name nabla.pc)")
export PKG_CONFIG_PATH="$pcdir"
fail() { echo "install_and_link: $*" >&2; exit 1; }

# shellcheck disable=SC2046,SC2086 # pkg-config's words are meant to split
$cc $extra -o "$tmp/use_shared" "$tmp/use.c" $(pkg-config --cflags --libs nabla) || fail "shared link failed"
ldd "$tmp/use_shared" | grep -q 'libnabla\.so' || fail "nabla.pc did not link libnabla.so"
LD_LIBRARY_PATH="$pcdir/.." "$tmp/use_shared" || fail "the shared program gave a wrong sum"

# shellcheck disable=SC2046,SC2086
$cc $extra -o "$tmp/use_static" "$tmp/use.c" $(pkg-config --cflags --libs nabla-static) || fail "static link failed"
if ldd "$tmp/use_static" | grep -q 'libnabla'; then fail "nabla-static.pc still linked libnabla.so"; fi
"$tmp/use_static" || fail "the static program gave a wrong sum"
echo "install_and_link: shared and static links work"
