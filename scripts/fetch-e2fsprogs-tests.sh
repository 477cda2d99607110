#!/usr/bin/env bash
# fetch-e2fsprogs-tests.sh [DEST]: e2fsprogs' own test images (its source
# package's tests/*/image.gz), which TestE2fsprogsTestImages reads with
# kiln's ext4 reader and judges with blkid and debugfs. Fetched once with
# `apt-get source` from the machine's Debian mirror into DEST (default
# .cache/e2fsprogs, outside git), through a private apt configuration, so
# the machine's own sources stay as they are. Prints the tests folder.
set -euo pipefail
cd "$(dirname "$0")/.."
dest=${1:-.cache/e2fsprogs}
if [ -f "$dest/tests/.complete" ]; then
  echo "$dest/tests"
  exit 0
fi
command -v dpkg-source >/dev/null || {
  echo "fetch-e2fsprogs-tests: installing dpkg-dev (apt-get source needs dpkg-source)" >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends dpkg-dev >/dev/null
}
# The mirror the machine's Debian sources name (deb822 or one-line form).
mirror=$(grep -hsoE '^URIs: *\S+/debian/?$' /etc/apt/sources.list.d/*.sources | head -n1 | awk '{print $2}')
[ -n "$mirror" ] || mirror=$(grep -hsoE '^deb +(\[[^]]*\] +)?\S+/debian/? ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list | head -n1 | awk '{print $NF}')
[ -n "$mirror" ] || mirror=http://deb.debian.org/debian
suite=$(. /etc/os-release && echo "${VERSION_CODENAME:-bookworm}")

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/lists/partial" "$work/cache/archives/partial" "$work/src"
cat >"$work/sources.list" <<SRC
deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $mirror $suite main
SRC
apt=(apt-get -q -o "Dir::Etc::SourceList=$work/sources.list" -o Dir::Etc::SourceParts=/dev/null
  -o "Dir::State::Lists=$work/lists" -o "Dir::Cache=$work/cache" -o APT::Sandbox::User=root)
"${apt[@]}" update >/dev/null
(cd "$work/src" && "${apt[@]}" source --download-only e2fsprogs >/dev/null)
orig=$(ls "$work"/src/e2fsprogs_*.orig.tar.* | head -n1)
rm -rf "$dest"
mkdir -p "$dest"
tar -xf "$orig" -C "$dest" --strip-components=1 --wildcards '*/tests/*'
touch "$dest/tests/.complete"
echo "$dest/tests"
