#!/usr/bin/env bash
# Benchmark: kojibox-bundle packing a ~300 MB `path` corpus, against `tar -cf - | zstd -T0` alone
# at the same level, in the same run, both writing into the same folder on disk (under target/).
# kojibox-bundle also hashes every file, builds and signs the index and writes the bundle
# durably (fsync, then rename); the peer does none of that. The pair runs interleaved, in
# alternating order, `runs` times; a pair is run again when a build was running on the machine.
# The corpus is in the page cache (warm) and nothing is dirty (`sync`) before each timing.
# Extra rows, for scale: `sha256sum` over every file, and the peer followed by `sync`.
# Target: kojibox-bundle takes at most 1.1x `tar | zstd -T0` (medians).
#
# Usage: bench/pack.sh [runs=5] [level=3]
#        (builds the release binary first; KOJIBOX_BENCH_NO_BUILD=1 uses it as it is;
#        KOJIBOX_BENCH_BIN=DIR takes it from DIR instead of target/release)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-5}
level=${2:-3}
. bench/lib.sh
build_release bundler
bin=${KOJIBOX_BENCH_BIN:-$PWD/target/release}/kojibox-bundle
corpus=$(bench/corpus.sh "$PWD/target/bench-corpus")
work=$(mktemp -d "$PWD/target/bench-pack.XXXXXX"); trap 'rm -rf "$work"' EXIT
write_corpus_recipe "$work/recipe.toml" "$corpus"
"$bin" keygen --out "$work/key" >/dev/null
bytes=$(du -sb --exclude=.complete "$corpus" | cut -f1)
files=$(find "$corpus" -type f ! -name .complete | wc -l)
# Warm the page cache so every contender reads from memory.
find "$corpus" -type f -exec cat {} + > /dev/null

bundle() {
  rm -f "$work/out.kbx"; sync
  seconds "$bin" build "$work/recipe.toml" --key "$work/key.key" --out "$work/out.kbx" \
    --level "$level" --cache "$work/cache"
}
tar_zstd() { # [sync]
  rm -f "$work/out.tar.zst"; sync
  seconds sh -c 'tar -cf - -C "$1" --exclude=.complete . | zstd -q -T0 -"$2" > "$3" && { [ -z "$4" ] || sync; }' \
    sh "$corpus" "$level" "$work/out.tar.zst" "${1:-}"
}
sums() {
  seconds sh -c 'cd "$1" && find . -type f ! -name .complete -print0 | sort -z | xargs -0 sha256sum' sh "$corpus"
}

k=(); t=(); r=(); s=(); ts=()
for i in $(seq "$runs"); do
  for attempt in 1 2 3; do
    wait_quiet
    if [ $((i % 2)) = 1 ]; then
      kd=$(bundle); td=$(tar_zstd)
    else
      td=$(tar_zstd); kd=$(bundle)
    fi
    sd=$(sums); tsd=$(tar_zstd sync)
    busy || break
    echo "run $i: a build started meanwhile; timing it again" >&2
  done
  echo "run $i: kojibox-bundle $kd s against $td s" >&2
  k+=("$kd"); t+=("$td"); r+=("$(ratio "$kd" "$td")"); s+=("$sd"); ts+=("$tsd")
done

echo "corpus: $files files, $((bytes / 1000000)) MB; zstd level $level; $(nproc) cores; $runs runs, page cache warm"
echo
echo "| step | median s | min s | max s |"
echo "|---|---|---|---|"
row 'kojibox-bundle build (hash + pack + sign + durable write)' "${k[@]}"
row "tar -cf - \\| zstd -T0 -$level" "${t[@]}"
read -r _ lo hi < <(stats "${r[@]}")
printf '| **ratio kojibox-bundle / tar \\| zstd (min, max: per run)** | **%s** | %.2f | %.2f |\n' \
  "$(ratio "$(median "${k[@]}")" "$(median "${t[@]}")")" "$lo" "$hi"
row 'for scale: sha256sum over every file' "${s[@]}"
row "for scale: tar -cf - \\| zstd -T0 -$level && sync" "${ts[@]}"
printf '\nbundle %s bytes, tar.zst %s bytes\n' "$(stat -c %s "$work/out.kbx")" "$(stat -c %s "$work/out.tar.zst")"
