"""Stand-in for vLLM: only the names OpenRLHF imports (see ../README.md)."""

__version__ = "0.0.0+standin"


class SamplingParams:
    """Records the sampling arguments OpenRLHF passes."""

    def __init__(self, **kwargs):
        self.kwargs = kwargs
