#!/usr/bin/env bash
# Benchmark: `kojibox install` of a ~300 MB bundle into a fresh home on disk, against
# `zstd -d | tar -x && sync` of the same bundle into the same filesystem, in the same run.
# kojibox verifies the signature, checks every member against the signed index, hashes every
# byte (and the compressed payload frame) and makes the result durable (`syncfs`, fsyncs) before
# it switches the manifest; the peer checks nothing and `sync` makes it durable. The pair runs
# interleaved, in alternating order, `runs` times; a pair is run again when a build was running
# on the machine. Both start with the bundle in the page cache (warm; caches are not dropped) and
# nothing dirty (`sync` before each timing). The same pair is also timed on tmpfs (/dev/shm),
# where no disk takes part (the peer syncing that filesystem only: `sync -f`).
# Target: kojibox install on disk takes at most 1.1x the peer (medians).
#
# Usage: bench/install.sh [runs=5]
#        (builds the release binaries first; KOJIBOX_BENCH_NO_BUILD=1 uses them as they are;
#        KOJIBOX_BENCH_BIN=DIR takes them from DIR instead of target/release)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
. bench/lib.sh
build_release bundler launcher
bindir=${KOJIBOX_BENCH_BIN:-$PWD/target/release}
bundle_bin=$bindir/kojibox-bundle
kojibox=$bindir/kojibox
corpus=$(bench/corpus.sh "$PWD/target/bench-corpus")
# target/ is on disk: the install and the peer write into the same filesystem.
work=$(mktemp -d "$PWD/target/bench-install.XXXXXX")
mem=
if [ "$(stat -f -c %T /dev/shm 2>/dev/null)" = tmpfs ]; then
  mem=$(mktemp -d /dev/shm/kojibox-bench-install.XXXXXX)
fi
trap 'rm -rf "$work" ${mem:+"$mem"}' EXIT
write_corpus_recipe "$work/recipe.toml" "$corpus"
"$bundle_bin" keygen --out "$work/key" >/dev/null
"$bundle_bin" build "$work/recipe.toml" --key "$work/key.key" --out "$work/b.kbx" \
  --level 3 --cache "$work/cache" >/dev/null 2>&1
size=$(stat -c %s "$work/b.kbx")
cat "$work/b.kbx" > /dev/null

kojibox_install() { # DIR
  rm -rf "$1/home"; sync
  seconds "$kojibox" --home "$1/home" install "$work/b.kbx" --pubkey "$work/key.pub"
}
unpack_sync() { # DIR [SYNC_ARGS...]: `sync` alone on disk (as the issue says); on tmpfs
  # `sync -f DIR`, that filesystem only, or the peer would pay for the disk's dirty pages.
  local dir=$1; shift
  rm -rf "$dir/plain"; mkdir "$dir/plain"; sync
  seconds sh -c 'b=$1 d=$2; shift 2; zstd -dcq "$b" | tar -xf - -C "$d" && sync "$@"' \
    sh "$work/b.kbx" "$dir/plain" "$@"
}

k=(); p=(); r=(); km=(); pm=(); rm_=()
for i in $(seq "$runs"); do
  for attempt in 1 2 3; do
    wait_quiet
    if [ $((i % 2)) = 1 ]; then
      kd=$(kojibox_install "$work"); pd=$(unpack_sync "$work")
    else
      pd=$(unpack_sync "$work"); kd=$(kojibox_install "$work")
    fi
    if [ -n "$mem" ]; then
      if [ $((i % 2)) = 1 ]; then
        kt=$(kojibox_install "$mem"); pt=$(unpack_sync "$mem" -f "$mem")
      else
        pt=$(unpack_sync "$mem" -f "$mem"); kt=$(kojibox_install "$mem")
      fi
    fi
    busy || break
    echo "run $i: a build started meanwhile; timing it again" >&2
  done
  echo "run $i: disk $kd s against $pd s${mem:+; tmpfs $kt s against $pt s}" >&2
  k+=("$kd"); p+=("$pd"); r+=("$(ratio "$kd" "$pd")")
  if [ -n "$mem" ]; then km+=("$kt"); pm+=("$pt"); rm_+=("$(ratio "$kt" "$pt")"); fi
done
rm -rf "$work/home"
[ -z "$mem" ] || rm -rf "$mem/home" "$mem/plain"
unpacked=$(du -sb "$work/plain" | cut -f1)
files=$(find "$work/plain" -type f | wc -l)

ratio_row() { # LABEL KOJIBOX_MEDIAN PEER_MEDIAN RATIO...
  local label=$1 a=$2 b=$3; shift 3
  read -r _ lo hi < <(stats "$@")
  printf '| **%s** | **%s** | %.2f | %.2f |\n' "$label" "$(ratio "$a" "$b")" "$lo" "$hi"
}
echo "bundle: $((size / 1000000)) MB compressed, $((unpacked / 1000000)) MB unpacked in $files files; $(nproc) cores; $runs runs, page cache warm"
echo
echo "| step | median s | min s | max s |"
echo "|---|---|---|---|"
row 'disk: kojibox install (verify signature + every byte, durable, switch)' "${k[@]}"
row 'disk: zstd -d \| tar -x && sync' "${p[@]}"
ratio_row 'disk: ratio kojibox / peer (min, max: per run)' "$(median "${k[@]}")" "$(median "${p[@]}")" "${r[@]}"
if [ -n "$mem" ]; then
  row 'tmpfs: kojibox install' "${km[@]}"
  row 'tmpfs: zstd -d \| tar -x && sync -f' "${pm[@]}"
  ratio_row 'tmpfs: ratio kojibox / peer' "$(median "${km[@]}")" "$(median "${pm[@]}")" "${rm_[@]}"
fi
