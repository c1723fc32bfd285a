"""Entry point of the payload zipapp: ``python3 fleet-<sha>.pyz <command> ...`` or ``--rpc``."""

import sys

from agent_payload.cli import main

sys.exit(main())
