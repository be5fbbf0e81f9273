"""Prompt populations: each prompt's latent success probability at the start of training.

A population comes from one of three sources:

* a named preset (:data:`PRESETS`), e.g. ``"math-rl"``;
* a mixture spec such as ``"0.15*point(0) + 0.10*point(1) + 0.75*beta(0.4,0.6)"``:
  components separated by ``+``, each an optional weight, ``*``, and either
  ``beta(a,b)`` or ``point(p)``; weights are normalised to sum to 1;
* a file of ``prompt_id,success_rate`` rows (CSV, JSON lines or Parquet, read
  like the ``allocate`` command's input).

Mixture components get exact shares of the prompts (largest remainders), so
``0.15*point(0)`` with 10,000 prompts is exactly 1,500 prompts at ``p = 0``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from knapsack_alloc.exceptions import InvalidArgumentError

#: Named populations and the mixtures they stand for (see ``docs/simulator.md``).
PRESETS: dict[str, str] = {
    "math-rl": "0.15*point(0) + 0.10*point(1) + 0.75*beta(0.4,0.6)",
    "hard": "0.30*point(0) + 0.70*beta(0.3,2)",
    "easy": "0.30*point(1) + 0.70*beta(2,0.3)",
    "flat": "beta(1,1)",
}

_NUMBER = r"\d+(?:\.\d*)?(?:[eE][-+]?\d+)?|\.\d+(?:[eE][-+]?\d+)?"
_TERM = re.compile(
    rf"^\s*(?:(?P<weight>{_NUMBER})\s*\*\s*)?"
    rf"(?P<kind>beta|point)\s*\(\s*(?P<first>{_NUMBER})\s*(?:,\s*(?P<second>{_NUMBER})\s*)?\)\s*$",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Component:
    """One part of a mixture: ``Beta(a, b)``, or a point mass at ``a`` when ``b`` is None."""

    weight: float
    a: float
    b: float | None

    def describe(self) -> str:
        """Return the component in spec syntax."""
        shape = f"point({self.a:g})" if self.b is None else f"beta({self.a:g},{self.b:g})"
        return f"{self.weight:g}*{shape}"


def parse_mixture(spec: str) -> tuple[Component, ...]:
    """Parse a mixture spec (see the module docstring).

    Parameters
    ----------
    spec : str
        E.g. ``"0.2*point(0) + 0.8*beta(0.5,0.5)"`` or ``"beta(1,1)"``.

    Returns
    -------
    tuple of Component
        Weights normalised to sum to 1.

    Raises
    ------
    InvalidArgumentError
        Naming the term that cannot be read and the accepted syntax.
    """
    components = []
    for term in spec.split("+"):
        match = _TERM.match(term)
        if match is None:
            raise InvalidArgumentError(
                f"population term {term.strip()!r} in {spec!r} is not a mixture component; "
                "write terms like 0.15*point(0) or 0.75*beta(0.4,0.6) joined by '+', or use a "
                f"preset ({', '.join(PRESETS)}) or a .csv/.jsonl/.parquet file."
            )
        weight = float(match["weight"]) if match["weight"] is not None else 1.0
        first = float(match["first"])
        second = None if match["second"] is None else float(match["second"])
        kind = match["kind"].lower()
        if kind == "point" and (second is not None or not 0.0 <= first <= 1.0):
            raise InvalidArgumentError(
                f"population term {term.strip()!r}: point(p) takes one probability in [0, 1]."
            )
        if kind == "beta" and (second is None or first <= 0.0 or second <= 0.0):
            raise InvalidArgumentError(
                f"population term {term.strip()!r}: beta(a,b) takes two numbers > 0."
            )
        if weight <= 0.0:
            raise InvalidArgumentError(f"population term {term.strip()!r}: the weight must be > 0.")
        components.append(Component(weight, first, second))
    total = sum(c.weight for c in components)
    return tuple(Component(c.weight / total, c.a, c.b) for c in components)


def resolve_spec(name_or_spec: str) -> str:
    """Return the mixture spec of a preset name, or the argument itself."""
    return PRESETS.get(name_or_spec.strip().lower(), name_or_spec)


def draw_mixture(
    components: tuple[Component, ...], prompts: int, rng: np.random.Generator
) -> NDArray[np.float64]:
    """Draw ``prompts`` success probabilities, each component getting its exact share.

    Parameters
    ----------
    components : tuple of Component
        The mixture (weights summing to 1).
    prompts : int
        Number of prompts.
    rng : numpy.random.Generator
        Source of the Beta draws and of the final shuffle.

    Returns
    -------
    numpy.ndarray of float64
        Shuffled, so prompt ids carry no information about the component.
    """
    weights = np.array([c.weight for c in components])
    quotas = weights * prompts
    sizes = np.floor(quotas).astype(np.int64)
    # Largest remainders, earlier components first on ties.
    order = np.argsort(-(quotas - sizes), kind="stable")
    sizes[order[: prompts - int(sizes.sum())]] += 1
    parts = [
        np.full(size, c.a) if c.b is None else rng.beta(c.a, c.b, size)
        for c, size in zip(components, sizes.tolist(), strict=True)
    ]
    rates = np.concatenate(parts) if parts else np.zeros(0)
    return rng.permutation(rates)


def read_population_file(path: str) -> tuple[list[object], NDArray[np.float64]]:
    """Read ``prompt_id,success_rate`` rows with the ``allocate`` command's readers.

    Parameters
    ----------
    path : str
        A ``.csv``, ``.jsonl``/``.ndjson`` or ``.parquet`` file.

    Returns
    -------
    prompt_ids : list
        As read.
    rates : numpy.ndarray of float64
        Success probabilities, each in ``[0, 1]``.

    Raises
    ------
    InvalidArgumentError
        One line naming the file, and the row and column of a bad cell.
    """
    from knapsack_alloc.cli.tables import CommandError, read_table

    try:
        table = read_table(path)
        if table.rows == 0:
            raise CommandError(f"{path}: no rows")
        ids = table.require("prompt_id")
        rates = table.numbers("success_rate")
        outside = np.flatnonzero((rates < 0.0) | (rates > 1.0))
        if outside.size:
            i = int(outside[0])
            raise table.fail("success_rate", i, f"{rates[i]:g} is outside [0, 1]")
        first_row: dict[str, int] = {}
        for index, prompt in enumerate(ids):
            key = repr(prompt)
            if key in first_row:
                raise table.fail(
                    "prompt_id",
                    index,
                    f"{prompt!r} already appears in row {table.first_row + first_row[key]}",
                )
            first_row[key] = index
    except CommandError as error:
        raise InvalidArgumentError(str(error)) from None
    return list(ids), rates


_FILE_SUFFIXES = (".csv", ".txt", ".jsonl", ".ndjson", ".parquet")


@dataclass(frozen=True, eq=False)
class Population:
    """Where each prompt's initial success probability comes from.

    Build one with :meth:`from_argument`. A mixture is drawn afresh for each
    seed (with its exact component shares); a file's rates are used as read.

    Attributes
    ----------
    name : str
        The preset name, the mixture spec or the file path.
    size : int
        Number of prompts.
    components : tuple of Component or None
        The mixture, or None for a file.
    rates : numpy.ndarray or None
        The file's success rates, or None for a mixture.
    """

    name: str
    size: int
    components: tuple[Component, ...] | None = None
    rates: NDArray[np.float64] | None = None

    @classmethod
    def from_argument(cls, value: str, prompts: int | None = None) -> Population:
        """Resolve a preset name, a mixture spec or a file path.

        Parameters
        ----------
        value : str
            E.g. ``"math-rl"``, ``"0.2*point(0)+0.8*beta(1,3)"`` or ``"rates.csv"``.
        prompts : int, optional
            Number of prompts of a preset or mixture (default 10,000); must
            not be given for a file, whose rows are the prompts.

        Returns
        -------
        Population
        """
        from knapsack_alloc._validation import integer_scalar

        text = value.strip()
        if text.lower().endswith(_FILE_SUFFIXES):
            if prompts is not None:
                raise InvalidArgumentError(
                    f"prompts == {prompts!r} cannot be combined with the population file "
                    f"{text!r}: its rows are the prompts. Drop the prompt count."
                )
            _, rates = read_population_file(text)
            return cls(name=text, size=int(rates.size), rates=rates)
        size = DEFAULT_PROMPTS if prompts is None else integer_scalar("prompts", prompts, minimum=1)
        return cls(name=text, size=size, components=parse_mixture(resolve_spec(text)))

    def describe(self) -> str:
        """One line: the name and, for a preset, its mixture."""
        if self.components is None:
            return f"{self.name} ({self.size} prompts from the file)"
        spec = " + ".join(c.describe() for c in self.components)
        return spec if spec == self.name else f"{self.name} = {spec}"

    def draw(self, seed: int) -> NDArray[np.float64]:
        """Return the initial success probabilities of a run with ``seed`` (a new array)."""
        if self.components is not None:
            rng = np.random.default_rng([seed, _POPULATION_STREAM])
            return draw_mixture(self.components, self.size, rng)
        return np.array(self.rates, dtype=np.float64)


#: Prompts of a preset or mixture population when none is given.
DEFAULT_PROMPTS = 10_000
_POPULATION_STREAM = 0x9090
