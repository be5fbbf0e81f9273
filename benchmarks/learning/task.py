"""The task: prompt-specific answer sets whose softmax mass is the exact success rate.

A prompt is four random symbols and a colon, e.g. ``"ĀķŢŗ:"``. Its rollout is
one token; the reward is 1 when that token is in the prompt's answer set
``S_i`` (a random subset of the symbols), else 0. The policy's chance of
success on prompt ``i`` is therefore exactly the softmax mass of its
next-token distribution on ``S_i``: the experiment reads accuracy from the
model without sampling noise.

A freshly initialised model spreads its mass almost evenly over the
vocabulary, so the size of ``S_i`` sets prompt ``i``'s initial success rate
(about ``|S_i| / vocabulary size``). The sizes are the quantiles of a
U-shaped Beta distribution, which gives the math-RL shape: many prompts near
0, many near 1, the rest in between.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

SPECIAL = ("<pad>", "<eos>", "<unk>", ":")
#: Answer and prompt symbols: one character each (Latin Extended-A and beyond).
SYMBOLS = "".join(chr(0x100 + k) for k in range(124))
PROMPT_LENGTH = 4
#: Largest answer set: one symbol always stays wrong, so no prompt is solved
#: by the generic skill of avoiding the special tokens.
MAX_SET = len(SYMBOLS) - 1


def vocabulary() -> dict[str, int]:
    """Token ids: the special tokens, the colon, then the symbols."""
    return {token: index for index, token in enumerate((*SPECIAL, *SYMBOLS))}


def build_tokenizer() -> Any:
    """Character-level fast tokenizer over `vocabulary`, padding on the left."""
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.WordLevel(vocabulary(), unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    tokenizer.decoder = decoders.Fuse()
    return PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        pad_token="<pad>",
        eos_token="<eos>",
        unk_token="<unk>",
        padding_side="left",
    )


def set_sizes(prompts: int, shape: tuple[float, float]) -> NDArray[np.int64]:
    """Answer-set size of each prompt, hardest first.

    The sizes are ``vocabulary size x`` the ``(k + 0.5) / prompts`` quantiles
    of ``Beta(*shape)``, rounded and clipped to ``[1, MAX_SET]``: a fixed
    difficulty profile, the same for every seed.
    """
    from scipy.stats import beta

    quantiles = beta.ppf((np.arange(prompts) + 0.5) / prompts, *shape)
    sizes: NDArray[np.int64] = np.clip(np.rint(quantiles * len(vocabulary())), 1, MAX_SET).astype(
        np.int64
    )
    return sizes


@dataclass(frozen=True)
class Population:
    """Prompts, their answer sets, and which are trained on.

    Attributes
    ----------
    prompts : list of str
        Every prompt, training prompts first, then the held-out ones.
    answers : numpy.ndarray of bool, shape (prompts, vocabulary)
        ``answers[i, t]``: token ``t`` is a right answer to prompt ``i``.
    train : int
        The first ``train`` prompts are the training set; the rest are held
        out (never trained on) and measure how much learning transfers.
    """

    prompts: list[str]
    answers: NDArray[np.bool_]
    train: int

    @property
    def sizes(self) -> NDArray[np.int64]:
        """Answer-set size of every prompt."""
        sizes: NDArray[np.int64] = self.answers.sum(axis=1, dtype=np.int64)
        return sizes

    def dataset(self) -> Any:
        """Training prompts as a ``datasets.Dataset``: ``prompt``, ``prompt_id``, ``answers``."""
        from datasets import Dataset

        rows = [
            {
                "prompt": self.prompts[i],
                "prompt_id": i,
                "answers": np.flatnonzero(self.answers[i]).tolist(),
            }
            for i in range(self.train)
        ]
        return Dataset.from_list(rows)


def make_population(train: int, heldout: int, shape: tuple[float, float], seed: int) -> Population:
    """Draw distinct random prompts and random answer sets with the fixed size profile.

    Training and held-out prompts get the same size profile, so both start
    from the same success distribution.
    """
    rng = np.random.default_rng([seed, 0x7A5C])
    total = train + heldout
    texts: set[str] = set()
    prompts: list[str] = []
    while len(prompts) < total:
        text = "".join(rng.choice(list(SYMBOLS), PROMPT_LENGTH)) + ":"
        if text not in texts:
            texts.add(text)
            prompts.append(text)
    sizes = np.concatenate([set_sizes(train, shape), set_sizes(heldout, shape)])
    first_symbol = len(SPECIAL)
    answers = np.zeros((total, len(vocabulary())), dtype=np.bool_)
    for i, size in enumerate(sizes):
        chosen = rng.choice(len(SYMBOLS), size=int(size), replace=False)
        answers[i, first_symbol + chosen] = True
    # Shuffle the training prompts so that difficulty is not tied to the prompt id.
    order = np.concatenate([rng.permutation(train), train + rng.permutation(heldout)])
    return Population([prompts[i] for i in order], answers[order], train)


class Reward:
    """The 0/1 reward, recording every call (one call per generation batch).

    ``calls`` holds, per call, the prompt id of each rollout and its reward.
    """

    __name__ = "answer_in_set"

    def __init__(self) -> None:
        self.calls: list[tuple[NDArray[np.int64], NDArray[np.float64]]] = []

    def __call__(
        self,
        completion_ids: list[list[int]],
        answers: list[list[int]],
        prompt_id: list[int],
        **kwargs: Any,
    ) -> list[float]:
        rewards = [
            float(bool(ids) and ids[0] in accepted)
            for ids, accepted in zip(completion_ids, answers, strict=True)
        ]
        self.calls.append((np.asarray(prompt_id, dtype=np.int64), np.asarray(rewards)))
        return rewards


def success_rates(
    model: Any, tokenizer: Any, population: Population
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Exact success probability of every prompt: the softmax mass on its answer set.

    Every prompt has the same length, so the batch needs no padding and the
    positions match what generation and the GRPO loss see.

    Returns
    -------
    success : numpy.ndarray
        Per prompt, the mass on its answer set.
    special : numpy.ndarray
        Per prompt, the mass on the tokens that answer no prompt (the special
        tokens and the colon): learning to avoid them helps every prompt.
    """
    import torch

    encoded = tokenizer(population.prompts, return_tensors="pt", add_special_tokens=False)
    ids = encoded["input_ids"].to(model.device)
    was_training = model.training
    model.eval()
    with torch.no_grad():
        logits = model(input_ids=ids).logits[:, -1, :].float()
    model.train(was_training)
    probs = torch.softmax(logits, dim=-1).cpu().double().numpy()
    success = np.asarray((probs * population.answers).sum(axis=1), dtype=np.float64)
    return success, probs[:, : len(SPECIAL)].sum(axis=1)
