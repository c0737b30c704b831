# Shared by the benchmark scripts (sourced, not run).

# write_corpus_recipe FILE CORPUS: a recipe bundling the folder CORPUS as one linux-x64 payload.
write_corpus_recipe() {
  local first
  first=$(cd "$2" && find . -type f ! -name .complete | sort | sed -n '1s|^\./||p')
  cat > "$1" <<TOML
version = "1.0.0"
source = "bench"
[[service]]
name = "corpus"
version = "1"
  [[service.target]]
  os = "linux"
  arch = "x64"
  binPath = "$first"
  source = { path = "$2" }
TOML
}
