"""The learning harness at toy size, against the real TRL trainer (run in ``nox -s learning``)."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import os
from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest

os.environ["HF_HUB_OFFLINE"] = "1"

torch = pytest.importorskip("torch")
pytest.importorskip("trl")

from benchmarks.learning import __main__ as cli  # noqa: E402
from benchmarks.learning import calibrate, compare, report  # noqa: E402
from benchmarks.learning.design import (  # noqa: E402
    ALL_POLICIES,
    CPU,
    LARGE_GROUPS,
    NUM_GENERATIONS,
    POLICIES,
    ModelSize,
    Policy,
    Settings,
)
from benchmarks.learning.experiment import (  # noqa: E402
    FairnessError,
    check_fairness,
    run_all,
    run_one,
)
from benchmarks.learning.run import (  # noqa: E402
    BudgetError,
    RunRecord,
    _check_batches,
    _config,
)
from benchmarks.learning.summary import compute_to_match, first_reach  # noqa: E402
from benchmarks.learning.task import (  # noqa: E402
    MAX_SET,
    Reward,
    build_tokenizer,
    make_population,
    set_sizes,
    success_rates,
    vocabulary,
)

# transformers 5 deprecates names TRL 1.16 still calls; the repository makes warnings errors.
pytestmark = pytest.mark.filterwarnings(
    "ignore:`(is_)?gradient_checkpointing(_enable|_disable)?` is deprecated:FutureWarning"
)

TOY = Settings(
    device="cpu",
    train_prompts=8,
    heldout_prompts=4,
    prompts_per_step=4,
    steps=3,
    learning_rate=CPU.learning_rate,
    difficulty=CPU.difficulty,
    model=ModelSize(hidden=16, layers=1, heads=2, intermediate=32),
)


@pytest.fixture(scope="module")
def toy_records():
    torch.set_num_threads(1)
    return run_all(TOY, POLICIES, [0], workers=1)


def test_population_has_the_fixed_profile_and_distinct_prompts():
    one, two = (
        make_population(64, 32, CPU.difficulty, 0),
        make_population(64, 32, CPU.difficulty, 1),
    )
    for population in (one, two):
        assert len(set(population.prompts)) == 96
        assert sorted(population.sizes[:64]) == sorted(set_sizes(64, CPU.difficulty))
        assert population.sizes.min() >= 1 and population.sizes.max() <= MAX_SET
        # Only symbols are answers; the special tokens and the colon never are.
        assert not population.answers[:, : vocabulary()[":"] + 1].any()
        assert population.dataset().num_rows == 64
    assert one.prompts != two.prompts
    # U-shaped: many prompts with a single answer, many with nearly all.
    sizes = set_sizes(64, CPU.difficulty)
    assert (sizes == 1).sum() >= 10 and (sizes >= 0.9 * MAX_SET).sum() >= 10


def test_reward_is_one_when_the_first_token_is_in_the_set():
    reward = Reward()
    got = reward(completion_ids=[[5], [6], []], answers=[[5, 7], [5], [5]], prompt_id=[0, 1, 2])
    assert got == [1.0, 0.0, 0.0]
    np.testing.assert_array_equal(reward.calls[0][0], [0, 1, 2])


def test_success_rates_are_the_probabilities_trl_trains_on(tmp_path):
    from benchmarks.learning.design import build_model
    from trl import GRPOTrainer

    population = make_population(TOY.train_prompts, TOY.heldout_prompts, TOY.difficulty, 3)
    tokenizer = build_tokenizer()
    model = build_model(TOY, len(tokenizer), tokenizer.pad_token_id, tokenizer.eos_token_id, 3)
    with torch.no_grad():  # sharpen the random model so that the rates differ from |S| / V
        model.lm_head.weight.mul_(40.0)
    trainer = GRPOTrainer(  # with the harness's own configuration
        model=model,
        reward_funcs=Reward(),
        args=_config(TOY, POLICIES[0], 3, str(tmp_path)),
        train_dataset=population.dataset(),
        processing_class=tokenizer,
    )
    vocab = len(tokenizer)
    prompts = tokenizer(population.prompts, return_tensors="pt")["input_ids"]
    sequences = torch.cat(
        [prompts.repeat_interleave(vocab, 0), torch.arange(vocab).repeat(len(prompts))[:, None]],
        dim=1,
    )
    with torch.no_grad():
        logps, _, _ = trainer._get_per_token_logps_and_entropies(
            model, sequences, torch.ones_like(sequences), logits_to_keep=1
        )
    probs = logps.exp().view(len(prompts), vocab).double().numpy()
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    expected = (probs * population.answers).sum(axis=1)
    rates, special = success_rates(model, tokenizer, population)
    np.testing.assert_allclose(rates, expected, atol=1e-6)
    np.testing.assert_allclose(special, probs[:, :4].sum(axis=1), atol=1e-6)
    assert np.ptp(rates / np.maximum(population.sizes / vocab, 1e-9)) > 0.5  # not just |S| / V


def test_sampled_rewards_follow_the_exact_rates():
    # One step with 256 rollouts per prompt: the rewards' sum must match the exact rates.
    wide = Policy("wide", None, 256)
    record = run_one(replace(TOY, steps=1), wide, seed=5)
    assert record.series["rollouts"] == [4 * 256]
    assert abs(record.success_z) < 4.0, record.success_z


def test_every_policy_spends_its_budget_on_the_same_prompts(toy_records):
    check_fairness(toy_records, POLICIES, TOY)
    for policy in POLICIES:
        record = toy_records[policy.name, 0]
        assert record.series["rollouts"] == [TOY.prompts_per_step * policy.group_size] * TOY.steps
        assert all(batch.size == TOY.prompts_per_step for batch in record.batches)
        for name, values in record.series.items():
            assert len(values) == TOY.steps, name
        assert 0.0 <= min(record.series["mean_success"]) <= max(record.series["mean_success"]) <= 1
    # After one epoch (2 steps) the paper preset plans unequal groups.
    assert toy_records["knapsack-paper", 0].series["largest_group"][-1] > NUM_GENERATIONS
    assert toy_records["uniform", 0].series["largest_group"] == [NUM_GENERATIONS] * TOY.steps


def test_clipped_runs_train_on_clipped_advantages(toy_records):
    # A clip of 1 bites on groups of 8 (a lone success gets 2.47). The first step is the same
    # in every run of a seed (8 rollouts per prompt, same samples), so the clipped run's
    # advantages before clipping are the unclipped runs' advantages, stock TRL's included.
    clipped = run_one(TOY, Policy("paper-clip1", "paper", NUM_GENERATIONS, 1.0), seed=0)
    first = {
        name: {key: record.series[key][0] for key in ("advantage_abs_max", "mean_success")}
        for name, record in (
            ("uniform", toy_records["uniform", 0]),
            ("paper", toy_records["knapsack-paper", 0]),
        )
    }
    unclipped = first["uniform"]["advantage_abs_max"]
    assert unclipped > 1.1  # the clip of 1 bites
    assert first["paper"]["advantage_abs_max"] == pytest.approx(unclipped, abs=1e-5)
    assert clipped.series["advantage_abs_max_unclipped"][0] == pytest.approx(unclipped, abs=1e-5)
    assert max(clipped.series["advantage_abs_max"]) == pytest.approx(1.0)
    assert min(clipped.series["advantages_clipped"]) > 0
    assert clipped.series["mean_success"][0] != pytest.approx(first["paper"]["mean_success"])
    for record in (toy_records["uniform", 0], toy_records["knapsack-paper", 0]):
        assert record.series["advantages_clipped"] == [0.0] * TOY.steps
        assert record.series["advantage_abs_max"] == record.series["advantage_abs_max_unclipped"]


def test_large_group_variants_change_nothing_but_the_options():
    assert len({policy.name for policy in ALL_POLICIES}) == len(ALL_POLICIES)
    main = {policy.preset: policy for policy in POLICIES if policy.preset is not None}
    for variant in LARGE_GROUPS:
        base = main[variant.preset]
        assert variant.advantage_clip == 5.0
        assert replace(variant, name=base.name, advantage_clip=None, group_weighting="none") == base
    assert cli._policies(cli._parser().parse_args([]).policies) == list(POLICIES)


def test_only_the_adapter_clips():
    with pytest.raises(ValueError, match="options of KnapsackGRPOTrainer"):
        Policy("uniform-clip5", None, NUM_GENERATIONS, advantage_clip=5.0)


def test_training_changes_the_model(toy_records):
    record = toy_records["uniform-2x", 0]
    assert not np.allclose(record.final_success, record.initial_success)


def test_fairness_check_catches_unequal_runs(toy_records):
    check_fairness(toy_records, POLICIES, TOY)
    for change in [
        lambda r: r.batches.__setitem__(1, r.batches[1][::-1] + 1),  # other prompts
        lambda r: r.series["rollouts"].__setitem__(0, 31.0),  # another budget
        lambda r: setattr(r, "initial_success", r.initial_success + 1e-3),  # other weights
    ]:
        tampered = dict(toy_records)
        record = copy.deepcopy(tampered["knapsack-bayes", 0])
        change(record)
        tampered["knapsack-bayes", 0] = record
        with pytest.raises(FairnessError):
            check_fairness(tampered, POLICIES, TOY)


def test_budget_check_catches_a_plan_that_was_not_followed():
    policy = POLICIES[1]
    ids = np.repeat([3, 1], [20, 12])
    reward = Reward()
    reward.calls.append((ids, np.zeros(ids.size)))

    def allocator(counts, budget):
        return SimpleNamespace(plans=[(np.array([3, 1]), np.array(counts), budget)])

    _check_batches(reward, allocator([20, 12], 32), policy, TOY)  # the plan was followed
    with pytest.raises(BudgetError, match="did not follow its plan"):
        _check_batches(reward, allocator([16, 16], 32), policy, TOY)
    with pytest.raises(BudgetError, match="budget"):
        _check_batches(reward, allocator([20, 12], 40), policy, TOY)
    with pytest.raises(BudgetError, match="unequal groups"):
        _check_batches(reward, None, POLICIES[0], TOY)


def test_first_reach():
    assert first_reach([0.1, 0.3, 0.5, 0.4], 0.3) == 2
    assert first_reach([0.1, 0.2], 0.3) is None
    assert first_reach([0.1, 0.3 - 1e-9], 0.3) == 2  # rounding is not a miss
    assert first_reach([0.1, 0.3 - 1e-4], 0.3) is None


def test_compute_to_match_counts_rollouts_to_the_target():
    settings = replace(TOY, steps=4)
    curves = {
        "uniform": [0.1, 0.2, 0.3, 0.4],
        "knapsack-paper": [0.2, 0.3, 0.5, 0.6],
        "knapsack-bayes": [0.1, 0.2, 0.3, 0.35],
        "uniform-1.5x": [0.2, 0.4, 0.5, 0.55],
        "uniform-2x": [0.3, 0.5, 0.6, 0.7],
    }
    records = {}
    for policy in POLICIES:
        record = RunRecord(policy.name, 0)
        record.series["mean_success"] = curves[policy.name]
        record.series["rollouts"] = [float(policy.budget(settings))] * 4
        records[policy.name, 0] = record
    result = compute_to_match(records, settings, [0])
    assert set(result["knapsack-paper"]["by_step"]) == {"1", "2", "3", "4"}
    # Halfway, paper had 0.3 after 2 x 32 rollouts; uniform-2x had 0.3 after 1 x 64.
    half = result["knapsack-paper"]["by_step"]["2"]["uniform-2x"]["per_seed"][0]
    assert (half["step"], half["rollouts"], half["ratio"]) == (1, 64, 1.0)
    paper = result["knapsack-paper"]["final"]
    assert paper["uniform"]["per_seed"][0]["step"] is None
    assert paper["uniform"]["reached"] == 0
    assert paper["uniform-1.5x"]["per_seed"][0] == {
        "target_success": 0.6,
        "step": None,
        "rollouts": None,
        "ratio": None,
    }
    assert paper["uniform-2x"]["per_seed"][0]["step"] == 3
    assert paper["uniform-2x"]["per_seed"][0]["rollouts"] == 3 * 64
    assert paper["uniform-2x"]["per_seed"][0]["ratio"] == pytest.approx(3 * 64 / (4 * 32))
    bayes = result["knapsack-bayes"]["final"]
    assert bayes["uniform"]["per_seed"][0]["step"] == 4
    assert bayes["uniform-1.5x"]["per_seed"][0]["step"] == 2


#: The command line's arguments for a two-step, one-seed run at the experiment's own size.
SHORT = ["--steps", "2", "--seeds", "1", "--workers", "1"]


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    """The main experiment for two steps: the result file, the figure and what was printed."""
    folder = tmp_path_factory.mktemp("short")
    out, png = folder / "result.json", folder / "result.png"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        status = cli.main([*SHORT, "--json", str(out), "--plot", str(png)])
    assert status == 0
    return out, png, printed.getvalue()


def test_command_line_writes_the_json_and_the_plot(short_run, tmp_path):
    out, png, printed = short_run
    document = json.loads(out.read_text())
    assert document["seeds"] == [0]
    assert set(document["policies"]) == {policy.name for policy in POLICIES}
    for name, entry in document["policies"].items():
        for key in ("effective_gradient_ratio", "final_success", "rollouts", "series"):
            assert key in entry, (name, key)
        assert len(entry["series"]["mean_success"]["mean"]) == 2
    rollouts = {name: document["policies"][name]["rollouts"] for name in document["policies"]}
    assert rollouts["uniform"] == rollouts["knapsack-paper"] == rollouts["knapsack-bayes"] == 256
    assert rollouts["uniform-2x"] == 512
    initial = document["population"]["0"]
    assert len(initial["train_initial_success"]) == CPU.train_prompts
    assert len(initial["heldout_initial_success"]) == CPU.heldout_prompts
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "effective-gradient ratio / uniform's" in printed
    tables = report.markdown(document)
    assert tables.startswith("| figure | uniform | knapsack-paper | knapsack-bayes |")
    assert "| knapsack-paper | 2 |" in tables and "Per-step z of rewards" in tables

    # The simulator's calibration reads that file.
    calibrated, figure = tmp_path / "calibration.json", tmp_path / "calibration.png"
    assert calibrate.main([str(out), "--json", str(calibrated), "--plot", str(figure)]) == 0
    calibration = json.loads(calibrated.read_text())
    assert set(calibration["models"]) == {"defaults", "fitted"}
    for model in calibration["models"].values():
        for name in calibrate.POLICIES:
            assert len(model["predicted"][name]["mean_success"]) == 2
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_command_line_runs_the_chosen_policies(short_run, tmp_path):
    out = tmp_path / "variants.json"
    names = [policy.name for policy in LARGE_GROUPS[1:]]
    assert cli.main(["--policies", ",".join(names), *SHORT, "--json", str(out)]) == 0
    document = json.loads(out.read_text())
    assert list(document["policies"]) == names
    for policy in LARGE_GROUPS[1:]:
        entry = document["policies"][policy.name]
        assert (entry["preset"], entry["advantage_clip"], entry["group_weighting"]) == (
            policy.preset,
            policy.advantage_clip,
            policy.group_weighting,
        )
        assert entry["rollouts"] == 2 * CPU.budget
        assert entry["max_abs_advantage"] <= policy.advantage_clip
    assert document["compute_to_match"] == {}  # no uniform run to compare with
    tables = report.markdown(document)
    assert "| largest absolute advantage trained on |" in tables
    assert "uniform's, per seed" not in tables

    # Against the main policies' runs: in these two steps (the first epoch, groups of 8) the
    # options never act, so each variant's run is its reference's, step for step.
    reference = json.loads(short_run[0].read_text())
    tables = compare.markdown(document, reference)
    assert tables.startswith(
        "| figure | uniform | knapsack-bayes | knapsack-bayes-clip5 | knapsack-paper | "
        "knapsack-paper-clip5-sqrt |"
    )
    assert "| knapsack-bayes-clip5 | knapsack-bayes | yes (options first act at steps never) |" in (
        tables
    )
    assert "| largest absolute advantage trained on |" in tables
    tampered = copy.deepcopy(document)
    tampered["policies"]["knapsack-bayes-clip5"]["runs"][0]["series"]["mean_success"][1] += 0.1
    assert "no: seed 0 differs from step 2, options first act at step None" in (
        compare.markdown(tampered, reference)
    )
    for change, message in [
        (lambda r: r.__setitem__("seeds", [1]), "differ in 'seeds'"),
        (lambda r: r["policies"].pop("knapsack-paper"), "no policy with preset 'paper'"),
    ]:
        other = copy.deepcopy(reference)
        change(other)
        with pytest.raises(compare.MismatchError, match=message):
            compare.markdown(document, other)


def test_comparison_reading_rule_and_first_action():
    assert compare.verdict(np.array([0.01, 0.02, 0.03]), 0.015) == "higher"
    assert compare.verdict(np.array([-0.05, -0.04, -0.06]), 0.04) == "lower"
    assert compare.verdict(np.array([-0.05, -0.04, -0.06]), 0.06) == "no measurable difference"
    assert compare.verdict(np.array([0.01, -0.02, 0.09]), 0.0) == "no measurable difference"
    series = {"advantages_clipped": [0.0, 0.0, 0.01, 0.0], "largest_group": [8, 9, 12, 8]}
    run = {"series": series}
    clip = {"group_weighting": "none", "group_size": 8}
    assert compare.first_action(run, clip) == 3
    assert compare.first_action(run, {**clip, "group_weighting": "sqrt"}) == 2
    assert (
        compare.first_action({"series": {**series, "advantages_clipped": [0.0] * 4}}, clip) is None
    )


def test_calibration_recovers_the_rate_that_made_the_curve():
    rates = make_population(64, 0, CPU.difficulty, 0).sizes / len(vocabulary())
    result = {
        "settings": {"prompts_per_step": 16, "budget": 128, "steps": 60},
        "seeds": [0, 1],
        "population": {str(seed): {"train_initial_success": rates.tolist()} for seed in (0, 1)},
    }
    true_rate = calibrate.RATES[25]
    curve = calibrate.simulate_policies(result, true_rate, 0.0, ["uniform"])["uniform"]
    result["policies"] = {"uniform": {"series": {"mean_success": {"mean": curve["mean_success"]}}}}
    rate, errors = calibrate.fit_rate(result)
    assert rate == true_rate
    assert min(errors) == 0.0


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--steps", "0"], "--steps == 0, must be >= 1"),
        (["--seeds", "-1"], "--seeds == -1, must be >= 1"),
        (["--plot", "figure.jpg"], "must name a .png file"),
        (["--workers", "0"], "--workers == 0, must be >= 1"),
        (["--policies", "uniform,uniform-3x"], "unknown uniform-3x; choose from uniform,"),
        (["--policies", " , "], "empty; choose from"),
        (["--policies", "uniform,uniform"], "names a policy twice"),
    ],
)
def test_bad_arguments_are_refused(argv, message):
    with pytest.raises(SystemExit, match=message):
        cli.main(argv)


@pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU is present")
def test_cuda_without_a_gpu_says_so():
    with pytest.raises(SystemExit, match="sees no CUDA device"):
        cli.main(["--device", "cuda", "--steps", "1"])
