"""A test-only plugin whose heads fail to build, for certain, to test retries of Ray tasks.

- ``flaky-sigmoid1``: the ``sigmoid1`` head, whose build raises when the file
  named by its ``marker`` hyperparameter does not exist, creating it first; so
  it fails its first build only (a task retried once succeeds).
- ``broken-sigmoid1``: the ``sigmoid1`` head, whose every build raises, after
  appending a line to the file named by its ``log`` hyperparameter; so the
  file counts the tries.

The files are named in the spec (a hyperparameter), not in the environment,
so they reach any Ray worker. Enable it with a registry.toml listing
``tests.failing_plugin`` (workers import it from the checkout, their working
folder).
"""

from __future__ import annotations

from pathlib import Path

import zoo_core
from zoo_core.heads import SigmoidHead
from zoo_core.params import HParam


class FlakyHead(SigmoidHead):
    """``sigmoid1`` whose build raises while the ``marker`` file is missing (making it): tests only."""

    name = "flaky-sigmoid1"
    aliases = ()
    description = "sigmoid1 with a test fault: its first build raises (until the marker file exists)"
    hparams = SigmoidHead.hparams + (
        HParam("marker", str, "", "file whose absence makes the build raise (made then; empty: never)",
               allow_empty=True),
    )

    def __init__(self, feature_dim: int, **params):
        super().__init__(feature_dim, **params)
        marker = self.params["marker"]
        if marker and not Path(marker).exists():
            Path(marker).touch()
            raise RuntimeError(f"flaky-sigmoid1 fails its first build ({marker} made)")


class BrokenHead(SigmoidHead):
    """``sigmoid1`` whose every build raises, counting its tries in the ``log`` file: tests only."""

    name = "broken-sigmoid1"
    aliases = ()
    description = "sigmoid1 with a test fault: every build raises"
    hparams = SigmoidHead.hparams + (
        HParam("log", str, "", "file that each build appends a line to (empty: none)", allow_empty=True),
    )

    def __init__(self, feature_dim: int, **params):
        super().__init__(feature_dim, **params)
        if self.params["log"]:
            with open(self.params["log"], "a", encoding="utf-8") as log:
                log.write("built\n")
        raise RuntimeError("broken-sigmoid1 fails every build")


@zoo_core.hookimpl
def zoo_register_heads():
    return [FlakyHead, BrokenHead]
