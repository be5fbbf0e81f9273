"""A Ray actor that answers like OpenRLHF's vLLM engine, without a model."""

import random

import ray


@ray.remote
class SyntheticEngine:
    """``generate_responses`` returns synthetic tokens and a 0/1 reward.

    The reward of a sample of prompt ``"q<k>"`` is 1 with probability
    ``success[k]``; every call is recorded so tests can check the dispatch.
    """

    def __init__(self, success, seed):
        self.success = success
        self.rng = random.Random(seed)
        self.calls = []

    def get_num_unfinished_requests(self):
        return 0

    def calls_made(self):
        return self.calls

    async def generate_responses(
        self, prompt, label, sampling_params, max_length, hf_tokenizer, num_samples=1, images=None
    ):
        self.calls.append((prompt, num_samples, sampling_params.kwargs))
        p = self.success[int(prompt[1:])]
        out = []
        for _ in range(num_samples):
            reward = float(self.rng.random() < p)
            response = [7] * self.rng.randint(1, 6)
            out.append(
                {
                    "prompt": prompt,
                    "label": label,
                    "reward": reward,
                    "scores": reward,
                    "observation_tokens": [1, 2, 3, *response],
                    "action_ranges": [(3, 3 + len(response))],
                    "rollout_log_probs": None,
                    "truncated": False,
                    "extra_logs": {},
                }
            )
        return out
