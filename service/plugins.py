"""The plugin manager and the registry of OS drivers it yields."""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import pluggy

from serverprep.drivers import Driver, Facts, OsRelease, Plan, PlanOptions, Probe, Unsupported, hookspecs
from serverprep.service.errors import DriverConflict, DriverError, UnsupportedOS

ENTRY_POINT_GROUP = "serverprep.drivers"
#: Comma-separated plugin (entry point) names not to load, e.g. "apt" to replace it.
BLOCK_ENV = "SERVERPREP_DISABLE_PLUGINS"


def make_plugin_manager(*, load_entry_points: bool = True, plugins: Iterable[object] = ()) -> pluggy.PluginManager:
    pm = pluggy.PluginManager("serverprep")
    pm.add_hookspecs(hookspecs)
    for name in filter(None, (n.strip() for n in os.environ.get(BLOCK_ENV, "").split(","))):
        pm.set_blocked(name)
    for plugin in plugins:
        pm.register(plugin)
    if load_entry_points:
        try:
            pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
        except Exception as e:  # a broken third-party package must say which one it is
            raise DriverError(f"cannot load a serverprep driver plugin: {type(e).__name__}: {e}") from e
    pm.check_pending()
    return pm


class DriverRegistry:
    """Installed drivers and fact probes, and the choice of a driver for an OS."""

    def __init__(self, pm: pluggy.PluginManager):
        self.pm = pm
        self.drivers: list[Driver] = []
        self.origin: dict[str, str] = {}
        self.probes: list[Probe] = []
        self._collect_drivers(pm)
        self._collect_probes(pm)

    def _collect_probes(self, pm: pluggy.PluginManager) -> None:
        owner: dict[str, str] = {}
        for impl in pm.hook.serverprep_fact_probes.get_hookimpls():
            plugin_name = pm.get_name(impl.plugin) or repr(impl.plugin)
            try:
                provided = impl.function()
            except Exception as e:
                raise DriverError(f"plugin {plugin_name!r} failed to list its fact probes: {type(e).__name__}: {e}") from e
            for probe in provided or ():
                if not isinstance(probe, Probe):
                    raise DriverError(f"plugin {plugin_name!r} returned {probe!r}, which is not a Probe")
                if probe.name in owner:
                    raise DriverConflict(
                        f"two plugins declare a fact probe named {probe.name!r}: {owner[probe.name]!r} and {plugin_name!r}"
                    )
                owner[probe.name] = plugin_name
                self.probes.append(probe)

    def _collect_drivers(self, pm: pluggy.PluginManager) -> None:
        for impl in pm.hook.serverprep_drivers.get_hookimpls():
            plugin_name = pm.get_name(impl.plugin) or repr(impl.plugin)
            try:
                provided = impl.function()
            except Exception as e:
                raise DriverError(f"plugin {plugin_name!r} failed to list its drivers: {type(e).__name__}: {e}") from e
            for driver in provided or ():
                if not isinstance(driver, Driver):
                    raise DriverError(f"plugin {plugin_name!r} returned {driver!r}, which is not a driver")
                if driver.name in self.origin:
                    raise DriverConflict(
                        f"two plugins provide a driver named {driver.name!r}: "
                        f"{self.origin[driver.name]!r} and {plugin_name!r}"
                    )
                self.origin[driver.name] = plugin_name
                self.drivers.append(driver)

    @classmethod
    def default(cls) -> DriverRegistry:
        return cls(make_plugin_manager())

    def names(self) -> list[str]:
        return sorted(d.name for d in self.drivers)

    def select(self, os_release: OsRelease) -> Driver:
        scored: list[tuple[int, Driver]] = []
        for driver in self.drivers:
            try:
                score = driver.match(os_release)
            except Exception as e:
                raise DriverError(self._blame(driver, "match", e)) from e
            if score:
                scored.append((score, driver))
        if not scored:
            installed = ", ".join(self.names()) or "none"
            raise UnsupportedOS(
                f"{os_release.describe() or os_release.id} (ID={os_release.id}) is not supported by any "
                f"installed driver (installed: {installed})",
                metadata={"os_id": os_release.id, "drivers": installed},
            )
        best = max(s for s, _ in scored)
        winners = [d for s, d in scored if s == best]
        if len(winners) > 1:
            names = ", ".join(f"{d.name} (plugin {self.origin[d.name]!r})" for d in winners)
            raise DriverConflict(
                f"{os_release.describe() or os_release.id} is claimed equally by several drivers: {names}",
                metadata={"os_id": os_release.id},
            )
        return winners[0]

    def plan(self, facts: Facts, options: PlanOptions) -> Plan:
        driver = self.select(facts.os_release)
        try:
            plan = driver.plan(facts, options)
        except Unsupported as e:
            raise UnsupportedOS(str(e), metadata={"os_id": facts.os_release.id, "driver": driver.name}) from e
        except Exception as e:
            raise DriverError(self._blame(driver, "plan", e)) from e
        if not isinstance(plan, Plan):
            raise DriverError(f"driver {driver.name!r} (plugin {self.origin[driver.name]!r}) returned no Plan")
        return plan

    def typical_facts(self, facts: Facts) -> Facts:
        """What a typical install of the facts' OS reports, as its driver knows (for offline plans)."""
        driver = self.select(facts.os_release)
        typical = getattr(driver, "typical_facts", None)
        if typical is None:
            return facts
        try:
            result = typical(facts)
        except Exception as e:
            raise DriverError(self._blame(driver, "typical_facts", e)) from e
        if not isinstance(result, Facts):
            raise DriverError(f"driver {driver.name!r} (plugin {self.origin[driver.name]!r}) returned no Facts from typical_facts")
        return result

    def _blame(self, driver: Driver, what: str, e: Exception) -> str:
        return f"driver {driver.name!r} (plugin {self.origin.get(driver.name, '?')!r}) failed in {what}: {type(e).__name__}: {e}"

    def describe(self) -> Sequence[tuple[str, str, Sequence[str]]]:
        return [(d.name, self.origin[d.name], tuple(d.distros)) for d in self.drivers]
