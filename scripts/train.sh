#!/usr/bin/env bash
# The main job: set up, then a short default training run of Scalable Actor Critic on the 3x3
# wireless access grid (a few minutes on 2 cores). Extra arguments go to `safenet train`.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/safenet train --algo sac --env grid_wireless_3x3 "$@"
