#!/usr/bin/env bash
# Idempotent test-environment setup for rvisor.
#
#  1. installs the Debian packages the test suite needs (apt-get);
#  2. builds the root-filesystem fixtures, cached OUTSIDE the repository in
#     ${RVISOR_FIXTURES:-/var/cache/rvisor/fixtures}:
#       busybox/rootfs   static busybox + one symlink per applet
#       debian/rootfs    debootstrap --variant=minbase --include=$DEBIAN_PACKAGES bookworm
#     Each fixture is built in a temporary directory next to its final place
#     and renamed into place only when complete, so an interrupted run never
#     leaves a half-built fixture behind; a fixture that exists is reused.
#
# The debootstrap mirror is derived from this machine's apt configuration
# (deb822 *.sources `URIs:` lines, or one-line sources.list entries), never
# hard-coded.  RVISOR_DEBIAN_MIRROR overrides it.
set -euo pipefail

FIXTURES="${RVISOR_FIXTURES:-/var/cache/rvisor/fixtures}"
SUITE="${RVISOR_DEBIAN_SUITE:-bookworm}"
# What the Debian fixture adds to minbase: python3 for the interpreter tests,
# gcc and make for building a C program inside the sandbox; git and sqlite3
# for the filesystem workloads (issue 4).
DEBIAN_PACKAGES="python3,gcc,make,libc6-dev,git,sqlite3"
# Programs whose presence marks a complete, current Debian fixture.
DEBIAN_MARKERS="usr/bin/python3 usr/bin/gcc usr/bin/make usr/bin/git usr/bin/sqlite3"

log() { printf '[setup] %s\n' "$*" >&2; }
die() { printf '[setup] ERROR: %s\n' "$*" >&2; exit 1; }
now() { date +%s; }

SETUP_START=$(now)

if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
    command -v sudo >/dev/null 2>&1 || die "must run as root (or have sudo)"
else
    SUDO=
fi

# --------------------------------------------------------------------------
# 1. Debian packages
# --------------------------------------------------------------------------
PACKAGES=(
    busybox-static debootstrap runc
    gcc libc6-dev make pkg-config
    python3 bash coreutils grep sed mawk findutils diffutils
    ca-certificates
    # The container engines the end-to-end tests drive (podman brings
    # conmon), and the tools that make a local OCI image for them.
    podman conmon umoci skopeo containerd docker.io
    # The CRI tests' pod networks (bridge, host-local, loopback).
    containernetworking-plugins python3-venv
    # The network tests' namespaces and veth pairs, and their client.
    iproute2 curl
)

missing=()
for p in "${PACKAGES[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done
if [ "${#missing[@]}" -gt 0 ]; then
    log "installing: ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    $SUDO apt-get update
    $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
else
    log "all required packages already installed"
fi

# --------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------

# Unmount anything still mounted below $1 (debootstrap mounts proc/sys in
# its target; an interrupted run can leave them behind).
umount_below() {
    local dir mnts
    dir=$(readlink -f "$1")
    mnts=$(awk -v d="$dir" '$2 == d || index($2, d "/") == 1 { print $2 }' /proc/self/mounts | sort -r)
    for m in $mnts; do
        $SUDO umount -l "$m" 2>/dev/null || true
    done
}

remove_stale() {
    local parent=$1 pattern=$2 d
    for d in "$parent"/$pattern; do
        [ -e "$d" ] || continue
        log "removing stale partial build $d"
        umount_below "$d"
        $SUDO rm -rf --one-file-system "$d"
    done
}

# Mirror for debootstrap, from the apt configuration.
derive_mirror() {
    if [ -n "${RVISOR_DEBIAN_MIRROR:-}" ]; then
        echo "$RVISOR_DEBIAN_MIRROR"
        return
    fi
    local uri=""
    # deb822 format: take the URIs of a stanza that carries the plain suite
    # (not -security / -updates only stanzas).
    local f
    local apt="${RVISOR_APT_ETC:-/etc/apt}"
    for f in "$apt"/sources.list.d/*.sources; do
        [ -f "$f" ] || continue
        uri=$(awk -v suite="$SUITE" '
            BEGIN { RS = ""; FS = "\n" }
            {
                uris = ""; ok = 0; deb = 0
                for (i = 1; i <= NF; i++) {
                    line = $i
                    if (line ~ /^[ \t]*#/) continue
                    if (line ~ /^Types:/ && line ~ /(^|[ \t])deb([ \t]|$)/) deb = 1
                    if (line ~ /^URIs:/) { sub(/^URIs:[ \t]*/, "", line); uris = line }
                    if (line ~ /^Suites:/) {
                        n = split(line, s, /[ \t]+/)
                        for (j = 2; j <= n; j++) if (s[j] == suite) ok = 1
                    }
                }
                if (deb && ok && uris != "") { split(uris, u, /[ \t]+/); print u[1]; exit }
            }' "$f")
        [ -n "$uri" ] && break
    done
    if [ -z "$uri" ] && [ -f "$apt/sources.list" ]; then
        uri=$(awk -v suite="$SUITE" '
            /^[ \t]*deb[ \t]/ {
                i = 2
                if ($i ~ /^\[/) { while ($i !~ /\]$/ && i < NF) i++; i++ }
                if ($(i+1) == suite) { print $i; exit }
            }' "$apt/sources.list")
    fi
    if [ -z "$uri" ]; then
        # Any non-security deb URI at all.
        uri=$(grep -hE '^(URIs:|deb )' "$apt"/sources.list.d/*.sources "$apt/sources.list" 2>/dev/null \
              | grep -v security | sed -E 's/^URIs:[ \t]*//; s/^deb[ \t]+(\[[^]]*\][ \t]+)?//' \
              | awk '{print $1; exit}')
    fi
    [ -n "$uri" ] || die "could not derive a Debian mirror from /etc/apt (set RVISOR_DEBIAN_MIRROR)"
    echo "$uri"
}

# --------------------------------------------------------------------------
# 2a. busybox rootfs
# --------------------------------------------------------------------------
build_busybox() {
    local dest="$FIXTURES/busybox/rootfs"
    if [ -x "$dest/bin/busybox" ] && [ -L "$dest/bin/sh" ]; then
        log "busybox rootfs: cached at $dest"
        return
    fi
    local t0; t0=$(now)
    $SUDO mkdir -p "$FIXTURES/busybox"
    remove_stale "$FIXTURES/busybox" 'rootfs.tmp.*'
    [ -e "$dest" ] && $SUDO rm -rf --one-file-system "$dest"
    local tmp="$FIXTURES/busybox/rootfs.tmp.$$"
    local bb=/bin/busybox
    [ -x "$bb" ] || bb=/usr/bin/busybox
    [ -x "$bb" ] || die "busybox-static is not installed"
    if command -v file >/dev/null 2>&1 && ! file -L "$bb" | grep -q 'statically linked'; then
        log "warning: $bb does not look statically linked"
    fi
    $SUDO mkdir -p "$tmp"/{bin,etc,tmp,proc,sys,dev,root}
    $SUDO chmod 1777 "$tmp/tmp"
    $SUDO chmod 0700 "$tmp/root"
    $SUDO cp "$bb" "$tmp/bin/busybox"
    $SUDO chmod 0755 "$tmp/bin/busybox"
    local applet n=0
    for applet in $("$bb" --list); do
        [ "$applet" = busybox ] && continue
        $SUDO ln -sf busybox "$tmp/bin/$applet"
        n=$((n + 1))
    done
    printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' \
        | $SUDO tee "$tmp/etc/passwd" >/dev/null
    printf 'root:x:0:\nnogroup:x:65534:\n' | $SUDO tee "$tmp/etc/group" >/dev/null
    $SUDO mv -T "$tmp" "$dest"
    log "busybox rootfs: built at $dest with $n applets in $(( $(now) - t0 ))s"
}

# --------------------------------------------------------------------------
# 2a'. OCI images (no registry), oci-archives built from the busybox rootfs:
#      images/busybox-oci.tar  localhost/rvisor-busybox:latest, cmd /bin/sh
#                              (what podman, ctr and the CRI tests run);
#      images/pause-oci.tar    localhost/pause:latest, cmd sleep forever
#                              (the CRI's pod sandbox image).
# --------------------------------------------------------------------------
build_oci_image() {
    local file="$1" ref="$2"; shift 2
    local dest="$FIXTURES/images/$file"
    if [ -s "$dest" ]; then
        log "image $ref: cached at $dest"
        return
    fi
    local t0; t0=$(now)
    $SUDO mkdir -p "$FIXTURES/images"
    local tmp="$FIXTURES/images/build.$$"
    $SUDO rm -rf "$tmp"
    $SUDO mkdir -p "$tmp"
    # shellcheck disable=SC2064
    trap "$SUDO rm -rf '$tmp'" EXIT
    (
        cd "$tmp"
        umoci init --layout oci >/dev/null
        umoci new --image oci:bb >/dev/null
        umoci insert --image oci:bb "$FIXTURES/busybox/rootfs" / >/dev/null
        umoci config --image oci:bb "$@" --config.env PATH=/bin \
            --architecture amd64 --os linux >/dev/null
        skopeo copy oci:oci:bb "oci-archive:image.tar:$ref" >/dev/null
    ) || die "building the OCI image $ref failed"
    $SUDO mv "$tmp/image.tar" "$dest"
    $SUDO rm -rf "$tmp"
    trap - EXIT
    log "image $ref: built at $dest in $(( $(now) - t0 ))s"
}

# --------------------------------------------------------------------------
# 2a''. A Python CRI client (grpcio + the CRI's generated stubs, from PyPI)
#       in a venv: the CRI tests and bench talk to containerd as kubelet does.
# --------------------------------------------------------------------------
build_cri_client() {
    local venv="$FIXTURES/cri-venv"
    if "$venv/bin/python3" -c 'import grpc, cri_api.v1.api_pb2_grpc' 2>/dev/null; then
        log "CRI client: cached at $venv"
        return
    fi
    local t0; t0=$(now)
    $SUDO rm -rf "$venv"
    $SUDO python3 -m venv "$venv" || die "creating $venv failed"
    $SUDO "$venv/bin/pip" install --quiet --disable-pip-version-check \
        'container-runtime-interface-api' 'grpcio' \
        || die "pip install of the CRI client failed"
    log "CRI client: installed in $venv in $(( $(now) - t0 ))s"
}

# --------------------------------------------------------------------------
# 2b. Debian (debootstrap) rootfs
# --------------------------------------------------------------------------
build_debian() {
    local dest="$FIXTURES/debian/rootfs"
    local m complete=1
    for m in $DEBIAN_MARKERS; do
        [ -x "$dest/$m" ] || complete=0
    done
    if [ "$complete" = 1 ]; then
        log "debian rootfs: cached at $dest"
        return
    fi
    local t0; t0=$(now)
    local mirror; mirror=$(derive_mirror)
    $SUDO mkdir -p "$FIXTURES/debian"
    remove_stale "$FIXTURES/debian" 'rootfs.tmp.*'
    if [ -e "$dest" ]; then
        log "removing incomplete or outdated $dest"
        umount_below "$dest"
        $SUDO rm -rf --one-file-system "$dest"
    fi
    local tmp="$FIXTURES/debian/rootfs.tmp.$$"
    log "debian rootfs: debootstrap --variant=minbase --include=$DEBIAN_PACKAGES $SUITE (mirror $mirror); this takes a few minutes"
    local logf="$FIXTURES/debian/debootstrap.log"
    # shellcheck disable=SC2064
    trap "umount_below '$tmp'; $SUDO rm -rf --one-file-system '$tmp'" EXIT
    if ! $SUDO debootstrap --variant=minbase --include="$DEBIAN_PACKAGES" "$SUITE" "$tmp" "$mirror" >"$logf" 2>&1; then
        tail -n 40 "$logf" >&2 || true
        if [ -f "$tmp/debootstrap/debootstrap.log" ]; then
            tail -n 40 "$tmp/debootstrap/debootstrap.log" >&2 || true
        fi
        die "debootstrap failed (full log: $logf)"
    fi
    umount_below "$tmp"
    for m in $DEBIAN_MARKERS; do
        [ -x "$tmp/$m" ] || die "debootstrap finished but $tmp/$m is missing"
    done
    # Drop the apt package cache to keep the fixture small.
    $SUDO rm -rf "$tmp/var/cache/apt/archives/"*.deb
    $SUDO mv -T "$tmp" "$dest"
    trap - EXIT
    log "debian rootfs: built at $dest in $(( $(now) - t0 ))s"
}

$SUDO mkdir -p "$FIXTURES"
# One setup at a time: a concurrent run would take the other's temporary
# build directory for a stale one.
exec 9>>"$FIXTURES/.setup.lock"
if ! flock -w 3600 9; then
    die "could not lock $FIXTURES/.setup.lock"
fi

build_busybox
build_oci_image busybox-oci.tar localhost/rvisor-busybox:latest --config.cmd /bin/sh
build_oci_image pause-oci.tar localhost/pause:latest --config.cmd /bin/sleep --config.cmd 2147483647
build_cri_client
build_debian

log "fixtures ready in $FIXTURES (setup took $(( $(now) - SETUP_START ))s)"
