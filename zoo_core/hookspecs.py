"""pluggy hook specifications: how plugins add to the zoo.

Built-in components are registered through these same hooks by the modules
that define them (``zoo_core.encoders``, ``zoo_core.cells``,
``zoo_core.aggregators``, ``zoo_core.heads``, each with its ``@hookimpl`` at
its bottom) and by ``zoo_plugins.models`` and ``zoo_plugins.ngrams``, all
listed in ``registry.toml``; a third-party distribution registers its module
under the ``rnn_zoo`` entry-point group::

    [project.entry-points.rnn_zoo]
    my_plugin = "my_package.zoo_plugin"

and implements any of the hooks below with ``@zoo_core.hookimpl``.

Plugins are checked against these specifications when they load: a
``@hookimpl`` whose name is not a hook below (unless marked
``optionalhook=True``), or a ``zoo_register_*`` function without
``@hookimpl``, makes the plugin fail with that reason in ``zoo plugins``
(see :mod:`zoo_core.plugin_checks`).
"""

from __future__ import annotations

import pluggy

PROJECT = "rnn_zoo"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def zoo_register_encoders():
    """Returns a list of :class:`zoo_core.encoders.Encoder` subclasses."""


@hookspec
def zoo_register_cells():
    """Returns a list of :class:`zoo_core.cells.Cell` subclasses."""


@hookspec
def zoo_register_aggregators():
    """Returns a list of :class:`zoo_core.aggregators.Aggregator` subclasses."""


@hookspec
def zoo_register_heads():
    """Returns a list of :class:`zoo_core.heads.Head` subclasses."""


@hookspec
def zoo_register_models():
    """Returns named models: :class:`zoo_core.config.ModelSpec` objects, or
    mappings with ``name``, ``encoder``, ``cell``, ``aggregator``, ``head`` and
    optional ``params`` and ``description``."""


@hookspec
def zoo_register_commands(cli):
    """Adds click commands to the ``zoo`` group ``cli``."""
