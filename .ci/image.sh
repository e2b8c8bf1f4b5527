#!/usr/bin/env bash
# The lesionqsm BIDS App image: build it with podman from Debian's packages only, smoke-test it.
#
#   bash .ci/image.sh build     base image (mmdebstrap, cached) + `podman build` of Containerfile
#   bash .ci/image.sh test      build, then run the tiny synthetic cohort in the image and on the
#                               host (.venv) and compare; export with `podman save`
#   bash .ci/image.sh save      export lesionqsm-VERSION.tar (docker-archive, for Apptainer)
#
# What is specific to the machines it runs on stays here, not in the Containerfile:
#   * podman, runc and mmdebstrap come from apt; runc is the runtime (crun fails on these
#     machines: cgroups, rlimits), with default ulimits that the sandbox allows;
#   * the base image is Debian bookworm minbase made by mmdebstrap and `podman import`ed (no
#     image registry is reachable); its tarball is cached in $LESIONQSM_IMAGE_CACHE;
#   * pip inside the build is configured as pip on the host is (`pip config list`): the same
#     pip.conf and every local path it names (the CA bundle, local indexes) bind-mounted
#     read-only for the build only, so none of it ends up in the image;
#   * with a .venv present, the image's Python packages are constrained to the versions in it,
#     so that the image computes what the tested host environment computes.
#
# Settings (environment): LESIONQSM_IMAGE_CACHE (default /var/cache/lesionqsm-image),
# IMAGE (default lesionqsm:VERSION), FSL_HOME (an FSL installation to copy into the image),
# IMAGE_TAR (default lesionqsm-VERSION.tar, for save), PODMAN_BUILD_FLAGS (options of
# `podman build`; default --layers=false: no cached layers).
set -euo pipefail
SCRIPT=$(realpath "$0")
cd "$(dirname "$0")/.."

VERSION=$(sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml)
IMAGE=${IMAGE:-lesionqsm:$VERSION}
CACHE=${LESIONQSM_IMAGE_CACHE:-/var/cache/lesionqsm-image}
SUITE=bookworm
BASE_TAR=$CACHE/debian-$SUITE-minbase.tar
BASE_IMAGE=localhost/lesionqsm-base:$SUITE
IMAGE_TAR=${IMAGE_TAR:-lesionqsm-$VERSION.tar}
HOST_PYTHON=${HOST_PYTHON:-python3}

log() { printf 'image: [%4d s] %s\n' "$SECONDS" "$*" >&2; }
# Background jobs run in their own process group (setsid), so that an early exit ends each
# with its children (pip's build backends, the pipeline's workers).
BACKGROUND=()
background() { setsid "$@" & BACKGROUND+=("$!"); }
cleanup() {
    local pid
    for pid in "${BACKGROUND[@]}"; do kill -- "-$pid" 2>/dev/null || true; done
    [ -z "${TMP_DIR:-}" ] || rm -rf "$TMP_DIR"
}
trap cleanup EXIT

stamp() { local line; while IFS= read -r line; do printf '[%4d s] %s\n' "$SECONDS" "$line"; done; }
die() { printf 'image: error: %s\n' "$*" >&2; exit 1; }

install_tools() {
    local missing=()
    command -v podman >/dev/null || missing+=(podman)
    command -v runc >/dev/null || missing+=(runc)
    command -v mmdebstrap >/dev/null || missing+=(mmdebstrap)
    [ -e /usr/share/keyrings/debian-archive-keyring.gpg ] || missing+=(debian-archive-keyring)
    if [ ${#missing[@]} -gt 0 ]; then
        log "installing ${missing[*]} from apt"
        export DEBIAN_FRONTEND=noninteractive
        apt-get -o DPkg::Lock::Timeout=900 update -qq
        apt-get -o DPkg::Lock::Timeout=900 install -y -qq --no-install-recommends \
            "${missing[@]}" uidmap fuse-overlayfs slirp4netns containernetworking-plugins \
            iptables >/dev/null
    fi
    mkdir -p "$CACHE"
    # runc, not crun; ulimits the sandbox grants (podman's defaults are refused by setrlimit)
    cat > "$CACHE/containers.conf" <<'EOF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]

[engine]
runtime = "runc"
EOF
    export CONTAINERS_CONF=$CACHE/containers.conf
}

make_base() {
    if [ ! -s "$BASE_TAR" ]; then
        # mmdebstrap (Debian's successor of debootstrap: apt resolves and downloads in
        # parallel) makes the same minbase system as `debootstrap --variant=minbase` in about
        # half the time, with bookworm's security updates, and writes the tarball itself.
        # python3 is preinstalled so that the Containerfile's apt step finds it in place.  The
        # host's resolv.conf and hostname, copied in for the install, are emptied (the
        # container engine provides both at run time).
        log "mmdebstrap $SUITE (minbase) into $BASE_TAR"
        # shellcheck disable=SC2016  # "$1", the new root, is the hook's own argument
        nice mmdebstrap --mode=root --variant=minbase --aptopt='Acquire::Retries "3"' \
            --hook-dir=/usr/share/mmdebstrap/hooks/merged-usr \
            --include=python3,python3-venv,ca-certificates \
            --customize-hook=': > "$1/etc/resolv.conf"; : > "$1/etc/hostname"' \
            "$SUITE" "$BASE_TAR.part.tar" >"$CACHE/mmdebstrap.log" 2>&1 \
            || { tail -20 "$CACHE/mmdebstrap.log" >&2; rm -f "$BASE_TAR.part.tar"
                 die "mmdebstrap failed (log: $CACHE/mmdebstrap.log)"; }
        mv "$BASE_TAR.part.tar" "$BASE_TAR"
        podman rmi -f "$BASE_IMAGE" >/dev/null 2>&1 || true
    fi
    if ! podman image exists "$BASE_IMAGE"; then
        log "podman import $BASE_TAR as $BASE_IMAGE"
        podman import --quiet "$BASE_TAR" "$BASE_IMAGE" >/dev/null
    fi
}

build() {
    install_tools
    local conf=$CACHE/build py=$HOST_PYTHON
    mkdir -p "$conf"
    local extra=() constrain=()
    if [ -x .venv/bin/python ]; then
        py=.venv/bin/python
        "$py" -m pip freeze --exclude-editable --all \
            | grep -v -E '^(pip|setuptools|wheel)==' > "$conf/venv-constraints.txt"
        extra=(--constraint "$conf/venv-constraints.txt")
        constrain=(-c "$conf/venv-constraints.txt")
    fi
    # Every wheel the image needs, made here, where pip's cache and configured indexes already
    # hold most of them (make venv): the build then installs from this folder alone, without
    # network.  pip (CPU) runs while mmdebstrap (network, disk) makes the base.
    rm -rf "$conf/wheels"
    log "pip wheel: the image's Python packages into $conf/wheels, while the base is made"
    background nice "$py" -m pip wheel --quiet -w "$conf/wheels" "${constrain[@]}" \
        . 'bids-validator-deno>=2.0' 'setuptools>=77' wheel >"$conf/wheels.log" 2>&1
    local wheels_pid=$!
    make_base
    if wait "$wheels_pid"; then
        rm -f "$conf/wheels"/lesionqsm-*.whl
        extra+=(--wheelhouse "$conf/wheels")
    else
        log "pip wheel failed (see $conf/wheels.log): the build will use the package index"
    fi
    local mounts=() path
    while IFS= read -r path; do
        [ -n "$path" ] && mounts+=(-v "$path:$path:ro")
    done < <("$HOST_PYTHON" .ci/pip_build_conf.py "$conf/pip.conf" "${extra[@]}")
    mounts+=(-v "$conf/pip.conf:/etc/pip.conf:ro")
    local fsl=()
    if [ -n "${FSL_HOME:-}" ]; then
        [ -x "$FSL_HOME/bin/flirt" ] || die "FSL_HOME=$FSL_HOME has no bin/flirt"
        fsl=(-v "$FSL_HOME:/mnt/fsl:ro" --build-arg WITH_FSL=1)
    fi
    # From scratch, not from cached layers: the pip step's inputs (the wheels, the venv's
    # versions) are mounted, not copied, so a cached layer could hold other versions.
    local flags=() previous
    read -ra flags <<<"${PODMAN_BUILD_FLAGS---layers=false}"
    previous=$(podman image inspect --format '{{.Id}}' "$IMAGE" 2>/dev/null || true)
    log "podman build $IMAGE ${flags[*]} (log: $conf/podman-build.log)"
    local start=$SECONDS
    # the build's output, each line stamped with the seconds since this script started
    nice podman build "${flags[@]}" --build-arg "BASE=$BASE_IMAGE" "${mounts[@]}" "${fsl[@]}" \
        --label "org.opencontainers.image.version=$VERSION" \
        --label "org.opencontainers.image.title=lesionqsm" \
        -t "$IMAGE-stage" -f Containerfile . 2>&1 | stamp >"$conf/podman-build.log" \
        || { tail -30 "$conf/podman-build.log" >&2; die 'podman build failed'; }
    remove_mountpoints "${mounts[@]}" "${fsl[@]}"
    # the image this build replaced, untagged now, would stay on disk (1.2 GB) for nothing
    if [ -n "$previous" ] \
            && [ "$previous" != "$(podman image inspect --format '{{.Id}}' "$IMAGE")" ]; then
        podman rmi "$previous" >/dev/null 2>&1 || true
    fi
    log "built $IMAGE in $((SECONDS - start)) s; $(podman image inspect --format '{{.Size}}' \
        "$IMAGE" | awk '{printf "%.0f MB", $1 / 1e6}')"
    check_no_build_mounts
}

remove_mountpoints() {
    # A bind mount of the build (-v HOST:TARGET) leaves TARGET behind as an empty file or
    # folder (and the folders above it that the base lacked): remove them in one more layer.
    # The CA bundle's target is the base's own file, so it is not touched.
    local targets=() arg
    for arg in "$@"; do
        case "$arg" in
            -v|--build-arg|WITH_FSL=*) ;;
            *:*) arg=${arg#*:}; targets+=("${arg%:ro}") ;;
        esac
    done
    local absent
    absent=$(podman run --rm --entrypoint sh "$BASE_IMAGE" -c '
        for t in "$@"; do
            [ -e "$t" ] && continue
            while [ ! -e "$(dirname "$t")" ]; do t=$(dirname "$t"); done
            echo "$t"
        done' sh "${targets[@]}" | sort -u | tr '\n' ' ')
    if [ -z "$absent" ]; then
        podman tag "$IMAGE-stage" "$IMAGE"
    else
        printf 'FROM %s\nRUN rm -rf %s\n' "$IMAGE-stage" "$absent" \
            | podman build --quiet -t "$IMAGE" -f - . >/dev/null
    fi
    podman untag "$IMAGE-stage" "$IMAGE-stage"
}

check_no_build_mounts() {
    # The host's CA bundle and pip.conf were mounted for the build only: the image must carry
    # Debian's own bundle (as in the base) and no pip.conf.
    local in_base in_image
    in_base=$(podman run --rm --entrypoint sha256sum "$BASE_IMAGE" /etc/ssl/certs/ca-certificates.crt)
    in_image=$(podman run --rm --entrypoint sha256sum "$IMAGE" /etc/ssl/certs/ca-certificates.crt)
    [ "$in_base" = "$in_image" ] || die "the image's CA bundle differs from Debian's: $in_image"
    if podman run --rm --entrypoint test "$IMAGE" -e /etc/pip.conf; then
        die 'the build-time pip.conf was left in the image'
    fi
}

save() {
    install_tools
    podman image exists "$IMAGE" || die "no image $IMAGE: run make image first"
    log "podman save $IMAGE > $IMAGE_TAR"
    rm -f "$IMAGE_TAR"
    podman save --quiet --format docker-archive -o "$IMAGE_TAR" "$IMAGE"
    # what `apptainer build X.sif docker-archive://TAR` reads: manifest.json naming the tag,
    # the image config and every layer, all present in the archive
    tar -xOf "$IMAGE_TAR" manifest.json | "$HOST_PYTHON" -c '
import json, sys
(entry,) = json.load(sys.stdin)
names = set(sys.argv[3:])
missing = [p for p in [entry["Config"], *entry["Layers"]] if p not in names]
if sys.argv[2] not in entry["RepoTags"] or missing:
    sys.exit(f"{sys.argv[1]}: not a docker-archive of {sys.argv[2]} (missing: {missing})")
' "$IMAGE_TAR" "localhost/$IMAGE" $(tar -tf "$IMAGE_TAR") || die "$IMAGE_TAR is incomplete"
    log "$IMAGE_TAR: $(du -m "$IMAGE_TAR" | cut -f1) MB; Apptainer: apptainer build" \
        "lesionqsm.sif docker-archive://$IMAGE_TAR"
}

host_reference() {
    # The tiny cohort and its sub-01 participant level on the host (.venv), the reference for
    # the image's run; $1/bids.ready tells that the cohort is written.
    local tmp=$1
    .venv/bin/lesionqsm synth "$tmp/bids" --preset tiny --seed 0 --quiet
    chmod -R a+rX "$tmp/bids"  # lesionqsm writes its files owner-only (0600)
    touch "$tmp/bids.ready"
    .venv/bin/lesionqsm "$tmp/bids" "$tmp/host/out" participant --participant-label 01 \
        -w "$tmp/host/work" --nprocs 2 --skip-bids-validation
}

smoke_test() {
    [ -x .venv/bin/lesionqsm ] || die '.venv is missing: run make venv'
    local tmp start
    tmp=$(mktemp -d /var/tmp/lesionqsm-image-test.XXXXXX)
    TMP_DIR=$tmp
    # The host's reference run needs nothing from the image: it runs while the image builds.
    log 'host (.venv): the tiny cohort and its sub-01 participant level, while the image builds'
    background nice bash "$SCRIPT" host-reference "$tmp" >"$tmp/host.log" 2>&1
    local host_pid=$!
    build
    until [ -e "$tmp/bids.ready" ]; do  # the cohort is written within seconds of the start
        kill -0 "$host_pid" 2>/dev/null \
            || { tail -30 "$tmp/host.log" >&2; die 'lesionqsm synth failed on the host'; }
        sleep 1
    done

    # A non-root user, as on a cluster (Apptainer runs as the caller; podman here is rootful,
    # hence an explicit unprivileged uid, one the image's /etc/passwd does not know, as a
    # caller's uid would not be), a read-only image (only /tmp is a writable tmpfs), the
    # dataset mounted read-only, and no network (nothing is downloaded at run time).
    local uid=1000
    local run=(podman run --rm --read-only --user "$uid:$uid" --network none)

    local version
    version=$("${run[@]}" "$IMAGE" --version)
    [ "$version" = "lesionqsm $VERSION" ] || die "--version printed '$version'"
    log "$version"

    mkdir -p "$tmp/image"
    chown "$uid:$uid" "$tmp/image"
    log 'participant level in the image (tiny cohort, BIDS validator on)'
    start=$SECONDS
    "${run[@]}" -v "$tmp/bids:/data:ro" -v "$tmp/image:/results" "$IMAGE" \
        /data /results/out participant -w /results/work --nprocs 2 >"$tmp/image.log" 2>&1 \
        || { tail -30 "$tmp/image.log" >&2; die 'participant level failed in the image'; }

    log 'output directory not writable: a clear message and exit code 2'
    local code=0
    "${run[@]}" -v "$tmp/bids:/data:ro" -v "$tmp/image/out:/out:ro" "$IMAGE" \
        /data /out participant --skip-bids-validation >"$tmp/ro.log" 2>&1 || code=$?
    if [ "$code" != 2 ] || ! grep -q '^lesionqsm: error: cannot write to /out' "$tmp/ro.log" \
            || grep -q Traceback "$tmp/ro.log"; then
        cat "$tmp/ro.log" >&2
        die "unwritable output directory: exit $code and the message above"
    fi

    # The tiny cohort has 2 patients and the growth-curve model needs 3: the group level
    # runs on its lesion tables plus a copy of sub-02's relabelled sub-03, in the image and on
    # the host, and the two fits are compared.
    local where
    for where in image host; do
        mkdir -p "$tmp/group-$where/bids" "$tmp/group-$where/out/sub-0"{1,2,3}
        cp "$tmp/image/out/sub-01/sub-01_lesions.tsv" "$tmp/group-$where/out/sub-01/"
        cp "$tmp/image/out/sub-02/sub-02_lesions.tsv" "$tmp/group-$where/out/sub-02/"
        { cat "$tmp/bids/participants.tsv"
          awk -F'\t' -v OFS='\t' '$1 == "sub-02" { $1 = "sub-03"; print }' \
              "$tmp/bids/participants.tsv"; } > "$tmp/group-$where/bids/participants.tsv"
        awk -F'\t' -v OFS='\t' 'NR > 1 { $1 = "sub-03" } 1' \
            "$tmp/image/out/sub-02/sub-02_lesions.tsv" \
            > "$tmp/group-$where/out/sub-03/sub-03_lesions.tsv"
    done
    chown -R "$uid:$uid" "$tmp/group-image"
    local group=(group --skip-bids-validation --poly-degree 1 --covariates baseline_volume)
    log 'group level in the image'
    "${run[@]}" -v "$tmp/group-image:/g" "$IMAGE" /g/bids /g/out "${group[@]}" \
        >>"$tmp/image.log" 2>&1 \
        || { tail -30 "$tmp/image.log" >&2; die 'group level failed in the image'; }
    local image_seconds=$((SECONDS - start))

    log 'host (.venv): waiting for the sub-01 participant level; group level'
    wait "$host_pid" || { tail -30 "$tmp/host.log" >&2; die 'participant level failed on the host'; }
    .venv/bin/lesionqsm "$tmp/group-host/bids" "$tmp/group-host/out" "${group[@]}" \
        >>"$tmp/host.log" 2>&1 || { tail -30 "$tmp/host.log" >&2; die 'group failed on host'; }
    .venv/bin/python .ci/compare_chimaps.py "$tmp/host/out" "$tmp/image/out"
    .venv/bin/python .ci/compare_chimaps.py "$tmp/group-host/out" "$tmp/group-image/out"

    IMAGE_TAR=$tmp/lesionqsm-$VERSION.tar save
    log "smoke test passed: the runs in the image took ${image_seconds} s, all ${SECONDS} s"
}

case "${1:-}" in
    build) build ;;
    test) smoke_test ;;
    host-reference) host_reference "$2" ;;  # used by test, in the background
    save) save ;;
    *) echo "usage: bash .ci/image.sh {build|test|save}" >&2; exit 2 ;;
esac
