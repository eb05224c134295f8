#!/usr/bin/env bash
# The copy task under each LRU learning rule (Figure 2 E/F style, CPU size), then a table
# rule × test accuracy / loss.   Usage: bash tasks/online-lru-copy-rules.sh OUT_DIR [P] [extra flags...]
set -euo pipefail
out=${1:?usage: online-lru-copy-rules.sh OUT_DIR [P] [flags...]}; P=${2:-5}; shift $(( $# >= 2 ? 2 : 1 ))
here=$(cd "$(dirname "$0")" && pwd)
for rule in bptt online_full online_truncated online_spat; do
  rnntk online-lru --config "$here/online-lru-copy-p5.toml" --pattern-len "$P" --rule "$rule" --out "$out/p$P-$rule" --force -q "$@" > /dev/null
done
python - "$out" "$P" <<'PY'
import json, sys
out, P = sys.argv[1], sys.argv[2]
print(f"copy task P={P}: rule, test bit accuracy, test loss")
for rule in ("bptt", "online_full", "online_truncated", "online_spat"):
    s = json.load(open(f"{out}/p{P}-{rule}/summary.json"))
    f = s.get("final", s)
    print(f"{rule:<18} {f['test_acc']:.4f}  {f['test_loss']:.4f}")
PY
