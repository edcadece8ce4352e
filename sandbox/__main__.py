"""Entry point for `python -m sandbox`."""

from sandbox.server import main

raise SystemExit(main())
