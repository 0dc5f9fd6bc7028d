"""Facts for plans made without a server (``serverprep plan``): what an offline plan starts from."""

from __future__ import annotations

from collections.abc import Iterable

from serverprep.drivers.osrelease import OsRelease
from serverprep.drivers.types import Facts

#: Programs assumed on any server an offline plan is for; drivers add their package tools.
BASE_PROGRAMS = frozenset({"systemctl", "sudo", "curl"})


def skeleton_facts(os_release_text: str, machine: str, user: str = "root", programs: Iterable[str] = ()) -> Facts:
    """The facts of a server known only by its os-release, architecture and login user.

    ``machine`` is what ``uname -m`` would say (x86_64, aarch64) or a package architecture
    (amd64, arm64): drivers map either the way a real server's facts are mapped. Drivers
    complete these with ``typical_facts``.
    """
    return Facts(
        os_release=OsRelease.from_text(os_release_text),
        machine=machine,
        user=user,
        uid=0 if user == "root" else 1000,
        commands=BASE_PROGRAMS | frozenset(programs),
    )
