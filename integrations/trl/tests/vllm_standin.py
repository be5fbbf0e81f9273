"""Stand-ins for vLLM (a GPU inference engine) in TRL's two vLLM modes.

What is real: TRL's ``VLLMGeneration.generate`` and ``sync_weights`` (both
modes) and ``VLLMClient.generate`` (server mode: it builds the HTTP request,
parses the completions and their logprobs). What stands in:

* colocate mode: ``StandInLLM`` replaces ``vllm.LLM``; it answers ``generate``
  with ``RequestOutput``-shaped objects and takes weights through the
  ``llm_engine...model.load_weights`` chain TRL calls;
* server mode: ``CompletionsServer`` is an HTTP server answering the routes of
  vLLM's OpenAI-compatible server that ``VLLMClient`` uses (``/health``,
  ``/v1/models``, ``/v1/completions``, ``/server_info``,
  ``/reset_prefix_cache``); ``StandInClient`` is the real ``VLLMClient`` with
  its constructor and its NCCL weight broadcast replaced (both need vLLM and a
  GPU), the broadcast by a direct copy into the server's weights.

Both sample from ``PolicyCopy``, a copy of the policy kept in sync by TRL's
``sync_weights``, so the logprobs they return are the policy's own: TRL's
importance-sampling ratio is then 1 up to rounding, which a test checks.
"""

from __future__ import annotations

import copy
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import requests
import torch
from trl.generation.vllm_client import VLLMClient


class PolicyCopy:
    """A copy of the policy that samples completions and their logprobs, as vLLM does."""

    def __init__(self, model, eos_token_id, pad_token_id):
        self.model = copy.deepcopy(model).eval()
        self.eos_token_id = eos_token_id
        self.pad_token_id = pad_token_id
        self.lock = threading.Lock()
        self.calls = []  # (prompt token ids, n) of every prompt asked for
        self.cache_resets = 0  # TRL resets the prefix cache once after each weight sync

    def load_weights(self, named_tensors):
        params = dict(self.model.named_parameters())
        with torch.no_grad(), self.lock:
            for name, tensor in named_tensors:
                params[name].copy_(tensor)

    def sample(self, prompt_ids, n, max_tokens, temperature):
        """Return ``n`` pairs (completion token ids, logprob of each sampled token)."""
        with torch.no_grad(), self.lock:
            self.calls.append((list(prompt_ids), n))
            inputs = torch.tensor([list(prompt_ids)] * n)
            out = self.model.generate(
                inputs,
                attention_mask=torch.ones_like(inputs),
                do_sample=True,
                temperature=temperature,
                top_k=0,
                top_p=1.0,
                max_new_tokens=max_tokens,
                output_scores=True,
                return_dict_in_generate=True,
                eos_token_id=self.eos_token_id,
                pad_token_id=self.pad_token_id,
            )
            logprobs = self.model.compute_transition_scores(
                out.sequences, out.scores, normalize_logits=True
            )
        completions = []
        for tokens, scores in zip(out.sequences[:, inputs.shape[1] :], logprobs, strict=True):
            ids = tokens.tolist()
            end = ids.index(self.eos_token_id) + 1 if self.eos_token_id in ids else len(ids)
            completions.append((ids[:end], scores[:end].tolist()))
        return completions


class SamplingParams:
    """``vllm.SamplingParams``: keeps its arguments."""

    def __init__(self, **kwargs):
        self.__dict__.update(kwargs)


class StandInLLM:
    """``vllm.LLM`` in colocate mode, sampling from a ``PolicyCopy``."""

    def __init__(self, policy):
        self.policy = policy
        model = SimpleNamespace(load_weights=policy.load_weights)
        worker = SimpleNamespace(model_runner=SimpleNamespace(model=model))
        self.llm_engine = SimpleNamespace(model_executor=SimpleNamespace(driver_worker=worker))

    def generate(self, prompts, sampling_params, use_tqdm=False):
        outputs = []
        for prompt in prompts:
            ids = prompt["prompt_token_ids"]
            samples = self.policy.sample(
                ids, sampling_params.n, sampling_params.max_tokens, sampling_params.temperature
            )
            outputs.append(
                SimpleNamespace(
                    prompt_token_ids=ids,
                    outputs=[
                        SimpleNamespace(
                            token_ids=tokens,
                            logprobs=[
                                {t: SimpleNamespace(logprob=lp, rank=1)}
                                for t, lp in zip(tokens, lps, strict=True)
                            ],
                        )
                        for tokens, lps in samples
                    ],
                )
            )
        return outputs

    def reset_prefix_cache(self):
        self.policy.cache_resets += 1


class CompletionsServer:
    """The routes of vLLM's OpenAI-compatible server that TRL's ``VLLMClient`` calls."""

    def __init__(self):
        self.policy = None  # set once the trainer's model exists
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                return None

            def _reply(self, payload):
                body = json.dumps(payload).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self):
                if self.path.startswith("/health"):
                    self._reply({})
                elif self.path.startswith("/v1/models"):
                    self._reply({"data": [{"id": "policy"}]})
                elif self.path.startswith("/server_info"):
                    config = {"model_config": {"logprobs_mode": "processed_logprobs"}}
                    self._reply({"vllm_config": config})
                else:
                    self.send_error(404)

            def do_POST(self):
                length = int(self.headers.get("Content-Length", 0))
                request = json.loads(self.rfile.read(length) or b"{}")
                if self.path == "/v1/completions":
                    self._reply({"choices": server.complete(request)})
                elif self.path == "/reset_prefix_cache":
                    server.policy.cache_resets += 1
                    self._reply({})
                else:
                    self.send_error(404)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def complete(self, request):
        """Answer ``/v1/completions`` prompt-major: the ``n`` choices of a prompt are adjacent."""
        choices = []
        for prompt in request["prompt"]:
            samples = self.policy.sample(
                prompt, request["n"], request["max_tokens"], request["temperature"]
            )
            for tokens, logprobs in samples:
                names = [f"token_id:{t}" for t in tokens]
                choices.append(
                    {
                        "prompt_token_ids": prompt,
                        "token_ids": tokens,
                        "logprobs": {
                            "tokens": names,
                            "token_logprobs": logprobs,
                            "top_logprobs": [None] * len(tokens),
                        },
                    }
                )
        return choices

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


class StandInClient(VLLMClient):
    """TRL's ``VLLMClient`` without its vLLM-only parts (constructor and NCCL weight broadcast)."""

    def __init__(self, server):
        self.server = server
        self.session = requests.Session()
        self.base_url = server.url
        self.communicator = None
        self.check_server()
        self.model = self._get(f"{self.base_url}/v1/models")["data"][0]["id"]

    def update_named_params(self, metadata, named_params):
        # The real client broadcasts the tensors over NCCL to the server's GPUs.
        self.server.policy.load_weights(named_params)
