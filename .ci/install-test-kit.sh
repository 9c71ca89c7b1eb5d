#!/usr/bin/env bash
# Installs the real parts the tests drive: CNCF distribution (docker-registry, bookworm)
# and cosign 2.5 (Debian trixie, one static binary; the pin keeps everything else on bookworm),
# SoftHSM2, Redis, Debian's chromium (the status page test) and wrk (the bench).
# Idempotent: skips what is already installed. Needs root (apt).
set -euo pipefail
need_update=1
apt_update() { if [ "$need_update" = 1 ]; then apt-get update -qq; need_update=0; fi; }

if ! command -v docker-registry >/dev/null 2>&1; then
  apt_update
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq docker-registry >/dev/null
  # the package starts a system registry on :5000 when systemd is present; we run our own per test
  (systemctl stop docker-registry 2>/dev/null || true)
fi

if ! command -v cosign >/dev/null 2>&1; then
  if [ ! -f /etc/apt/sources.list.d/trixie.list ]; then
    echo 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian trixie main' \
      > /etc/apt/sources.list.d/trixie.list
    printf 'Package: *\nPin: release n=trixie\nPin-Priority: 100\n' > /etc/apt/preferences.d/trixie
    need_update=1
  fi
  apt_update
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -t trixie cosign >/dev/null
fi

if ! command -v softhsm2-util >/dev/null 2>&1 || ! command -v pkcs11-tool >/dev/null 2>&1; then
  apt_update
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq softhsm2 opensc >/dev/null
fi

# headless Chromium for the status page test (driven by playwright-core, never its own browser download)
if [ ! -x /usr/bin/chromium ]; then
  apt_update
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

# containers/image as CRI-O and OpenShift use it: skopeo 1.18 from trixie in a small chroot
# (bookworm's skopeo has sigstore verification patched out; trixie's needs a newer glibc).
SKOPEO_ROOTFS="${SIGNET_TEST_SKOPEO_ROOTFS:-/var/tmp/skopeo-trixie}"
if [ ! -x "$SKOPEO_ROOTFS/usr/bin/skopeo" ]; then
  if ! command -v debootstrap >/dev/null 2>&1; then
    apt_update
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
  fi
  rm -rf "$SKOPEO_ROOTFS.partial"
  # dpkg complains that golang-github-containers-common is unconfigured: the skopeo binary works
  debootstrap --variant=minbase --include=skopeo,ca-certificates trixie "$SKOPEO_ROOTFS.partial" http://deb.debian.org/debian >/dev/null 2>&1 || true
  if [ -x "$SKOPEO_ROOTFS.partial/usr/bin/skopeo" ]; then mv "$SKOPEO_ROOTFS.partial" "$SKOPEO_ROOTFS"; else echo "debootstrap of the skopeo chroot failed" >&2; exit 1; fi
fi

# cosign 3.1, notation, oras and crane from Debian unstable: static Go binaries unpacked into
# /opt/sid-tools/usr/bin without adding unstable to the system's sources. cosign 2.5 stays on PATH as
# `cosign`; tests call 3.x by its path (test/helpers/cosign.ts COSIGN3_BIN).
SID_TOOLS="${SIGNET_TEST_SID_TOOLS:-/opt/sid-tools}"
if [ ! -x "$SID_TOOLS/usr/bin/cosign" ] || [ ! -x "$SID_TOOLS/usr/bin/notation" ]; then
  A=/var/tmp/apt-sid
  mkdir -p "$A/lists" "$A/cache/archives/partial" "$A/debs" "$SID_TOOLS"
  echo 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian sid main' > "$A/sources.list"
  O=(-o "Dir::Etc::sourcelist=$A/sources.list" -o Dir::Etc::sourceparts=- -o "Dir::State::Lists=$A/lists" -o "Dir::Cache=$A/cache")
  apt-get "${O[@]}" update -qq
  (cd "$A/debs" && rm -f ./*.deb && apt-get "${O[@]}" download cosign notation oras crane 2>/dev/null)
  for d in "$A"/debs/*.deb; do dpkg -x "$d" "$SID_TOOLS"; done
fi

# skopeo 1.22 (containers/image 5.39, current upstream; trixie's 1.18 has 5.34.2) from Debian unstable,
# next to 1.18 in the same chroot: sid's binary as /usr/bin/skopeo-1.22 and the one library
# trixie lacks (libgpgme45) in the chroot's lib dirs; glibc, sqlite, libassuan and containers-common
# are trixie's. Downloaded with the /opt/sid-tools trick (no sid in any sources list).
SKOPEO_NEW=skopeo-1.22
if ! chroot "$SKOPEO_ROOTFS" "$SKOPEO_NEW" --version >/dev/null 2>&1 || [ ! -s "$SKOPEO_ROOTFS/usr/share/doc/$SKOPEO_NEW.built-using" ]; then
  A=/var/tmp/apt-sid
  mkdir -p "$A/lists" "$A/cache/archives/partial" "$A/skopeo-debs"
  echo 'deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian sid main' > "$A/sources.list"
  O=(-o "Dir::Etc::sourcelist=$A/sources.list" -o Dir::Etc::sourceparts=- -o "Dir::State::Lists=$A/lists" -o "Dir::Cache=$A/cache")
  apt-get "${O[@]}" update -qq
  rm -rf "$A/skopeo-debs" "$A/skopeo-root" && mkdir -p "$A/skopeo-debs" "$A/skopeo-root"
  (cd "$A/skopeo-debs" && apt-get "${O[@]}" download skopeo libgpgme45 2>&1 | grep -v '^W: Download is performed unsandboxed' >&2 || true)
  [ -f "$(ls "$A"/skopeo-debs/skopeo_*.deb 2>/dev/null | head -1)" ] && [ -f "$(ls "$A"/skopeo-debs/libgpgme45_*.deb 2>/dev/null | head -1)" ] || { echo "apt-get download of skopeo/libgpgme45 from Debian unstable failed" >&2; exit 1; }
  v=$(dpkg-deb -f "$A"/skopeo-debs/skopeo_*.deb Version)
  case "$v" in
    1.22.*) ;;
    *) echo "Debian unstable now has skopeo $v, not 1.22: install it under its own name (SKOPEO_NEW here, SKOPEO_NEW in test/helpers/verifiers.ts)" >&2; exit 1 ;;
  esac
  for d in "$A"/skopeo-debs/*.deb; do dpkg -x "$d" "$A/skopeo-root"; done
  cp -a "$A/skopeo-root/usr/lib/." "$SKOPEO_ROOTFS/usr/lib/"
  # what it was built from (containers/image's version, for the tests' report), next to the binary
  dpkg-deb -f "$A"/skopeo-debs/skopeo_*.deb Static-Built-Using > "$SKOPEO_ROOTFS/usr/share/doc/$SKOPEO_NEW.built-using"
  install -m 0755 "$A/skopeo-root/usr/bin/skopeo" "$SKOPEO_ROOTFS/usr/bin/$SKOPEO_NEW"
  if ! chroot "$SKOPEO_ROOTFS" "$SKOPEO_NEW" --version | grep -q '^skopeo version 1\.22\.'; then
    echo "$SKOPEO_NEW does not run in $SKOPEO_ROOTFS:" >&2
    chroot "$SKOPEO_ROOTFS" "$SKOPEO_NEW" --version >&2 || true
    exit 1
  fi
fi

# wrk (C, bookworm) for the bench's webhook peak: it leaves the shared cores to the receiver
if ! command -v wrk >/dev/null 2>&1; then
  apt_update
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null
fi

if ! command -v redis-server >/dev/null 2>&1; then
  apt_update
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq redis-server >/dev/null
fi
if ! redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no
fi

echo "test kit: $(docker-registry --version 2>&1 | head -1); cosign $(dpkg-query -W -f='${Version}' cosign 2>/dev/null) and $(ls /var/tmp/apt-sid/debs/cosign_*.deb 2>/dev/null | sed 's/.*cosign_\([^_]*\)_.*/\1/'); softhsm2 $(softhsm2-util --version); redis $(redis-server --version | cut -d' ' -f3); $(/usr/bin/chromium --version 2>/dev/null | head -1)"
