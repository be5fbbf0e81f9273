"""Train a tiny GRPO policy with TRL twice: uniform rollouts, then knapsack rollouts.

Everything is built locally (no download): a character-level tokenizer, a
random two-layer Llama with hidden size 32, and a synthetic task whose prompts
have graded difficulty. Prompt ``i`` asks for a first character among the
first ``k_i`` letters of the alphabet, so an untrained policy succeeds with
probability about ``k_i / vocabulary size``: from never (``k_i = 0``) to
almost always.

Both runs spend the same rollouts per step (prompts per step x
``num_generations``); the knapsack run lets ``KnapsackAllocator`` decide how
many each prompt gets. The script prints the effective-gradient ratio of each
run: the share of rollouts whose group has a non-zero reward spread, i.e.
rollouts that carry a GRPO gradient.

Run with::

    HF_HUB_OFFLINE=1 python examples/trl_grpo.py --steps 12
    python examples/trl_grpo.py --preset bayes --advantage-clip 5 --token-budget 400

Needs ``torch``, ``trl`` and ``tokenizers`` (see ``integrations/trl/``).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

LETTERS = "abcdefghijklmnop"
#: Accepted first letters of each prompt: prompt ``i`` succeeds on ``LETTERS[:DIFFICULTY[i]]``.
DIFFICULTY = (0, 0, 1, 1, 2, 3, 4, 5, 6, 8, 10, 12, 13, 14, 15, 16)


def build_tokenizer() -> Any:
    """Character-level tokenizer over ``LETTERS`` and ``":"``, padding on the left."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "<eos>": 1, "<unk>": 2}
    for char in LETTERS + ":":
        vocab[char] = len(vocab)
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tokenizer.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token="<pad>",
        eos_token="<eos>",
        unk_token="<unk>",
        padding_side="left",
    )


def build_model(tokenizer: Any, seed: int = 0) -> Any:
    """Random Llama with hidden size 32 and two layers."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=64,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=None,
    )
    return LlamaForCausalLM(config)


def build_dataset(difficulty: tuple[int, ...] = DIFFICULTY) -> Any:
    """One row per prompt: ``prompt``, ``prompt_id`` and the number ``k`` of accepted letters."""
    from datasets import Dataset

    rows = [
        {"prompt": f"{LETTERS[i % len(LETTERS)]}:", "prompt_id": i, "k": k}
        for i, k in enumerate(difficulty)
    ]
    return Dataset.from_list(rows)


def first_letter_reward(completions: list[str], k: list[int], **kwargs: Any) -> list[float]:
    """1.0 when the completion starts with one of the prompt's ``k`` accepted letters, else 0.0."""
    return [
        float(bool(text) and text[0] in LETTERS[:kk])
        for text, kk in zip(completions, k, strict=True)
    ]


def make_config(output_dir: str, steps: int, prompts_per_step: int, **overrides: Any) -> Any:
    """GRPO settings for a CPU run: ``prompts_per_step`` prompts x 8 rollouts a step."""
    from trl import GRPOConfig

    num_generations = 8
    settings: dict[str, Any] = {
        "output_dir": output_dir,
        "per_device_train_batch_size": prompts_per_step * num_generations,
        "num_generations": num_generations,
        "max_completion_length": 4,
        "max_steps": steps,
        "learning_rate": 1e-3,
        "temperature": 1.0,
        "bf16": False,
        "use_cpu": True,
        "report_to": "none",
        "logging_steps": 1,
        "save_strategy": "no",
        "disable_tqdm": True,
        "seed": 0,
    }
    settings.update(overrides)
    return GRPOConfig(**settings)


def effective_gradient_ratio(log_history: list[dict[str, float]], skip: int = 0) -> float:
    """Mean share of rollouts in groups with a reward spread, over the logged steps after ``skip``.

    Every step spends the same number of rollouts, so the mean over steps is
    the share over all rollouts.
    """
    zero = [
        entry["frac_reward_zero_std"] for entry in log_history if "frac_reward_zero_std" in entry
    ]
    kept = zero[skip:]
    return 1.0 - sum(kept) / len(kept)


def train(
    allocator: Any,
    steps: int,
    prompts_per_step: int = 8,
    difficulty: tuple[int, ...] = DIFFICULTY,
    output_dir: str | None = None,
    knapsack_options: dict[str, Any] | None = None,
    **overrides: Any,
) -> Any:
    """Train one run and return the trainer; ``allocator=None`` is stock GRPO (uniform).

    ``knapsack_options`` go to ``KnapsackGRPOTrainer`` (``token_budget``,
    ``advantage_clip``, ``group_weighting``); ``overrides`` to ``GRPOConfig``.
    """
    from transformers import PrinterCallback
    from trl import GRPOTrainer

    from knapsack_alloc.integrations.trl import KnapsackGRPOTrainer

    tokenizer = build_tokenizer()
    with tempfile.TemporaryDirectory() as scratch:
        kwargs: dict[str, Any] = {
            "model": build_model(tokenizer),
            "reward_funcs": first_letter_reward,
            "args": make_config(output_dir or scratch, steps, prompts_per_step, **overrides),
            "train_dataset": build_dataset(difficulty),
            "processing_class": tokenizer,
        }
        if allocator is None:
            trainer = GRPOTrainer(**kwargs)
        else:
            trainer = KnapsackGRPOTrainer(**kwargs, allocator=allocator, **(knapsack_options or {}))
        trainer.remove_callback(PrinterCallback)  # keep the per-step log dicts off stdout
        trainer.train()
    return trainer


def main() -> None:
    from knapsack_alloc.allocator import KnapsackAllocator

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=12, help="optimizer steps per run")
    parser.add_argument("--preset", default="paper", choices=["paper", "bayes"])
    parser.add_argument("--prompts-per-step", type=int, default=8)
    parser.add_argument(
        "--token-budget",
        type=float,
        help="completion tokens per step instead of prompts x 8 rollouts (tracked lengths)",
    )
    parser.add_argument("--advantage-clip", type=float, help="clip advantages to [-c, c]")
    parser.add_argument("--group-weighting", default="none", choices=["none", "sqrt", "equal"])
    options = parser.parse_args()
    knapsack_options = {
        "token_budget": options.token_budget,
        "advantage_clip": options.advantage_clip,
        "group_weighting": options.group_weighting,
    }
    cost_settings: dict[str, Any] = {}
    if options.token_budget is not None:
        cost_settings = {"cost_model": "tracked", "cost_resolution": 1, "allow_unused_budget": True}

    epoch = len(DIFFICULTY) // options.prompts_per_step
    rollouts = options.prompts_per_step * 8
    results = {}
    for name, allocator in [
        ("uniform", None),
        (f"knapsack ({options.preset})", KnapsackAllocator(options.preset, **cost_settings)),
    ]:
        trainer = train(
            allocator,
            options.steps,
            options.prompts_per_step,
            knapsack_options=knapsack_options if allocator is not None else None,
        )
        history = trainer.state.log_history
        results[name] = (
            effective_gradient_ratio(history),
            effective_gradient_ratio(history, epoch),
        )

    budget = f"{options.token_budget:g} tokens" if options.token_budget else f"{rollouts} rollouts"
    print(
        f"{budget} per step (uniform: {rollouts} rollouts), {options.steps} steps, "
        f"{len(DIFFICULTY)} prompts"
    )
    print(f"{'run':<20} {'effective-gradient ratio':>26} {'after first epoch':>18}")
    for name, (overall, later) in results.items():
        print(f"{name:<20} {overall:>26.3f} {later:>18.3f}")


if __name__ == "__main__":
    main()
