"""Import verl once, before pytest turns warnings into errors.

verl's package import warns about optional engines (torchtitan, veomni,
automodel) and Ray's deprecated state API; none of that concerns the code
under test.
"""

import warnings

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import verl.trainer.ppo.core_algos
    import verl.trainer.ppo.ray_trainer
    import verl.trainer.ppo.v1.agent_loop_tq
    import verl.trainer.ppo.v1.utils  # noqa: F401
