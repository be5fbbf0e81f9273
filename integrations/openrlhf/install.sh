#!/usr/bin/env bash
# Install OpenRLHF for the adapter tests into the virtual environment whose bin
# directory is $1 (nox passes session.bin).
# A plain `pip install openrlhf==0.11.2` fails on CPU: it pins flash-attn,
# whose build needs CUDA. So: the CPU torch first, then OpenRLHF's other
# dependencies (requirements.txt), then OpenRLHF itself without dependencies.
# deepspeed is built against the installed torch (no build isolation), which
# keeps pip from fetching a second, CUDA, torch into the build environment.
set -euo pipefail
bin="$1"
here="$(cd "$(dirname "$0")" && pwd)"
"$bin/python" -m pip install torch==2.13.0 setuptools wheel
"$bin/python" -m pip install --no-build-isolation deepspeed==0.19.6
"$bin/python" -m pip install -r "$here/requirements.txt"
"$bin/python" -m pip install --no-deps openrlhf==0.11.2
