#!/usr/bin/env bash
# Builds the wasmpod container image that can be built where no base image can be pulled: a
# `FROM scratch` image holding the release binary, the loader and libraries `ldd` lists for it,
# the example functions and their pre-compiled artifact cache. Saves it as an OCI archive.
#
#   deploy/build-image.sh [--binary PATH] [--output FILE] [--tag NAME]
#
#   --binary  the wasmpod to package            [default: target/release/wasmpod]
#   --output  the OCI archive to write          [default: target/image/wasmpod-oci.tar]
#   --tag     the image name in local storage   [default: localhost/wasmpod:scratch]
#
# Needs podman (`apt-get install -y podman`); running the image here also needs runc and the
# CONTAINERS_CONF setting described in deploy/README.md. The binary is reused, not rebuilt: CI
# has just built it for the quick start, and a glibc build plus its four libraries avoids
# compiling wasmtime a third time for a static musl target (deploy/README.md, "Why glibc").
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
binary="$repo/target/release/wasmpod"
output="$repo/target/image/wasmpod-oci.tar"
tag="localhost/wasmpod:scratch"
while [ $# -gt 0 ]; do
  case "$1" in
    --binary) binary=$2; shift 2 ;;
    --output) output=$2; shift 2 ;;
    --tag) tag=$2; shift 2 ;;
    *) echo "build-image.sh: unknown argument $1 (see the header of $0)" >&2; exit 2 ;;
  esac
done

# The user the server runs as: numeric, so that a scratch image (no /etc/passwd) and Kubernetes'
# runAsNonRoot check both understand it. 65532 is the usual "nonroot" id of minimal images.
uid=65532

fail() { echo "build-image.sh: $*" >&2; exit 1; }
[ -x "$binary" ] || fail "no binary at $binary: run \`cargo build --release\` first, or pass --binary"
command -v podman >/dev/null || fail "podman is not installed (apt-get install -y podman)"

context=$(mktemp -d)
trap 'rm -rf "$context"' EXIT
root="$context/rootfs"
mkdir -p "$root/usr/local/bin" "$root/functions" "$root/cache" "$root/tmp"

# The binary, without its debug sections (the release profile keeps line tables for profiling).
if command -v objcopy >/dev/null; then
  objcopy --strip-debug "$binary" "$root/usr/local/bin/wasmpod"
else
  echo "build-image.sh: objcopy not found; packaging the binary with its debug sections" >&2
  cp "$binary" "$root/usr/local/bin/wasmpod"
fi

# The dynamic loader and every library ldd resolves, at the paths the binary will look them up
# (copied as files: symlinks into the host would dangle in the image).
libraries=$(ldd "$binary" | awk '/=> \// { print $3 } /^[[:space:]]*\/[^ ]+ \(/ { print $1 }')
[ -n "$libraries" ] || fail "ldd listed no libraries for $binary (a static binary needs none: remove this check)"
for library in $libraries; do
  mkdir -p "$root$(dirname "$library")"
  cp -L "$library" "$root$library"
done

# The functions: the repository's examples, served at /<name>.
cp "$repo"/examples/*.wat "$root/functions/"
# A warm cache: compiled here by the binary that will load it, so the first request of a new pod
# maps code instead of compiling (a node whose CPU differs detects it and recompiles).
"$binary" compile --cache-dir "$root/cache" "$root"/functions/*.wat >/dev/null

# The server may add to the cache (a module it had to compile), so the cache belongs to its user;
# guests may use /tmp.
chmod 1777 "$root/tmp"
mv "$root/cache" "$context/cache"
cat >"$context/Containerfile" <<EOF
FROM scratch
COPY rootfs/ /
COPY --chown=$uid:$uid cache/ /cache/
USER $uid:$uid
EXPOSE 8080
ENV PORT=8080 WASMPOD_CACHE_DIR=/cache RUST_LOG=info
VOLUME ["/functions", "/cache"]
ENTRYPOINT ["/usr/local/bin/wasmpod"]
CMD ["serve", "/functions"]
EOF
podman build --quiet --format oci --tag "$tag" "$context" >/dev/null

mkdir -p "$(dirname "$output")"
rm -f "$output"
podman save --quiet --format oci-archive --output "$output" "$tag"
size=$(podman image inspect --format '{{.Size}}' "$tag")
echo "image $tag: $((size / 1000000)) MB ($size bytes) uncompressed; OCI archive $output: $(du -h "$output" | cut -f1)"
