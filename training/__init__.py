"""What runs on the GPU machine: the agent, the sft recipe and checkpoints.

Importing this package must stay cheap (no torch at import time): the control plane imports
`training.report` helpers and the bundle builder without the `train` extra, and user scripts call
`training.report(step=..., loss=...)`.
"""

from training.report import report

__all__ = ["report"]
