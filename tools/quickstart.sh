#!/usr/bin/env bash
# The main job: train configs/quickstart.yaml on the Vim documentation (Debian's vim-runtime, which
# tools/install-deps.sh installs), export the weights and print a sample. Running it again
# resumes (or just re-exports) the same run instead of starting over.
set -euo pipefail
cd "$(dirname "$0")/.."
corpus=$(ls -d /usr/share/vim/vim*/doc 2>/dev/null | sort -V | tail -n 1 || true)
if [ -z "$corpus" ]; then
  echo "quickstart: no /usr/share/vim/vim*/doc; install vim-runtime (tools/install-deps.sh does)" >&2
  exit 1
fi
sparta=./build/apps/sparta
if compgen -G "runs/quickstart/checkpoints/*.h5" > /dev/null; then
  "$sparta" resume runs/quickstart
else
  "$sparta" train configs/quickstart.yaml data.path="$corpus"
fi
"$sparta" export runs/quickstart
"$sparta" generate runs/quickstart/export --prompt "To open a file in a new window, " \
  --max-tokens 200 --temperature 0.8 --top-k 40 --seed 1
