#!/bin/sh
# Installs the Debian packages nabla builds with, when any is missing.  Quiet when all are there.
set -e
need=""
for pkg in cmake make gcc libopenblas-dev libjansson-dev zlib1g-dev libpng-dev; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need="$need $pkg"
done
[ -z "$need" ] && exit 0
echo "nabla: installing missing packages:$need"
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq $need >/dev/null
