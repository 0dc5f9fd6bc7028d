"""Where Docker publishes packages, by repository, channel and architecture, and the names servers give architectures."""

from __future__ import annotations

# Docker's published matrix, one row per repository on download.docker.com and channel, in
# Docker's (= dpkg's) architecture names. Checked against:
# - docker/docs content/manuals/engine/install/_index.md, "Installation procedures for supported
#   platforms": CentOS x86_64, aarch64, ppc64le; Debian x86_64, aarch64, arm (32-bit), ppc64le;
#   Fedora x86_64, aarch64, ppc64le; Raspberry Pi OS (32-bit) arm only; RHEL x86_64, aarch64, s390x;
#   Ubuntu x86_64, aarch64, arm (32-bit), ppc64le, s390x.
# - the same docs' install pages: debian.md "x86_64 (or amd64), armhf (arm/v7), arm64, and ppc64le
#   (ppc64el)"; ubuntu.md "x86_64 (or amd64), armhf, arm64, s390x, and ppc64le (ppc64el)";
#   raspberry-pi-os.md "the 32-bit (armhf) version ... 64-bit (arm64): follow the instructions for Debian".
# - docker/docker-install install.sh: since commit 4cccc20 (2025-01-13, "drop SLES & RHEL support")
#   get.docker.com stops on s390x for centos, fedora and rhel with "Effective v27.5, please consult RHEL
#   distro statement for s390x support". The docs table still ticks RHEL s390x; we follow the installer,
#   because the repository gets no new s390x packages, so a plan there would install a frozen 27.4.
# - Neither source names an architecture for one channel and not the other: stable and test carry
#   the same ones. i386, armel, riscv64, loong64 and big-endian ppc64 are published nowhere.
# A wrong architecture does not 404: apt says "doesn't support architecture" as a notice and then
# "Unable to locate package docker-ce"; dnf finds nothing to install. Hence the refusal at plan time.
PUBLISHED: dict[tuple[str, str], tuple[str, ...]] = {
    ("debian", "stable"): ("amd64", "arm64", "armhf", "ppc64el"),
    ("debian", "test"): ("amd64", "arm64", "armhf", "ppc64el"),
    ("ubuntu", "stable"): ("amd64", "arm64", "armhf", "ppc64el", "s390x"),
    ("ubuntu", "test"): ("amd64", "arm64", "armhf", "ppc64el", "s390x"),
    ("raspbian", "stable"): ("armhf",),
    ("raspbian", "test"): ("armhf",),
    ("fedora", "stable"): ("amd64", "arm64", "ppc64el"),
    ("fedora", "test"): ("amd64", "arm64", "ppc64el"),
    ("centos", "stable"): ("amd64", "arm64", "ppc64el"),
    ("centos", "test"): ("amd64", "arm64", "ppc64el"),
    ("rhel", "stable"): ("amd64", "arm64"),
    ("rhel", "test"): ("amd64", "arm64"),
}

#: Repositories whose directories use rpm's architecture names (x86_64, aarch64, ppc64le).
RPM_REPOSITORIES = frozenset({"fedora", "centos", "rhel"})

# Kernel (uname -m), rpm and dpkg spellings of one architecture, to dpkg's name. 32-bit ARM:
# Debian's armhf needs ARMv7; Raspbian's armhf (and Docker's raspbian repository) runs on ARMv6,
# and a 32-bit userland on a 64-bit CPU reports armv8l.
_TO_DPKG = {
    "x86_64": "amd64", "amd64": "amd64",
    "aarch64": "arm64", "arm64": "arm64",
    "armv8l": "armhf", "armv7l": "armhf", "armv7hl": "armhf", "armhf": "armhf",
    "armv6l": "armhf", "armv6hl": "armhf",
    "armv5tel": "armel", "armv5tejl": "armel", "armel": "armel",
    "i386": "i386", "i486": "i386", "i586": "i386", "i686": "i386",
    "ppc64le": "ppc64el", "ppc64el": "ppc64el",
    "ppc64": "ppc64",
    "s390x": "s390x",
    "riscv64": "riscv64",
    "loongarch64": "loong64", "loong64": "loong64",
}

_TO_RPM = {"amd64": "x86_64", "arm64": "aarch64", "armhf": "armv7hl", "i386": "i686", "ppc64el": "ppc64le"}


def dpkg_architecture(name: str) -> str:
    """dpkg's (and Docker's apt) name for an architecture given by uname -m, rpm or dpkg.

    A name this table does not know is returned as given (lower case), so that a plan for it
    can be refused naming it rather than guessed at.

    >>> dpkg_architecture("aarch64"), dpkg_architecture("armv7l"), dpkg_architecture("i686")
    ('arm64', 'armhf', 'i386')
    """
    key = name.strip().lower()
    return _TO_DPKG.get(key, key)


def is_known_architecture(name: str) -> bool:
    """True when ``name`` is a uname -m, rpm or dpkg spelling this module maps."""
    return name.strip().lower() in _TO_DPKG


def rpm_architecture(arch: str) -> str:
    """rpm's name for a dpkg architecture name (x86_64 for amd64); others are the same in both."""
    return _TO_RPM.get(arch, arch)


def published_architectures(repository: str, channel: str) -> tuple[str, ...]:
    """Architectures Docker publishes in ``repository`` (debian, ubuntu, ...) and ``channel``; empty when none."""
    return PUBLISHED.get((repository, channel), ())


def unpublished_reason(repository: str, channel: str, arch: str) -> str | None:
    """Why Docker's ``repository``/``channel`` cannot serve ``arch`` (a dpkg name), or None when it can.

    >>> unpublished_reason("debian", "stable", "amd64") is None
    True
    >>> print(unpublished_reason("rhel", "stable", "s390x"))
    Docker publishes linux/rhel (stable channel) for x86_64, aarch64 only, not for s390x; docker_source=distro uses the distribution's own packages, if it has them
    """
    published = published_architectures(repository, channel)
    if not published:
        channels = sorted(c for r, c in PUBLISHED if r == repository)
        if channels:
            return f"Docker's linux/{repository} repository has no {channel!r} channel (it has {', '.join(channels)})"
        return f"Docker publishes no linux/{repository} repository"
    if arch in published:
        return None
    show = rpm_architecture if repository in RPM_REPOSITORIES else str
    return (
        f"Docker publishes linux/{repository} ({channel} channel) for {', '.join(show(a) for a in published)} only, "
        f"not for {show(arch) or 'an unknown architecture'}; docker_source=distro uses the distribution's own packages, if it has them"
    )


__all__ = [
    "PUBLISHED",
    "dpkg_architecture",
    "is_known_architecture",
    "published_architectures",
    "rpm_architecture",
    "unpublished_reason",
]
