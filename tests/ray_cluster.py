"""The local Ray instance the Ray tests share within a module: real Ray, no mocks.

Imported by tests/test_ray_executor.py and tests/test_tune_ray.py as their
``cluster`` fixture. Two CPUs, no dashboard; both test plugins
(:mod:`tests.failing_plugin`, :mod:`tests.trap_plugin`) are in the registry
the commands get with ``--registry``, and the workers see ``$ZOO_TRAP_DIR``.
"""

from __future__ import annotations

import logging

import pytest

#: The zoo's own components and both test plugins.
REGISTRY = ('[plugins]\nmodules = ["zoo_core.encoders", "zoo_core.cells", "zoo_core.aggregators", "zoo_core.heads", '
            '"zoo_plugins.models", "tests.trap_plugin", "tests.failing_plugin"]\n')
#: How long a test waits for a trapped run or a child process before it fails (seconds).
TIMEOUT_S = 300


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A local Ray instance with 2 CPUs for the module: ``address``, the ``trap`` folder and the ``registry`` file."""
    ray = pytest.importorskip("ray")
    home = tmp_path_factory.mktemp("ray")
    (home / "trap").mkdir()
    registry = home / "registry.toml"
    registry.write_text(REGISTRY, encoding="utf-8")
    with pytest.MonkeyPatch.context() as env:  # workers inherit the environment Ray starts with
        env.setenv("ZOO_TRAP_DIR", str(home / "trap"))
        env.setenv("XDG_CACHE_HOME", str(home / "cache"))
        env.setenv("XDG_DATA_HOME", str(home / "share"))
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
                 logging_level=logging.ERROR)
    try:
        yield {"address": ray.get_runtime_context().gcs_address, "trap": home / "trap", "registry": registry}
    finally:
        ray.shutdown()
