"""Analysis of evaluation records: pure functions, no I/O.

One concept per module:

* :mod:`~samplescale.analysis.pools`: per-problem arrays (pass@k, maj@k, correctness)
  from ``results.jsonl`` records;
* :mod:`~samplescale.analysis.intervals`: Wilson, Clopper-Pearson and bootstrap intervals;
* :mod:`~samplescale.analysis.small_sample`: Beta-posterior / Jeffreys intervals and the
  problem-clustered interval for pass@k / maj@k (Bowyer et al. 2025);
* :mod:`~samplescale.analysis.scaling`: coverage(k) = exp(a k^b) and log-linear fits with
  bootstrap-over-problems intervals and extrapolation (Brown et al. 2024);
* :mod:`~samplescale.analysis.saturation`: the TTSPM saturation budget (Wang et al. 2025);
* :mod:`~samplescale.analysis.paired`: paired comparison of two runs on shared problems;
* :mod:`~samplescale.analysis.verifier`: verifier TPR / FPR, the best-of-N ceiling and the
  utility-optimal N (Stroebl et al. 2024);
* :mod:`~samplescale.analysis.compute`: tokens, calls, time, FLOPs and dollars;
* :mod:`~samplescale.analysis.judge`: posterior ranks from LLM-judge scores, with the
  identifiability warning for three or more levels.
"""
