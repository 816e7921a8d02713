#!/bin/sh
# Installs the Debian packages nabla needs, when any is missing; quiet when all are there.
# Extra package names may be given (make demo adds the Fashion-MNIST data set).  OpenMPI is
# optional to the build (CMakeLists.txt) but installed, so `make test` runs the MPI tests.
set -e
need=""
for pkg in cmake make gcc pkgconf libopenblas-dev libjansson-dev zlib1g-dev libdeflate-dev libpng-dev \
           libopenmpi-dev openmpi-bin "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need="$need $pkg"
done
[ -z "$need" ] && exit 0
echo "nabla: installing missing packages:$need"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $need >/dev/null
