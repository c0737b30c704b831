#!/usr/bin/env bash
# Benchmark: `kojibox install` of a ~300 MB bundle (verifying every byte against the signed
# index) against plain `zstd -d | tar -x` of the same archive, in the same run.
# Target: kojibox install takes at most 1.2x the plain unpack.
#
# Usage: bench/install.sh [runs=3]      (builds the release binaries first)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
cargo build --release -q -p bundler -p launcher
bundle_bin=$PWD/target/release/kojibox-bundle
kojibox=$PWD/target/release/kojibox
corpus=$(bench/corpus.sh "$PWD/target/bench-corpus")
work=$(mktemp -d "$PWD/target/bench-install.XXXXXX"); trap 'rm -rf "$work"' EXIT
. bench/lib.sh
write_corpus_recipe "$work/recipe.toml" "$corpus"
"$bundle_bin" keygen --out "$work/key" >/dev/null
"$bundle_bin" build "$work/recipe.toml" --key "$work/key.key" --out "$work/b.kbx" --cache "$work/cache" >/dev/null 2>&1
size=$(stat -c %s "$work/b.kbx")
cat "$work/b.kbx" > /dev/null

now() { date +%s.%N; }
best() { sort -n | head -1; }
k=(); p=()
for i in $(seq "$runs"); do
  rm -rf "$work/home" "$work/plain"; mkdir -p "$work/plain"; sync
  a=$(now); "$kojibox" --home "$work/home" install "$work/b.kbx" --pubkey "$work/key.pub" >/dev/null 2>&1; b=$(now)
  k+=("$(echo "$b - $a" | bc)")
  sync
  a=$(now); zstd -dc "$work/b.kbx" | tar -xf - -C "$work/plain"; b=$(now)
  p+=("$(echo "$b - $a" | bc)")
done
kb=$(printf '%s\n' "${k[@]}" | best); pb=$(printf '%s\n' "${p[@]}" | best)
echo "bundle: $((size / 1000000)) MB compressed, $(du -sb "$work/plain" | cut -f1 | awk '{print int($1/1000000)}') MB unpacked; $(nproc) cores; best of $runs runs"
echo
echo "| step | seconds |"
echo "|---|---|"
printf '| kojibox install (verify signature + every byte, extract, switch) | %.2f |\n' "$kb"
printf '| zstd -d \\| tar -x | %.2f |\n' "$pb"
printf '| ratio kojibox / plain unpack | %s |\n' "$(echo "scale=2; $kb / $pb" | bc)"
