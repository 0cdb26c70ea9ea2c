"""samplescale: sampling-based inference with language models, measured honestly.

The most used names are importable from the top level; everything else lives in its
module (``samplescale.strategies``, ``samplescale.metrics``, ``samplescale.sampling``, ...).
"""

from samplescale.backends.fake import ScriptedBackend, ToyLM
from samplescale.backends.llamacpp import LlamaCppBackend
from samplescale.config import SamplingParams
from samplescale.types import Message, Prompt, Result, Sample, Usage

__version__ = "0.1.0"

__all__ = [
    "LlamaCppBackend",
    "Message",
    "Prompt",
    "Result",
    "Sample",
    "SamplingParams",
    "ScriptedBackend",
    "ToyLM",
    "Usage",
    "__version__",
]
