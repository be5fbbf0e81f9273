"""Reproduce the simulator comparison behind the "bayes" preset's defaults.

Each variant changes one thing about the Bayesian allocator and runs against
``knapsack-paper`` on every population preset, static (learning rate 0,
2,048 prompts, 300 steps) and learning (the defaults: 10,000 prompts, 500
steps), at the default batch and budget. The script prints, per scenario,
each variant's difference from ``knapsack-paper`` in effective-gradient
ratio, final mean success and InfoGain per step, paired by seed.
``docs/simulator.md`` shows the tables this prints for seeds 0, 1 and 2.

    python examples/simulate_bayes_variants.py --seeds 0 1 2
    python examples/simulate_bayes_variants.py --variants window-16 window-64 --populations hard

The variants:

* ``window-N``: the preset with a window of ``N`` rewards (64 is the default);
* ``ml-prior``: a single Beta prior fitted by maximum likelihood (no clip of
  its concentration) instead of the method of moments;
* ``mixture-prior``: a prior with point masses at 0 and 1 plus a Beta, fitted
  by maximum likelihood; each prompt's value is weighted by its posterior
  probability of lying strictly between 0 and 1 (slow: about 25 ms a step);
* ``nonzero``: the value ``P_nz`` without the InfoGain weight;
* ``warm-up``: 8 rollouts at least until a prompt has 8 rewards (the paper's rule);

(the last four with the window of 16 they were tried with, before the
default became 64)
* ``oracle``: the knapsack on the true success rates (a ceiling, not a policy).
"""

from __future__ import annotations

import argparse
import dataclasses
from collections import defaultdict

import numpy as np
from scipy.optimize import minimize
from scipy.special import betaln

from knapsack_alloc import GRPO, BetaPosterior, KnapsackAllocator, allocate
from knapsack_alloc.allocator.history import RewardHistory
from knapsack_alloc.simulate import (
    PRESETS,
    Knapsack,
    LearningModel,
    Policy,
    Population,
    Scenario,
    StepResult,
    simulate,
)
from knapsack_alloc.values import ValueModel

#: The window of the prior and warm-up variants: the preset's default when they were tried.
WINDOW = 16


class Weighted(ValueModel):
    """A value model scaled per prompt (the posterior probability of 0 < p < 1)."""

    def __init__(self, base, weights):
        self.base, self.weights, self.name = base, weights, "weighted"

    def value(self, counts, estimates):
        return self.weights * self.base.value(counts, estimates)

    def gains(self, estimates, lower, span):
        gains = self.base.gains(estimates, lower, span)
        return dataclasses.replace(
            gains, term_a=gains.term_a * self.weights, term_b=gains.term_b * self.weights
        )


def histogram_cells(histogram, min_trials=8):
    n, s = np.indices(histogram.shape)
    use = (n >= min_trials) & (s <= n) & (histogram > 0)
    return n[use].astype(float), s[use].astype(float), histogram[use].astype(float)


def log_beta_binomial(n, s, a, b):
    """Log-likelihood of s successes in n, up to the binomial coefficient."""
    return betaln(s + a, n - s + b) - betaln(a, b)


def ml_prior(histogram):
    n, s, w = histogram_cells(histogram)
    if w.sum() < 32:
        return (1.0, 1.0)

    def loss(x):
        return -(w @ log_beta_binomial(n, s, np.exp(x[0]), np.exp(x[1])))

    result = minimize(loss, np.log([0.5, 0.5]), method="Nelder-Mead")
    return tuple(np.exp(result.x))


def mixture_prior(histogram):
    """Fit pi0 * point(0) + pi1 * point(1) + (1 - pi0 - pi1) * Beta(a, b)."""
    n, s, w = histogram_cells(histogram)
    if w.sum() < 32:
        return (0.0, 0.0, 1.0, 1.0)
    at_zero, at_one = (s == 0).astype(float), (s == n).astype(float)

    def loss(x):
        shares = np.exp(x[:3] - np.logaddexp.reduce(x[:3]))
        a, b = np.exp(x[3:])
        like = shares[0] * at_zero + shares[1] * at_one
        like = like + shares[2] * np.exp(log_beta_binomial(n, s, a, b))
        return -(w @ np.log(np.maximum(like, 1e-300)))

    start = np.array([np.log(0.1), np.log(0.1), 0.0, 0.0, 0.0])
    result = minimize(loss, start, method="Nelder-Mead", options={"maxiter": 4000})
    shares = np.exp(result.x[:3] - np.logaddexp.reduce(result.x[:3]))
    return (shares[0], shares[1], *np.exp(result.x[3:]))


class FittedPrior(Policy):
    """The Bayesian allocation with another prior fit."""

    def __init__(self, name, fit):
        self.name, self.fit, self.history = name, fit, None

    def step(self, context):
        if self.history is None:
            self.history = RewardHistory(WINDOW)
        prompts = context.take(context.batch_size)
        window = self.history.counts(self.history.lookup(prompts))
        fitted = self.fit(self.history.window_histogram())
        successes, failures = window.successes, window.trials - window.successes
        value = GRPO
        if len(fitted) == 4:
            at_zero, at_one, a, b = fitted
            fitted = (a, b)
            inside = (1 - at_zero - at_one) * np.exp(
                log_beta_binomial(window.trials, successes, a, b)
            )
            stuck = at_zero * (successes == 0) + at_one * (failures == 0)
            value = Weighted(GRPO, inside / (inside + stuck))
        beliefs = BetaPosterior(successes, failures, prior=fitted)
        counts = allocate(beliefs, context.budget, value=value).counts
        groups, rewards = context.rollout(prompts, counts)
        self.history.record(np.repeat(prompts, counts), "int", rewards)
        return StepResult(groups, groups)


class WarmUp(Knapsack):
    """The bayes preset, but at least 8 rollouts until a prompt has 8 rewards."""

    def __init__(self):
        super().__init__("bayes", window=WINDOW)
        self.name = "warm-up"

    def step(self, context):
        if self._allocator is None:
            self._allocator = KnapsackAllocator("bayes", window=WINDOW)
        history = self._allocator.history_
        prompts = context.take(context.batch_size)
        window = history.counts(history.lookup(prompts))
        beliefs = BetaPosterior(
            window.successes, window.trials - window.successes, prior=self._allocator._prior()
        )
        lower = np.where(window.total < 8, 8, 2)
        counts = allocate(beliefs, context.budget, min_rollouts=lower).counts
        groups, rewards = context.rollout(prompts, counts)
        self._allocator.update(np.repeat(prompts, counts), rewards)
        return StepResult(groups, groups)


class Oracle(Policy):
    """The knapsack on the true success rates: a ceiling no allocator can reach."""

    name = "oracle"

    def step(self, context):
        prompts = context.take(context.batch_size)
        truth = np.array(context.environment._success[prompts])
        counts = allocate(truth, context.budget).counts
        groups, _ = context.rollout(prompts, counts)
        return StepResult(groups, groups)


def variant(name):
    if name.startswith("window-"):
        policy = Knapsack("bayes", window=int(name.split("-")[1]))
        policy.name = name
        return policy
    if name == "nonzero":
        policy = Knapsack("bayes", value="nonzero", window=WINDOW)
        policy.name = name
        return policy
    return {
        "ml-prior": lambda: FittedPrior("ml-prior", ml_prior),
        "mixture-prior": lambda: FittedPrior("mixture-prior", mixture_prior),
        "warm-up": WarmUp,
        "oracle": Oracle,
    }[name]()


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--populations", nargs="+", default=list(PRESETS))
    parser.add_argument(
        "--variants", nargs="+", default=["window-16", "window-64", "ml-prior", "nonzero", "oracle"]
    )
    parser.add_argument("--jobs", type=int, default=None)
    args = parser.parse_args()
    for population in args.populations:
        for rate, prompts, steps in ((0.0, 2048, 300), (0.25, 10_000, 500)):
            scenario = Scenario(
                Population.from_argument(population, prompts=prompts),
                steps=steps,
                model=LearningModel(rate, 1.0),
            )
            policies = [Knapsack("paper"), *(variant(v) for v in args.variants)]
            report = simulate(scenario, policies, args.seeds, jobs=args.jobs)
            paper = report.policies["knapsack-paper"].runs
            kind = "static" if rate == 0 else "learning"
            print(f"{population} {kind}: knapsack-paper", _figures(paper))
            for name in args.variants:
                runs = report.policies[name].runs
                print(f"  {name:14s} minus knapsack-paper:", _differences(runs, paper))


def _figures(runs):
    means = defaultdict(list)
    for run in runs:
        for key, value in run.summary().items():
            means[key].append(value)
    return (
        f"effective ratio {np.mean(means['effective_gradient_ratio']):.3f}, final success "
        f"{np.mean(means['final_mean_success']):.4f}, InfoGain/step "
        f"{np.mean(means['infogain_per_step']):.2f}"
    )


def _differences(runs, reference):
    parts = []
    for key, digits in (("effective_gradient_ratio", 3), ("final_mean_success", 4),
                        ("infogain_per_step", 2)):  # fmt: skip
        gaps = [a.summary()[key] - b.summary()[key] for a, b in zip(runs, reference, strict=True)]
        parts.append(f"{key} {np.mean(gaps):+.{digits}f}")
    return ", ".join(parts)


if __name__ == "__main__":
    main()
