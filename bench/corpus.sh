#!/usr/bin/env bash
# Makes a ~300 MB benchmark corpus of mixed content in $1 (default: target/bench-corpus), once:
# ~100 MB of real binaries and shared libraries from this machine, ~100 MB of text (source-like
# and log-like lines), ~100 MB of incompressible random data, in a few thousand files.
set -euo pipefail
dir=${1:-target/bench-corpus}
[ -f "$dir/.complete" ] && { echo "$dir"; exit 0; }
rm -rf "$dir"; mkdir -p "$dir/bin" "$dir/text" "$dir/random"

# Binaries: executables, libraries and whatever else ships with them, up to 100 MB.
total=0
while IFS= read -r -d '' f; do
  size=$(stat -c %s "$f")
  [ "$size" -gt 0 ] || continue
  [ $((total + size)) -gt 100000000 ] && continue
  cp "$f" "$dir/bin/$(echo "$f" | tr '/' '_')"
  total=$((total + size))
  [ "$total" -gt 99000000 ] && break
done < <(find /usr/bin /usr/sbin /usr/lib /usr/libexec -type f -size +1k -print0 2>/dev/null | sort -z)

# Text: deterministic pseudo-source and log lines, 100 files of ~1 MB.
python3 - "$dir/text" <<'PY'
import random, sys
random.seed(42)
words = "let mut fn struct impl pub use return match if else for while loop self Some None Ok Err \
         error warn info debug request response service postgres port health restart config".split()
for i in range(100):
    with open(f"{sys.argv[1]}/file{i:03}.txt", "w") as f:
        size = 0
        while size < 1_000_000:
            line = f"2026-11-27T04:{i%60:02}:{random.randint(0,59):02}Z " + " ".join(random.choices(words, k=random.randint(4, 14))) + f" id={random.randint(0, 99999)}\n"
            f.write(line); size += len(line)
PY

# Incompressible: 25 files of 4 MB.
for i in $(seq -w 1 25); do head -c 4000000 /dev/urandom > "$dir/random/blob$i.bin"; done
touch "$dir/.complete"
echo "$dir"
