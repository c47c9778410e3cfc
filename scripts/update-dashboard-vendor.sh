#!/usr/bin/env bash
# Fetches the dashboard's one third-party asset, uPlot (MIT, https://github.com/leeoniya/uPlot),
# from the npm registry, checks the tarball's sha256, and copies its minified build, its CSS and
# its LICENSE into server/src/dashboard/assets/vendor/, where stratad embeds them at build time
# (nothing is fetched at run time). Run it only to change the version; commit what it writes.
#   ./scripts/update-dashboard-vendor.sh
set -euo pipefail
version=1.6.32
sha256=4b8a8191e425658e3ea8c8c1314b0fc679c861ee3a1af2b20c7b16ba50b5133d
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
vendor="$root/server/src/dashboard/assets/vendor"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
curl -fsSL -o "$work/uplot.tgz" "https://registry.npmjs.org/uplot/-/uplot-$version.tgz"
echo "$sha256  $work/uplot.tgz" | sha256sum -c --quiet -
tar -xzf "$work/uplot.tgz" -C "$work"
mkdir -p "$vendor"
cp "$work/package/dist/uPlot.iife.min.js" "$vendor/uPlot.iife.min.js"
cp "$work/package/dist/uPlot.min.css" "$vendor/uPlot.min.css"
cp "$work/package/LICENSE" "$vendor/LICENSE"
echo "uplot $version (sha256 of the npm tarball $sha256) -> $vendor"
