#!/usr/bin/env bash
# Install verl for the adapter tests into the virtual environment whose bin
# directory is $1 (nox passes session.bin).
# torch goes first: verl's dependencies then see it satisfied and never pull a
# CUDA build. verl[verl-core] installs on CPU as is (Ray, TransferQueue,
# tensordict, transformers; no CUDA extension).
set -euo pipefail
bin="$1"
here="$(cd "$(dirname "$0")" && pwd)"
"$bin/python" -m pip install torch==2.13.0
"$bin/python" -m pip install -r "$here/requirements.txt"
