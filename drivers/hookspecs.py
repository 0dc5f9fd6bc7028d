"""Hook specifications of serverprep: the whole contract between serverprep and its drivers."""

from __future__ import annotations

from collections.abc import Sequence

import pluggy

from serverprep.drivers.types import Driver

hookspec = pluggy.HookspecMarker("serverprep")


@hookspec
def serverprep_drivers() -> Sequence[Driver]:
    """Return the OS drivers this plugin provides.

    Called once when serverprep builds its plugin manager; every plugin's drivers
    are collected. Each driver's ``name`` must be unique among installed drivers.

    :return: the plugin's :class:`~serverprep.drivers.Driver` objects.

    Example::

        @hookimpl
        def serverprep_drivers():
            return [ZypperDriver()]
    """
