#!/usr/bin/env bash
# Install the TRL adapter's test dependencies into a virtual environment.
#
# Usage: bash integrations/trl/install.sh VENV_BIN_DIR
#
# torch is installed on its own first and must be a CPU build: a resolver that
# sees torch together with trl may otherwise pick a CUDA wheel (gigabytes of
# NVIDIA libraries). pip takes the CPU wheel when one is on its find-links path
# or index (torch==2.13.0 matches 2.13.0+cpu); elsewhere point pip at PyTorch's
# CPU wheel index for that first step. The script stops if torch is a CUDA build.
set -euo pipefail

bin="${1:?usage: install.sh VENV_BIN_DIR}"
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
python="$bin/python"

torch_pin="$(grep -E '^torch==' "$here/requirements.txt")"
"$python" -m pip install "$torch_pin"
if ! "$python" -c "import sys, torch; sys.exit(torch.version.cuda is not None)"; then
    echo "install.sh: $torch_pin resolved to a CUDA build; install a CPU wheel first." >&2
    exit 1
fi
"$python" -m pip install -r "$here/requirements.txt"
