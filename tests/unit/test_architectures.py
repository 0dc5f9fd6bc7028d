"""Docker's architecture matrix and the names servers give architectures: table in, names and refusals out."""

import doctest

import pytest

from serverprep.drivers import architectures
from serverprep.drivers.architectures import (
    PUBLISHED,
    dpkg_architecture,
    is_known_architecture,
    published_architectures,
    rpm_architecture,
    unpublished_reason,
)

# uname -m, rpm and dpkg spellings, as servers print them, and dpkg's name for each.
NAMES = {
    # uname -m
    "x86_64": "amd64", "aarch64": "arm64", "armv8l": "armhf", "armv7l": "armhf", "armv6l": "armhf",
    "armv5tel": "armel", "i386": "i386", "i486": "i386", "i586": "i386", "i686": "i386",
    "ppc64le": "ppc64el", "ppc64": "ppc64", "s390x": "s390x", "riscv64": "riscv64", "loongarch64": "loong64",
    # rpm
    "armv7hl": "armhf", "armv6hl": "armhf",
    # dpkg
    "amd64": "amd64", "arm64": "arm64", "armhf": "armhf", "armel": "armel", "ppc64el": "ppc64el", "loong64": "loong64",
}


@pytest.mark.parametrize("name, dpkg", sorted(NAMES.items()))
def test_kernel_rpm_and_dpkg_names_map_to_dpkg(name, dpkg):
    assert dpkg_architecture(name) == dpkg
    assert dpkg_architecture(f" {name.upper()}\n") == dpkg
    assert is_known_architecture(name)


def test_an_unknown_name_is_kept_so_that_a_refusal_can_name_it():
    assert dpkg_architecture("MIPS") == "mips" and not is_known_architecture("mips")
    assert "not for mips" in unpublished_reason("debian", "stable", dpkg_architecture("mips"))


def test_rpm_names_of_what_rpm_repositories_publish():
    assert [rpm_architecture(a) for a in ("amd64", "arm64", "ppc64el", "s390x")] == ["x86_64", "aarch64", "ppc64le", "s390x"]


# Docker's docs table (content/manuals/engine/install/_index.md), in its own column names;
# RHEL's s390x is the one deliberate difference (get.docker.com refuses it since v27.5).
DOCS_TABLE = {
    "centos": ("x86_64", "aarch64", "ppc64le"),
    "debian": ("x86_64", "aarch64", "armv7l", "ppc64le"),
    "fedora": ("x86_64", "aarch64", "ppc64le"),
    "raspbian": ("armv6l",),
    "rhel": ("x86_64", "aarch64"),
    "ubuntu": ("x86_64", "aarch64", "armv7l", "ppc64le", "s390x"),
}


@pytest.mark.parametrize("channel", ["stable", "test"])
def test_the_table_is_dockers_published_matrix_in_both_channels(channel):
    for repository, columns in DOCS_TABLE.items():
        assert set(published_architectures(repository, channel)) == {dpkg_architecture(c) for c in columns}, repository
    assert {r for r, _ in PUBLISHED} == set(DOCS_TABLE)


def test_every_published_name_is_a_dpkg_name():
    for arches in PUBLISHED.values():
        assert all(dpkg_architecture(a) == a and is_known_architecture(a) for a in arches)


@pytest.mark.parametrize("repository, arch, published", [
    ("debian", "i386", "amd64, arm64, armhf, ppc64el"),
    ("debian", "s390x", "amd64, arm64, armhf, ppc64el"),
    ("debian", "riscv64", "amd64, arm64, armhf, ppc64el"),
    ("raspbian", "arm64", "armhf"),
    ("fedora", "armhf", "x86_64, aarch64, ppc64le"),
    ("centos", "s390x", "x86_64, aarch64, ppc64le"),
    ("rhel", "s390x", "x86_64, aarch64"),
    ("rhel", "ppc64el", "x86_64, aarch64"),
])
def test_a_refusal_names_what_docker_does_publish_in_the_repositorys_own_names(repository, arch, published):
    reason = unpublished_reason(repository, "stable", arch)
    assert f"linux/{repository} (stable channel) for {published} only" in reason
    shown = rpm_architecture(arch) if repository in ("fedora", "centos", "rhel") else arch
    assert f"not for {shown};" in reason and "docker_source=distro" in reason


@pytest.mark.parametrize("repository, arch", [(r, a) for (r, c), arches in PUBLISHED.items() if c == "stable" for a in arches])
def test_what_is_published_is_not_refused(repository, arch):
    assert unpublished_reason(repository, "stable", arch) is None
    assert unpublished_reason(repository, "test", arch) is None


def test_an_unknown_channel_or_repository_is_refused_by_name():
    assert unpublished_reason("debian", "nightly", "amd64") == "Docker's linux/debian repository has no 'nightly' channel (it has stable, test)"
    assert unpublished_reason("sles", "stable", "s390x") == "Docker publishes no linux/sles repository"


def test_docstring_examples():
    assert doctest.testmod(architectures).failed == 0
