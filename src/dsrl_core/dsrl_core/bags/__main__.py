"""``python -m dsrl_core.bags``: the ROS-free bag commands (see dsrl_core.bags.cli)."""

import sys

from dsrl_core.bags.cli import main

sys.exit(main())
