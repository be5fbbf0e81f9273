"""Stand-ins for the parts of verl's v1 trainer that need a GPU, and a tiny local task.

Everything else in these tests is verl's own code on CPU: the composed Hydra
config, the trainer (``step``/``fit``), its dataloader over a real parquet
file, TransferQueue (Ray actors), the replay buffer, batch balancing and
padding, the advantage step, and the agent-loop worker
(``AgentLoopWorkerTQ.generate_sequences``/``_run_prompt``/``_agent_loop_postprocess``).

Stand-ins:

* the LLM: ``SyntheticAgentLoop`` runs verl's agent-loop workers in this
  process; each session's model call is replaced by a synthetic response
  whose outcome reward is 1 with the prompt's success probability;
* the actor worker group: ``RecordingActor`` answers ``compute_log_prob`` with
  zeros and, for ``update_actor``, splits the batch across data-parallel
  ranks as verl's dispatch does and iterates PPO mini-batches with verl's own
  ``tensordict_utils.make_iterator``, recording each mini-batch instead of
  running a backward pass;
* weight syncing between trainer and rollout (``checkpoint_manager``): no-ops.
"""

from __future__ import annotations

import asyncio
import random
from types import SimpleNamespace

import numpy as np
import pandas as pd
import torch
import transfer_queue as tq
import verl.utils.tensordict_utils as tu
from tensordict import TensorDict
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import LlamaConfig, PreTrainedTokenizerFast
from verl.experimental.agent_loop.agent_loop import AgentLoopMetrics, AgentLoopOutput
from verl.trainer.ppo.v1 import agent_loop_tq
from verl.workers.utils.padding import response_to_nested

CHARS = "abcdefghijklmnopqrstuvwxyz0123456789:#? "


def write_task(folder, success):
    """Write a tokenizer + model config folder and a parquet dataset; return their paths."""
    vocab = {"<pad>": 0, "<eos>": 1, "<unk>": 2}
    for char in CHARS:
        vocab[char] = len(vocab)
    core = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    core.pre_tokenizer = pre_tokenizers.Split(Regex("."), behavior="isolated")
    core.decoder = decoders.Fuse()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=core, pad_token="<pad>", eos_token="<eos>", unk_token="<unk>"
    )
    tokenizer.chat_template = "{% for m in messages %}{{ m['content'] }}{% endfor %}"
    model = folder / "model"
    tokenizer.save_pretrained(model)
    LlamaConfig(
        architectures=["LlamaForCausalLM"],
        vocab_size=len(vocab),
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=2,
        pad_token_id=0,
        eos_token_id=1,
    ).save_pretrained(model)
    rows = [
        {
            "data_source": "synthetic",
            "prompt": [{"role": "user", "content": f"q{i}?"}],
            "ability": "synthetic",
            "reward_model": {"style": "rule", "ground_truth": "1"},
            "extra_info": {"index": i},
        }
        for i in range(len(success))
    ]
    data = folder / "train.parquet"
    pd.DataFrame(rows).to_parquet(data)
    return model, data


class SyntheticWorker(agent_loop_tq.AgentLoopWorkerTQ.__ray_actor_class__):
    """verl's v1 agent-loop worker; only the model call of a session is synthetic."""

    async def _run_agent_loop(self, sampling_params, trajectory, *, agent_name, trace=True, **kw):
        prompt_ids = self.tokenizer.apply_chat_template(
            list(kw["raw_prompt"]), add_generation_prompt=True, tokenize=True
        )
        if isinstance(prompt_ids, dict) or hasattr(prompt_ids, "input_ids"):
            prompt_ids = list(prompt_ids["input_ids"])
        index, session, step = int(kw["index"]), int(kw["session_id"]), int(kw["global_steps"])
        rng = random.Random(hash((self.seed, index, session, step)))
        length = rng.randint(1, 6)
        output = AgentLoopOutput(
            prompt_ids=list(prompt_ids),
            response_ids=[rng.randint(3, 20) for _ in range(length)],
            response_mask=[1] * length,
            response_logprobs=[0.0] * length,  # what RecordingActor computes too
            reward_score=float(rng.random() < self.success[index]),
            num_turns=2,
            metrics=AgentLoopMetrics(),
            extra_fields={"min_global_steps": step, "max_global_steps": step},
        )
        return await self._agent_loop_postprocess(output, trajectory["validate"], **kw)


class SyntheticAgentLoop:
    """``AgentLoopManagerTQ.generate_sequences`` with its workers in this process."""

    def __init__(self, config, tokenizer, success, workers, seed=0):
        self.workers = []
        for _ in range(workers):
            worker = SyntheticWorker.__new__(SyntheticWorker)
            worker.config = config
            worker.tokenizer = tokenizer
            worker.processor = None
            worker.reward_loop_worker_handles = None
            worker.distillation_enabled = False
            worker.background_tasks = set()
            worker.success = success
            worker.seed = seed
            self.workers.append(worker)
        self.batches = []  # every prompt batch submitted, as the workers saw it

    def generate_sequences(self, prompts):
        self.batches.append(prompts)
        chunks = prompts.chunk(len(self.workers))  # what AgentLoopManagerTQ does

        async def run():
            for worker, chunk in zip(self.workers, chunks, strict=False):
                await worker.generate_sequences(chunk)
            for worker in self.workers:
                await asyncio.gather(*list(worker.background_tasks))

        asyncio.run(run())


class RecordingActor:
    """The actor worker group, without a model: log-probs are zeros, updates are recorded."""

    def __init__(self, data_parallel):
        self._dispatch_info = {"actor": list(range(data_parallel))}
        self.data_parallel = data_parallel
        self.updates = []  # per step: list over ranks of lists of mini-batch TensorDicts
        self.saved = []

    def compute_log_prob(self, batch):
        data = tq.kv_batch_get(
            keys=batch.keys, partition_id=batch.partition_id, select_fields=["response_mask"]
        )
        mask = data["response_mask"]
        zeros = response_to_nested(torch.zeros(mask.to_padded_tensor(0).shape), mask)
        tq.kv_batch_put(
            keys=batch.keys,
            partition_id=batch.partition_id,
            fields=TensorDict({"log_probs": zeros, "entropy": zeros}, batch_size=len(batch)),
        )
        return batch

    def update_actor(self, batch):
        info = batch.extra_info
        fields = ["uid", "advantages", "rm_scores", "response_mask"]
        data = tq.kv_batch_get(
            keys=batch.keys, partition_id=batch.partition_id, select_fields=fields
        )
        scores = data["rm_scores"].to_padded_tensor(0.0).sum(-1)
        lengths = data["response_mask"].to_padded_tensor(0).sum(-1)
        padding = np.array([tag.get("is_padding", False) for tag in batch.tags])
        rows = len(batch) // self.data_parallel  # verl's dispatch: equal contiguous shares
        ranks = []
        for rank in range(self.data_parallel):
            share = slice(rank * rows, (rank + 1) * rows)
            td = TensorDict(
                {
                    "advantage": data["advantages"].to_padded_tensor(0.0)[share, 0],
                    "score": scores[share],
                    "length": lengths[share],
                    "row": torch.arange(len(batch))[share],
                },
                batch_size=rows,
            )
            batches = tu.make_iterator(
                td,
                mini_batch_size=info["mini_batch_size"] // self.data_parallel,
                epochs=info["epochs"],
                seed=info["seed"] + rank,
                dataloader_kwargs=info["dataloader_kwargs"],
            )
            ranks.append(
                [
                    SimpleNamespace(
                        uids=[str(data["uid"][int(r)]) for r in mb["row"]],
                        advantages=mb["advantage"].numpy(),
                        scores=mb["score"].numpy(),
                        lengths=mb["length"].numpy(),
                        padding=padding[mb["row"].numpy()],
                    )
                    for mb in batches
                ]
            )
        self.updates.append(ranks)
        return {"metrics": {"mfu": 0.0}}

    def save_checkpoint(self, *args, **kwargs):
        self.saved.append(args)

    def load_checkpoint(self, *args, **kwargs):
        return None


def attach_standins(trainer, agent_loop, data_parallel=2):
    """Give a constructed trainer what ``init()`` would have built on a GPU cluster."""
    trainer.actor_rollout_wg = RecordingActor(data_parallel)
    trainer.checkpoint_manager = SimpleNamespace(
        sleep_replicas=lambda: None, update_weights=lambda *a, **k: None
    )
    trainer.reward_loop_manager = SimpleNamespace(reward_loop_worker_handles=[])
    trainer.agent_loop_manager = agent_loop
    trainer._init_resource_pool_mgr()
    trainer._init_dump_executor()
    trainer._load_checkpoint()  # the end of verl's init(): resumes, or starts at step 0
    return trainer.actor_rollout_wg
