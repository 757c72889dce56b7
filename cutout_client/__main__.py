"""`python -m cutout_client`, the same as the `cutout` console script."""

from cutout_client.cli import main

raise SystemExit(main())
