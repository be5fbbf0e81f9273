"""Slow, plain-Python re-statements of the simulator's fast paths.

Nothing here imports knapsack_alloc: integers are masked to 64 bits by hand,
rollouts are numbered with dicts, and policies are walked one prompt at a
time.
"""

from __future__ import annotations

import math

MASK = (1 << 64) - 1
GOLDEN = 0x9E3779B97F4A7C15


def mix(z: int) -> int:
    """Splitmix64's finaliser, as published."""
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK
    return z ^ (z >> 31)


def uniform(seed: int, step: int, prompt: int, rank: int) -> float:
    state = mix((seed + GOLDEN) & MASK)
    for key in (step, prompt, rank):
        state = mix(state ^ ((key + GOLDEN) & MASK))
    return (state >> 11) * 2.0**-53


def ranks_of_calls(calls: list[tuple[list[int], list[int]]]) -> list[list[int]]:
    """Rank of every rollout among its prompt's rollouts so far in the step."""
    seen: dict[int, int] = {}
    result = []
    for prompts, counts in calls:
        ranks = []
        for prompt, count in zip(prompts, counts, strict=True):
            for _ in range(count):
                ranks.append(seen.get(prompt, 0))
                seen[prompt] = seen.get(prompt, 0) + 1
        result.append(ranks)
    return result


def p_nonzero(n: int, p: float) -> float:
    return 0.0 if n == 0 else 1.0 - p**n - (1.0 - p) ** n


def learning_step(
    success: list[float], learned: list[int], rate: float, transfer: float
) -> list[float]:
    """The learning model of docs/simulator.md, one prompt at a time."""
    p = list(success)
    gain = 0.0
    for i in learned:
        step = rate * success[i] * (1.0 - success[i]) ** 2
        p[i] = min(1.0, p[i] + step)
        gain += step
    spread = sum(x * (1.0 - x) for x in p)
    if rate == 0.0 or transfer == 0.0 or gain == 0.0 or spread == 0.0:
        return p
    shrink = math.exp(-transfer * gain / spread)
    return [x / (x + (1.0 - x) * shrink) if x > 0 else 0.0 for x in p]


def rounds_wave(rewards_of: dict[int, list[bool]], prompts: list[int], size: int, rounds: int,
                left: int) -> list[tuple[int, int, int]]:  # fmt: skip
    """Reinforce-Ada's rounds for one wave: (prompt, rollouts, successes) per prompt.

    ``rewards_of[prompt]`` lists the prompt's rewards in rank order.
    """
    state = {i: [0, 0, True] for i in range(len(prompts))}
    for _ in range(rounds):
        active = [i for i in range(len(prompts)) if state[i][2]]
        if not active or left == 0:
            break
        for i in active:
            take = min(size, left) if len(active) == 1 else size
            drawn = rewards_of[prompts[i]][state[i][0] : state[i][0] + take]
            state[i][0] += take
            state[i][1] += sum(drawn)
            left -= take
            state[i][2] = state[i][1] in (0, state[i][0])
    return [(prompts[i], state[i][0], state[i][1]) for i in range(len(prompts))]
