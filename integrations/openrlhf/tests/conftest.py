"""Put the stand-ins for flash-attn and vLLM on the path, then import OpenRLHF.

See standins/README.md: both are GPU-only libraries that OpenRLHF imports at
module level. The Ray workers started by the tests get the same path through
PYTHONPATH. OpenRLHF's import warns about torch's use of pynvml; that is not
the code under test. RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO=0 opts into Ray's
future handling of CUDA_VISIBLE_DEVICES, which silences its FutureWarning.
"""

import os
import sys
import warnings
from pathlib import Path

STANDINS = str(Path(__file__).parent / "standins")
sys.path.insert(0, STANDINS)
os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (STANDINS, os.environ.get("PYTHONPATH")) if p)
os.environ["RAY_ACCEL_ENV_VAR_OVERRIDE_ON_ZERO"] = "0"

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import openrlhf.trainer.ppo_utils.experience_maker
    import openrlhf.trainer.ppo_utils.samples_generator  # noqa: F401
