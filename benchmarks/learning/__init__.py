"""A small but real GRPO experiment: does rollout allocation make a model learn more per rollout?

A tiny Llama, built from scratch with a character-level tokenizer, is trained
with TRL's GRPO through ``KnapsackGRPOTrainer`` on prompts whose exact success
probability can be read from the model (``task``). The policies compared at
an equal number of rollouts per step, and uniform at 1.5x and 2x the rollouts,
are in ``design``; ``run`` trains and measures one run, ``experiment`` runs
them all and checks that they are comparable, ``summary`` computes the
figures over seeds and compute-to-match, ``report`` and ``plot`` show them,
and ``compare`` puts runs with the options for large groups next to the
main experiment's.

Run with ``nox -s learning -- [--quick] [--seeds K] [--steps S] [--policies ...]
[--json PATH] [--plot PATH.png] [--device cuda]``; see ``docs/evidence.md``.
"""
