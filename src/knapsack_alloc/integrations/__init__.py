"""Adapters that plug the allocator into RL training frameworks.

Each submodule imports its framework only when used, so ``knapsack_alloc``
itself never requires TRL, verl or OpenRLHF.
"""
