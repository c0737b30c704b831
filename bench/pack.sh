#!/usr/bin/env bash
# Benchmark: kojibox-bundle packing a ~300 MB `path` corpus, against the two shell steps it
# replaces, in the same run: `sha256sum` over every file plus `tar -cf - | zstd -T0` at the same
# level. Target: kojibox-bundle takes no longer than the two together (it also signs, and hashes
# in the same pass as it packs).
#
# Usage: bench/pack.sh [runs=3] [level=3]      (builds the release binary first)
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
level=${2:-3}
cargo build --release -q -p bundler
bin=$PWD/target/release/kojibox-bundle
corpus=$(bench/corpus.sh "$PWD/target/bench-corpus")
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
. bench/lib.sh
write_corpus_recipe "$work/recipe.toml" "$corpus"
"$bin" keygen --out "$work/key" >/dev/null
bytes=$(du -sb --exclude=.complete "$corpus" | cut -f1)
files=$(find "$corpus" -type f ! -name .complete | wc -l)

now() { date +%s.%N; }
best() { sort -n | head -1; }
k=(); s=(); t=()
# Warm the page cache so every contender reads from memory.
cat $(find "$corpus" -type f) > /dev/null
for _ in $(seq "$runs"); do
  a=$(now); "$bin" build "$work/recipe.toml" --key "$work/key.key" --out "$work/out.kbx" --level "$level" --cache "$work/cache" >/dev/null 2>&1; b=$(now)
  k+=("$(echo "$b - $a" | bc)")
  a=$(now); (cd "$corpus" && find . -type f ! -name .complete -print0 | sort -z | xargs -0 sha256sum >/dev/null); b=$(now)
  s+=("$(echo "$b - $a" | bc)")
  a=$(now); tar -cf - -C "$corpus" --exclude=.complete . | zstd -q -T0 -"$level" > "$work/out.tar.zst"; b=$(now)
  t+=("$(echo "$b - $a" | bc)")
done
kb=$(printf '%s\n' "${k[@]}" | best); sb=$(printf '%s\n' "${s[@]}" | best); tb=$(printf '%s\n' "${t[@]}" | best)
shell=$(echo "$sb + $tb" | bc)
ratio=$(echo "scale=2; $kb / $shell" | bc)
echo "corpus: $files files, $((bytes / 1000000)) MB; zstd level $level; $(nproc) cores; best of $runs runs"
echo
echo "| step | seconds |"
echo "|---|---|"
printf '| kojibox-bundle build (hash + pack + sign) | %.2f |\n' "$kb"
printf '| sha256sum over every file | %.2f |\n' "$sb"
printf '| tar -cf - \\| zstd -T0 -%s | %.2f |\n' "$level" "$tb"
printf '| the two shell steps together | %.2f |\n' "$shell"
printf '| ratio kojibox-bundle / shell steps | %s |\n' "$ratio"
printf '\nbundle %s bytes, tar.zst %s bytes\n' "$(stat -c %s "$work/out.kbx")" "$(stat -c %s "$work/out.tar.zst")"
