"""Stand-in for ``flash_attn.bert_padding``; ring attention is not used on CPU."""


def _cuda_only(*args, **kwargs):
    raise RuntimeError("flash_attn is a CUDA library; this stand-in only satisfies imports.")


index_first_axis = pad_input = rearrange = unpad_input = _cuda_only
