"""Stand-in for ``vllm.utils``."""

import uuid


def random_uuid():
    return uuid.uuid4().hex
