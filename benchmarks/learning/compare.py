"""Runs with the options for large groups against the main experiment's runs, seed by seed.

``python -m benchmarks.learning.compare VARIANTS.json --against MAIN.json``
prints the Markdown tables of "Options for large groups" in
``docs/evidence.md``. Each policy of ``VARIANTS.json`` with an
``advantage_clip`` or a ``group_weighting`` is compared with the policy of
``MAIN.json`` that has the same preset and neither option. The two files must
hold runs of the same experiment (settings, seeds, initial weights), which is
checked; so is that each variant's run is identical to its reference's, step
for step, until the first step at which its options change an advantage.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np
from benchmarks.learning.report import exactness, figures_table

#: Series that measure time, which no two runs share.
TIMINGS = frozenset({"wall_s", "allocator_s"})

#: The paired figures and how each is put against the reference: a difference or a ratio.
PAIRED = (
    ("final_success", "final success", "difference"),
    ("mean_success_over_steps", "success averaged over steps", "difference"),
    ("effective_gradient_ratio", "effective-gradient ratio", "ratio"),
)


class MismatchError(ValueError):
    """The two result files are not runs of the same experiment."""


def check_same_experiment(document: dict[str, Any], reference: dict[str, Any]) -> None:
    """Same settings, seeds and initial population (so the same initial weights).

    Raises
    ------
    MismatchError
    """
    for key in ("settings", "seeds", "population"):
        if document[key] != reference[key]:
            raise MismatchError(
                f"the result files differ in {key!r}: they are not runs of the same experiment. "
                "Run the variants with the reference's settings and seeds (the defaults of "
                "`python -m benchmarks.learning`, changing only --policies)."
            )


def has_options(entry: dict[str, Any]) -> bool:
    """Whether a policy uses ``advantage_clip`` or ``group_weighting`` (old files have neither)."""
    return entry.get("advantage_clip") is not None or entry.get("group_weighting", "none") != "none"


def reference_of(entry: dict[str, Any], reference: dict[str, Any]) -> str:
    """Name of the reference's policy with ``entry``'s preset and group size and neither option.

    Raises
    ------
    MismatchError
    """
    for name, candidate in reference["policies"].items():
        if (
            candidate["preset"] == entry["preset"]
            and candidate["group_size"] == entry["group_size"]
            and not has_options(candidate)
        ):
            return str(name)
    raise MismatchError(
        f"the reference holds no policy with preset {entry['preset']!r}, group size "
        f"{entry['group_size']} and neither option; compare against the main experiment's file."
    )


def first_difference(run: dict[str, Any], other: dict[str, Any]) -> int | None:
    """First step (1-based) at which two runs' series differ (timings aside), or None."""
    shared = sorted((set(run["series"]) & set(other["series"])) - TIMINGS)
    steps = min(len(run["series"][name]) for name in shared)
    for step in range(steps):
        if any(run["series"][name][step] != other["series"][name][step] for name in shared):
            return step + 1
    return None


def first_action(run: dict[str, Any], entry: dict[str, Any]) -> int | None:
    """First step (1-based) at which a variant's options changed an advantage, or None.

    The clip acts when it clips a rollout; the weighting when a step's groups
    are unequal (with equal groups every weight is 1).
    """
    acts = np.asarray(run["series"]["advantages_clipped"]) > 0
    if entry["group_weighting"] != "none":
        acts |= np.asarray(run["series"]["largest_group"]) > entry["group_size"]
    steps = np.flatnonzero(acts)
    return int(steps[0]) + 1 if steps.size else None


def verdict(differences: np.ndarray[Any, Any], spread: float) -> str:
    """The reading rule fixed before the runs (``docs/evidence.md``).

    A paired difference counts only if it has the same sign in every seed
    and its mean is larger than ``spread`` (the larger of the two policies'
    seed-to-seed standard deviations).
    """
    mean = float(np.mean(differences))
    same_sign = bool(np.all(differences > 0) or np.all(differences < 0))
    if same_sign and abs(mean) > spread:
        return "higher" if mean > 0 else "lower"
    return "no measurable difference"


def _runs_by_seed(entry: dict[str, Any]) -> dict[int, dict[str, Any]]:
    return {run["seed"]: run for run in entry["runs"]}


def markdown(document: dict[str, Any], reference: dict[str, Any]) -> str:
    """The figures of the variants next to their references', and the paired comparison.

    Raises
    ------
    MismatchError
        If the files are not runs of the same experiment, or a variant has no
        reference policy.
    """
    check_same_experiment(document, reference)
    variants = {name: e for name, e in document["policies"].items() if has_options(e)}
    if not variants:
        raise MismatchError("the result file holds no policy with advantage_clip or weighting.")
    against = {name: reference_of(entry, reference) for name, entry in variants.items()}
    columns: dict[str, Any] = {}
    if "uniform" in reference["policies"]:
        columns["uniform"] = reference["policies"]["uniform"]
    for base in dict.fromkeys(against.values()):  # each reference, then its variants
        columns[base] = reference["policies"][base]
        columns.update({name: variants[name] for name in against if against[name] == base})

    header = [
        "| variant | against | identical until the options first act |",
        "|---|---|---|",
    ]
    for _, label, kind in PAIRED:
        per = "ratio" if kind == "ratio" else "difference"
        header[0] += f" {label}: {per}, per seed (mean) |"
        header[1] += "---|"
        if kind == "difference":
            header[0] += f" {label}: reading |"
            header[1] += "---|"
    rows = []
    for name, base in against.items():
        ours, theirs = variants[name], reference["policies"][base]
        mine, others = _runs_by_seed(ours), _runs_by_seed(theirs)
        seeds = document["seeds"]
        acted = [first_action(mine[seed], ours) for seed in seeds]
        differ = [first_difference(mine[seed], others[seed]) for seed in seeds]
        steps = ", ".join("never" if step is None else str(step) for step in acted)
        identical = (
            f"yes (options first act at steps {steps})"
            if acted == differ
            else "no: "
            + "; ".join(
                f"seed {seed} differs from step {d}, options first act at step {a}"
                for seed, a, d in zip(seeds, acted, differ, strict=True)
                if a != d
            )
        )
        cells = [name, base, identical]
        for key, _, kind in PAIRED:
            a = np.asarray(ours["over_seeds"][key]["values"])
            b = np.asarray(theirs["over_seeds"][key]["values"])
            if kind == "ratio":
                paired = a / b
                cells.append(
                    ", ".join(f"{v:.2f}" for v in paired) + f" ({float(np.mean(paired)):.2f})"
                )
                continue
            paired = a - b
            cells.append(
                ", ".join(f"{v:+.3f}" for v in paired) + f" ({float(np.mean(paired)):+.3f})"
            )
            spread = max(ours["over_seeds"][key]["std"], theirs["over_seeds"][key]["std"])
            cells.append(verdict(paired, spread))
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(
        [
            *figures_table(columns),
            "",
            *header,
            *rows,
            "",
            exactness(document).replace("of all runs", "of the variants' runs"),
        ]
    )


def main(argv: list[str] | None = None) -> int:
    """Print the comparison of two result files."""
    parser = argparse.ArgumentParser(
        description="Compare runs with the options for large groups with the main experiment's."
    )
    parser.add_argument("result", type=Path, help="the variants' result file")
    parser.add_argument(
        "--against", type=Path, required=True, help="the main experiment's result file"
    )
    options = parser.parse_args(argv)
    document, reference = (
        json.loads(path.read_text(encoding="utf-8")) for path in (options.result, options.against)
    )
    try:
        print(markdown(document, reference))
    except MismatchError as error:
        parser.error(str(error))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
