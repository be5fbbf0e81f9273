"""``KnapsackGRPOTrainer`` with TRL's vLLM generation, in colocate and server mode.

vLLM needs a GPU, so the engine (colocate) and the server (server mode) are
stand-ins from ``vllm_standin.py``; TRL's own ``VLLMGeneration`` (both modes),
``VLLMClient.generate`` (server mode, over HTTP) and ``sync_weights`` run as
they are. The stand-ins sample from a copy of the policy that TRL keeps in
sync, so TRL's importance-sampling correction sees the policy's own logprobs.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("requests")

import vllm_standin  # noqa: E402
from trl.generation import vllm_generation  # noqa: E402
from trl_shared import (  # noqa: E402
    BUDGET,
    DEPRECATIONS,
    STEPS,
    AdvantageRecorder,
    Recorder,
    RecordingAllocator,
    example,
    grpo_reference,
    train,
)

pytestmark = pytest.mark.filterwarnings(DEPRECATIONS)


@pytest.fixture(scope="module", params=["colocate", "server"])
def vllm_run(request, tmp_path_factory):
    mode = request.param
    server = vllm_standin.CompletionsServer() if mode == "server" else None
    made = {}

    def init_vllm(self):  # VLLMGeneration._init_vllm, without a GPU
        tokenizer = self.processing_class
        policy = vllm_standin.PolicyCopy(self.model, tokenizer.eos_token_id, tokenizer.pad_token_id)
        made["policy"] = policy
        if self.mode == "server":
            server.policy = policy
            self.vllm_client = vllm_standin.StandInClient(server)
        else:
            self.llm = vllm_standin.StandInLLM(policy)
            self._llm_weights_sleeping = False

    reward = Recorder()
    allocator = RecordingAllocator(preset="paper")
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(vllm_generation.VLLMGeneration, "_init_vllm", init_vllm)
        patch.setattr(vllm_generation, "SamplingParams", vllm_standin.SamplingParams, raising=False)
        trainer = train(
            AdvantageRecorder,
            reward,
            tmp_path_factory.mktemp(mode),
            config={"use_vllm": True, "vllm_mode": mode},
            allocator=allocator,
        )
    if server is not None:
        server.close()
    return mode, trainer, reward, allocator, made["policy"]


def test_each_prompt_gets_its_planned_completions(vllm_run):
    _, trainer, reward, allocator, policy = vllm_run
    tokenizer = trainer.processing_class
    rows = example.build_dataset()
    prompt_of = {tuple(tokenizer(row["prompt"])["input_ids"]): row["prompt_id"] for row in rows}
    assert len(policy.calls) == STEPS * BUDGET  # one request of one completion per rollout
    assert {n for _, n in policy.calls} == {1}
    for step, (ids, budget, plan) in enumerate(allocator.plans):
        assert budget == BUDGET
        asked = policy.calls[step * BUDGET : (step + 1) * BUDGET]
        planned = {pid: int(n) for pid, n in zip(ids, plan.counts, strict=True) if n > 0}
        assert Counter(prompt_of[tuple(p)] for p, _ in asked) == planned
        assert Counter(reward.calls[step][0]) == planned
    later = [plan.counts for _, _, plan in allocator.plans[2:]]
    assert any(len(set(np.asarray(c).tolist())) > 1 for c in later)


def test_completions_line_up_with_their_logprobs(vllm_run):
    # TRL compares the engine's logprob of every sampled token with the policy's; a
    # completion handed to the wrong row, or stale weights, would move the ratio off 1.
    _, trainer, *_ = vllm_run
    logged = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(logged) == STEPS
    for entry in logged:
        assert entry["sampling/sampling_logp_difference/max"] < 1e-3
        assert abs(entry["sampling/importance_sampling_ratio/mean"] - 1.0) < 1e-3


def test_weights_are_synced_every_step(vllm_run):
    _, trainer, *_, policy = vllm_run
    assert policy.cache_resets == STEPS
    # the copy holds the weights of the last sync: those before the last optimizer step
    assert any(
        not torch.equal(p, q)
        for p, q in zip(policy.model.parameters(), trainer.model.parameters(), strict=True)
    )


def test_advantages_are_per_group(vllm_run):
    _, trainer, reward, *_ = vllm_run
    for (rollout_ids, rewards, _), advantages in zip(
        reward.calls, trainer.recorded_advantages, strict=True
    ):
        expected = grpo_reference(rewards, rollout_ids)
        np.testing.assert_allclose(advantages, expected, rtol=1e-5, atol=1e-5)
