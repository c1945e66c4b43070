#!/bin/sh
# Re-download the vendored front-end libraries at their pinned versions and check their sha256 digests.
# Usage: scripts/refresh_vendor.sh   (from anywhere; needs curl, tar and sha256sum)
set -eu

ROOT=$(cd "$(dirname "$0")/.." && pwd)
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# dagre: the graph layout of the run graph (kfp_backend/ui/static/graph.js).
DAGRE_VERSION=0.8.5
DAGRE_TARBALL_SHA256=ffaf576ea24546aed65aa2bed174d77fe4fbfe7985aa6c4a7cd0293c1994c4ed
DAGRE_MIN_SHA256=62eb9787ccfdbdf4148d4d99d31dbf9ee4770eafee81e637d759b52aac22cd51
DAGRE_DIR="$ROOT/kfp_backend/ui/static/vendor/dagre"

curl -fsSL -o "$WORK/dagre.tgz" "https://registry.npmjs.org/dagre/-/dagre-$DAGRE_VERSION.tgz"
echo "$DAGRE_TARBALL_SHA256  $WORK/dagre.tgz" | sha256sum -c -
tar -xzf "$WORK/dagre.tgz" -C "$WORK"
echo "$DAGRE_MIN_SHA256  $WORK/package/dist/dagre.min.js" | sha256sum -c -
mkdir -p "$DAGRE_DIR"
cp "$WORK/package/dist/dagre.min.js" "$DAGRE_DIR/dagre.min.js"
cp "$WORK/package/LICENSE" "$DAGRE_DIR/LICENSE"
echo "dagre $DAGRE_VERSION -> $DAGRE_DIR"
