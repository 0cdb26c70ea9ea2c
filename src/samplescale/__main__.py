"""``python -m samplescale``: the same command line as the ``samplescale`` script."""

from samplescale.cli import main

raise SystemExit(main())
