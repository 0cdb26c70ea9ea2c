"""samplescale as an OpenAI-compatible server (install the ``server`` extra).

``create_app(backend, model_id)`` builds the FastAPI application; ``samplescale serve``
runs it with uvicorn. See :mod:`samplescale.server.app` for the behaviour and
:mod:`samplescale.server.routing` for the model-name grammar (``self-consistency@8/<model>``).
"""

from samplescale.server.app import create_app
from samplescale.server.routing import Limits

__all__ = ["Limits", "create_app"]
