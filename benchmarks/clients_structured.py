"""Structured outputs from real clients against ``samplescale serve`` (a benchmark venv,
never project dependencies): the official openai client's ``response_format`` (a JSON
schema from a pydantic model, ``client.chat.completions.parse``) and langchain-openai's
``with_structured_output``.

    python3 -m venv /tmp/constrained_lc && /tmp/constrained_lc/bin/pip install langchain-openai
    .venv/bin/samplescale serve --port 8767 &
    /tmp/constrained_lc/bin/python benchmarks/clients_structured.py http://127.0.0.1:8767/v1
"""

from __future__ import annotations

import sys

import openai
from langchain_openai import ChatOpenAI
from pydantic import BaseModel, Field


class City(BaseModel):
    city: str = Field(max_length=24)
    population: int = Field(ge=0)


def main(url: str) -> None:
    client = openai.OpenAI(base_url=url, api_key="unused", max_retries=0)
    parsed = client.chat.completions.parse(
        model="smollm2", messages=[{"role": "user", "content": "Name a big city and its population."}],
        response_format=City, max_tokens=60, seed=1,
    )
    print("openai parse:", parsed.choices[0].message.parsed)
    llm = ChatOpenAI(base_url=url, api_key="unused", model="smollm2", max_tokens=60, seed=1)
    for method in ("json_schema", "json_mode"):
        # json_mode sends {"type": "json_object"}: a JSON object is guaranteed, its keys
        # are not (as on OpenAI), so the client's own validation may refuse it
        try:
            out = llm.with_structured_output(City, method=method).invoke(
                "Name a big city and its population, as JSON with keys city and population.")
        except Exception as exc:  # report what the client says, go on
            out = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
        print(f"langchain with_structured_output({method}):", out)


if __name__ == "__main__":
    main(sys.argv[1])
