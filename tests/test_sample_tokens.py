"""Sample's per-token fields: token ids, or token strings (servers that report no ids)."""

from __future__ import annotations

import math

import pytest
from pydantic import ValidationError

from samplescale.types import Sample


@pytest.mark.parametrize(
    "fields,num_tokens,mean",
    [
        ({}, 0, -math.inf),
        ({"token_ids": (5, 6, 7)}, 3, -math.inf),
        ({"token_ids": (5, 6), "logprobs": (-1.0, -2.0)}, 2, -1.5),
        ({"token_texts": ("a", "b"), "logprobs": (-1.0, -2.0)}, 2, -1.5),
        ({"logprobs": (-0.5, -0.25, -0.75)}, 3, -0.5),  # a server's logprobs, nothing else
        ({"sampling_logprobs": (-0.5,)}, 1, -math.inf),  # no raw scores: nothing to average
        ({"token_ids": (1, 2), "token_texts": ("x", "y")}, 2, -math.inf),
    ],
)
def test_num_tokens_and_mean_logprob(fields, num_tokens, mean):
    s = Sample(text="t", **fields)
    assert s.num_tokens == num_tokens
    assert s.mean_logprob == mean


@pytest.mark.parametrize(
    "fields,message",
    [
        ({"token_ids": (1,), "logprobs": (-1.0, -1.0)}, "logprobs has 2 values for 1 tokens"),
        ({"token_ids": (1, 2), "token_texts": ("a",)}, "token_texts has 1 values for 2 tokens"),
        ({"token_texts": ("a",), "logprobs": (-1.0, -2.0)}, "logprobs has 2 values for 1 tokens"),
        ({"logprobs": (-1.0,), "sampling_logprobs": (-1.0, -2.0)},
         "sampling_logprobs has 2 values for 1 tokens"),
        ({"token_texts": ("a",), "logprobs": (0.5,)}, "natural-log probabilities <= 0"),
        ({"logprobs": (math.nan,)}, "(no NaN)"),
    ],
)
def test_inconsistent_per_token_fields_are_refused(fields, message):
    with pytest.raises(ValidationError, match=message.replace("(", r"\(").replace(")", r"\)")):
        Sample(text="t", **fields)
