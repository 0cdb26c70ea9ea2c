"""Constrained generation: grammar and JSON-schema token masks (llguidance).

- :mod:`~samplescale.constraints.library`: the optional ``llguidance`` import.
- :mod:`~samplescale.constraints.vocabulary`: a model's token bytes as llguidance's
  tokenizer (built once per model).
- :mod:`~samplescale.constraints.compiler`: a :class:`~samplescale.config.Constraint` compiled
  for a vocabulary, with clear errors and resource limits for hostile input.
- :mod:`~samplescale.constraints.mask`: bitmasks as boolean ``(batch, vocab)`` rows.
- :mod:`~samplescale.constraints.matcher`: the per-sequence matcher state of a decode loop
  (by row) and of SMC (by prefix).

The library was chosen by measurement (``benchmarks/bench_grammar_libs.py``, RESULTS.md
section (m)).
"""
