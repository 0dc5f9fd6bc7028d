"""Hook specifications of serverprep: the whole contract between serverprep and its plugins."""

from __future__ import annotations

from collections.abc import Sequence

import pluggy

from serverprep.drivers.types import Driver, Probe

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


@hookspec
def serverprep_fact_probes() -> Sequence[Probe]:
    """Return read-only commands whose results this plugin's drivers decide on.

    Called once when serverprep builds its plugin manager; every plugin's probes are
    collected, and each name must be unique among installed plugins. Every probe runs on
    every server in the one facts round trip (before a driver is chosen), as the login
    user, so a probe must change nothing, be quick and tolerate an OS it does not know
    (its exit status is reported, not judged). Results reach drivers as
    ``facts.probes[name]`` (:class:`~serverprep.drivers.ProbeResult`); probes of plugins
    that are not installed are simply absent.

    :return: the plugin's :class:`~serverprep.drivers.Probe` objects.

    Example::

        @hookimpl
        def serverprep_fact_probes():
            return [Probe("zypper_version", Command(("zypper", "--version")))]
    """
