"""``python -m ramanid``: the same as the ``ramanid`` console script."""

from ramanid.cli import main

raise SystemExit(main())
