"""its-hub self-consistency, run inside its own venv (benchmarks/peers/its-hub/.venv).

Reads one JSON job per stdin line ({"id", "system", "user", "budget", "temperature",
"max_tokens", "endpoint", "model"}) and writes one JSON result per line ({"id", "text",
"wall_s", "prompt_tokens", "completion_tokens", "calls"}), so start-up is not timed.

Two settings make the comparison fair, both stated in benchmarks/RESULTS.md:
- its-hub sends ``max_completion_tokens``, which llama-cpp-python's server ignores (it
  would then generate up to the context end); the subclass also sends ``max_tokens``.
- its-hub's default projection votes on the whole response text; the runner votes on
  the last number in the response, as a user of its regex projection would.
"""

import json
import re
import sys
import time

from its_hub.core.algorithms.self_consistency import SelfConsistency
from its_hub.core.lms.openai_lm import OpenAICompatibleLanguageModel


class LM(OpenAICompatibleLanguageModel):
    def _prepare_request_data(self, *args, **kwargs):
        data = super()._prepare_request_data(*args, **kwargs)
        if "max_completion_tokens" in data:
            data["max_tokens"] = data["max_completion_tokens"]
        return data


def last_number(text: str) -> str:
    found = re.findall(r"-?\d[\d,]*(?:\.\d+)?", text)
    return found[-1].replace(",", "") if found else text.strip()


def main() -> None:
    sc = SelfConsistency(consistency_space_projection_func=last_number)
    for line in sys.stdin:
        job = json.loads(line)
        lm = LM(
            endpoint=job["endpoint"], api_key="none", model_name=job["model"],
            system_prompt=job["system"], temperature=job["temperature"],
            max_completion_tokens=job["max_tokens"],
        )
        start = time.perf_counter()
        result = sc.infer(lm, job["user"], budget=job["budget"], return_response_only=False)
        wall = time.perf_counter() - start
        u = result.usage
        print(json.dumps({
            "id": job["id"], "text": result.the_one.get("content") or "", "wall_s": wall,
            "prompt_tokens": u.prompt_tokens, "completion_tokens": u.completion_tokens,
            "calls": u.num_calls,
        }), flush=True)


if __name__ == "__main__":
    main()
