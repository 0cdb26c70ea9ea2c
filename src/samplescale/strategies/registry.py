"""The strategy registry (kebab-case names, snake_case accepted)."""

from __future__ import annotations

from typing import Any

from samplescale.registry import Registry

STRATEGIES: Registry[Any] = Registry("strategy")
