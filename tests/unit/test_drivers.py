"""Driver tables: real os-release contents and facts in, exact repository and commands out."""

import pytest

from harness.osreleases import OS_RELEASES
from serverprep.drivers import PLANNED_STEPS, Command, DockerSource, Facts, OsRelease, PlanOptions, WriteFile
from serverprep.service.errors import DriverConflict, UnsupportedOS
from serverprep.service.plugins import DriverRegistry, make_plugin_manager

APT = ("apt-get", "dpkg", "systemctl", "sudo", "curl")
DNF4 = ("dnf", "rpm", "systemctl", "sudo", "curl")
DNF5 = ("dnf", "dnf5", "rpm", "systemctl", "sudo", "curl")
YUM = ("yum", "rpm", "systemctl", "sudo")
DOCKER_CE = "docker-ce docker-ce-cli containerd.io docker-buildx-plugin docker-compose-plugin"
APT_GET = "env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 -q"


def apt_official(url, suite, arch):
    """What Docker's documentation says to run, made safe to re-run."""
    return [
        "report who holds the dpkg/apt lock, if anyone",
        "remove conflicting packages if installed: docker.io docker-cli docker-doc docker-compose docker-compose-v2 docker-buildx podman-docker containerd runc",
        "rm -f /etc/apt/sources.list.d/docker.list /etc/apt/sources.list.d/download_docker_com_linux_debian.list "
        "/etc/apt/sources.list.d/download_docker_com_linux_ubuntu.list /etc/apt/trusted.gpg.d/docker.gpg /etc/apt/trusted.gpg.d/docker.asc",
        "install -d -m 0755 /etc/apt/keyrings",
        f"curl -fsSL --retry 3 -o /etc/apt/keyrings/docker.asc {url}/gpg",
        "chmod a+r /etc/apt/keyrings/docker.asc",
        ("/etc/apt/sources.list.d/docker.sources",
         f"Types: deb\nURIs: {url}\nSuites: {suite}\nComponents: stable\nArchitectures: {arch}\nSigned-By: /etc/apt/keyrings/docker.asc\n"),
        f"apt-get update (fails if {url} does)",
        f"{APT_GET} install -y {DOCKER_CE}",
    ]


def apt_distro(*packages):
    return ["report who holds the dpkg/apt lock, if anyone", f"{APT_GET} install -y --no-install-recommends {' '.join(packages)}"]


def dnf_official(repo, dnf5):
    repofile = f"https://download.docker.com/linux/{repo}/docker-ce.repo"
    add = (f"dnf -y config-manager addrepo --from-repofile={repofile} --overwrite" if dnf5
           else f"dnf -y config-manager --add-repo {repofile}")
    return [
        "remove conflicting packages if installed: docker docker-client docker-client-latest docker-common docker-latest "
        "docker-latest-logrotate docker-logrotate docker-selinux docker-engine-selinux docker-engine podman-docker podman buildah runc",
        add,
        f"dnf -y install {DOCKER_CE}",
    ]


def fails(text):
    return ("refused", text)


# name: (arch, tools, dnf --version, official: (driver, repo url, suite, commands) or refusal, distro: commands or refusal)
U = "https://download.docker.com/linux/ubuntu"
D = "https://download.docker.com/linux/debian"
MATRIX = {
    "debian-10": ("amd64", APT, "", (D, "buster"), apt_distro("docker.io", "docker-compose")),
    "debian-11": ("amd64", APT, "", (D, "bullseye"), apt_distro("docker.io", "docker-compose")),
    "debian-12": ("amd64", APT, "", (D, "bookworm"), apt_distro("docker.io", "docker-compose")),
    # trixie split the client into docker-cli, which docker.io only recommends.
    "debian-13": ("arm64", APT, "", (D, "trixie"), apt_distro("docker.io", "docker-cli", "docker-compose")),
    "ubuntu-18.04": ("amd64", APT, "", (U, "bionic"), apt_distro("docker.io", "docker-compose")),
    "ubuntu-20.04": ("amd64", APT, "", (U, "focal"), apt_distro("docker.io", "docker-compose")),
    "ubuntu-22.04": ("amd64", APT, "", (U, "jammy"), apt_distro("docker.io", "docker-compose-v2")),
    "ubuntu-24.04": ("arm64", APT, "", (U, "noble"), apt_distro("docker.io", "docker-compose-v2")),
    "ubuntu-24.10": ("amd64", APT, "", (U, "oracular"), apt_distro("docker.io", "docker-compose-v2")),
    "ubuntu-25.04": ("amd64", APT, "", (U, "plucky"), apt_distro("docker.io", "docker-compose-v2")),
    # Derivatives get their Ubuntu base's suite, never their own codename.
    "mint-20.3": ("amd64", APT, "", (U, "focal"), apt_distro("docker.io", "docker-compose")),
    "mint-21.3": ("amd64", APT, "", (U, "jammy"), apt_distro("docker.io", "docker-compose-v2")),
    "mint-22": ("amd64", APT, "", (U, "noble"), apt_distro("docker.io", "docker-compose-v2")),
    "pop-22.04": ("amd64", APT, "", (U, "jammy"), apt_distro("docker.io", "docker-compose-v2")),
    "elementary-7.1": ("amd64", APT, "", (U, "jammy"), apt_distro("docker.io", "docker-compose-v2")),
    "zorin-17": ("amd64", APT, "", (U, "jammy"), apt_distro("docker.io", "docker-compose-v2")),
    # 32-bit Raspberry Pi OS uses Docker's raspbian repository; 64-bit reports ID=debian.
    "raspbian-12": ("armhf", APT, "", ("https://download.docker.com/linux/raspbian", "bookworm"), apt_distro("docker.io", "docker-compose")),
    "kali-rolling": ("amd64", APT, "", fails("'kali-rolling' is not a Debian release"), apt_distro("docker.io", "docker-cli", "docker-compose")),
    "fedora-39": ("amd64", DNF4, "4.18.2", ("fedora", False), ["dnf -y install moby-engine docker-compose"]),
    "fedora-40": ("amd64", DNF4, "4.19.2", ("fedora", False), ["dnf -y install moby-engine docker-compose"]),
    "fedora-41": ("amd64", DNF5, "dnf5 version 5.2.6.2", ("fedora", True), ["dnf -y install moby-engine docker-compose"]),
    "fedora-42": ("arm64", DNF5, "dnf5 version 5.2.13.1", ("fedora", True), ["dnf -y install moby-engine docker-compose"]),
    "rhel-8.10": ("amd64", DNF4, "4.7.0", ("rhel", False), fails("ships no Docker engine")),
    "rhel-9.4": ("amd64", DNF4, "4.14.0", ("rhel", False), fails("ships no Docker engine")),
    "rhel-10.0": ("amd64", DNF4, "4.20.0", ("rhel", False), fails("ships no Docker engine")),
    "centos-stream-9": ("amd64", DNF4, "4.14.0", ("centos", False), fails("ships no Docker engine")),
    "centos-stream-10": ("amd64", DNF4, "4.20.0", ("centos", False), fails("ships no Docker engine")),
    "rocky-8.10": ("amd64", DNF4, "4.7.0", ("centos", False), fails("ships no Docker engine")),
    "rocky-9.4": ("arm64", DNF4, "4.14.0", ("centos", False), fails("ships no Docker engine")),
    "alma-8.10": ("amd64", DNF4, "4.7.0", ("centos", False), fails("ships no Docker engine")),
    "alma-9.4": ("amd64", DNF4, "4.14.0", ("centos", False), fails("ships no Docker engine")),
    "oracle-8.10": ("amd64", DNF4, "4.7.0", ("centos", False), fails("ships no Docker engine")),
    "oracle-9.4": ("amd64", DNF4, "4.14.0", ("centos", False), fails("ships no Docker engine")),
    "amzn-2023": ("amd64", DNF4, "4.14.0", fails("no Amazon Linux packages"),
                  ["dnf -y install docker", "install the docker compose plugin v2.29.7 (checksum verified) to /usr/local/lib/docker/cli-plugins/docker-compose"]),
    "amzn-2": ("amd64", YUM, "", fails("has no dnf"), fails("has no dnf")),
    "centos-7": ("amd64", YUM, "", fails("has no dnf"), fails("has no dnf")),
    "opensuse-leap-15.6": ("amd64", ("zypper", "rpm", "systemctl"), "", fails("not supported by any installed driver"), fails("not supported by any installed driver")),
    "alpine-3.20": ("amd64", ("apk",), "", fails("not supported by any installed driver"), fails("not supported by any installed driver")),
    "arch": ("amd64", ("pacman", "systemctl"), "", fails("not supported by any installed driver"), fails("not supported by any installed driver")),
}


@pytest.fixture(scope="module")
def registry():
    return DriverRegistry(make_plugin_manager(load_entry_points=False, plugins=_builtins()))


def _builtins():
    from serverprep.drivers import apt, dnf

    return [apt, dnf]


def make_facts(name, arch, tools, dnf_version, uid=1000):
    machine = {"amd64": "x86_64", "arm64": "aarch64", "armhf": "armv7l"}[arch]
    return Facts(os_release=OsRelease.from_text(OS_RELEASES[name]), machine=machine,
                 dpkg_architecture=arch if "dpkg" in tools else "", user="admin", uid=uid,
                 commands=frozenset(tools), dnf_version=dnf_version)


def shown(commands):
    """Commands as text: exact shell for plain commands, the summary for snippets, (path, content) for files."""
    out = []
    for c in commands:
        if isinstance(c, WriteFile):
            out.append((c.path, c.content))
        elif isinstance(c, Command):
            out.append(c.render())
        else:
            out.append(c.display())
    return out


def test_the_matrix_covers_at_least_30_releases():
    assert len(MATRIX) >= 30 and set(MATRIX) == set(OS_RELEASES)


@pytest.mark.parametrize("name", sorted(MATRIX))
def test_official_source(registry, name):
    arch, tools, dnf_version, expected, _ = MATRIX[name]
    facts = make_facts(name, arch, tools, dnf_version)
    options = PlanOptions(DockerSource.OFFICIAL, user="admin")
    if expected[0] == "refused":
        with pytest.raises(UnsupportedOS, match=expected[1]):
            registry.plan(facts, options)
        return
    plan = registry.plan(facts, options)
    assert [s.name for s in plan.steps] == list(PLANNED_STEPS)
    assert plan.architecture == arch
    if "apt-get" in tools:
        url, suite = expected
        assert plan.driver == "apt"
        assert (plan.repository.url, plan.repository.suite, plan.repository.component) == (url, suite, "stable")
        assert shown(plan.step("install_docker").commands) == apt_official(url, suite, arch)
        assert shown(plan.step("install_dependencies").commands)[-1] == f"{APT_GET} install -y --no-install-recommends ca-certificates curl"
    else:
        repo, dnf5 = expected
        assert plan.driver == "dnf"
        assert plan.repository.url == f"https://download.docker.com/linux/{repo}"
        assert shown(plan.step("install_docker").commands) == dnf_official(repo, dnf5)
        assert shown(plan.step("install_dependencies").commands) == [f"dnf -y install {'dnf5-plugins' if dnf5 else 'dnf-plugins-core'}"]
        assert shown(plan.step("update_packages").commands) == ["dnf -y makecache"]


@pytest.mark.parametrize("name", sorted(MATRIX))
def test_distro_source(registry, name):
    arch, tools, dnf_version, _, expected = MATRIX[name]
    facts = make_facts(name, arch, tools, dnf_version)
    options = PlanOptions(DockerSource.DISTRO, user="admin")
    if expected[0] == "refused":
        with pytest.raises(UnsupportedOS, match=expected[1]):
            registry.plan(facts, options)
        return
    plan = registry.plan(facts, options)
    assert plan.repository is None
    assert shown(plan.step("install_docker").commands) == expected
    assert shown(plan.step("start_docker").commands) == ["systemctl enable --now docker.service"]
    assert shown(plan.step("configure_user").commands) == ["usermod -aG docker -- admin"]
    assert plan.step("verify_docker").as_user


def test_unknown_os_names_the_os_and_the_installed_drivers(registry):
    with pytest.raises(UnsupportedOS) as e:
        registry.plan(make_facts("alpine-3.20", "amd64", ("apk",), ""), PlanOptions())
    assert e.value.message == "Alpine Linux v3.20 (ID=alpine) is not supported by any installed driver (installed: apt, dnf)"
    assert e.value.reason == "UNSUPPORTED_OS"


def test_version_pin_channel_mirror_and_proxy_on_apt(registry):
    options = PlanOptions(DockerSource.OFFICIAL, user="admin", docker_version="27.3.1", channel="test",
                          repository_base="https://mirror.example/docker", http_proxy="http://u:pw@proxy:3128")
    plan = registry.plan(make_facts("ubuntu-24.04", "amd64", APT, ""), options)
    assert plan.repository.url == "https://mirror.example/docker/linux/ubuntu"
    commands = plan.step("install_docker").commands
    sources = next(c for c in commands if isinstance(c, WriteFile))
    assert "URIs: https://mirror.example/docker/linux/ubuntu\nSuites: noble\nComponents: test\n" in sources.content
    assert "http_proxy=http://u:pw@proxy:3128" in commands[-1].render()
    assert commands[-1].display() == "apt-get install docker-ce=27.3.1* docker-ce-cli=27.3.1* containerd.io docker-buildx-plugin docker-compose-plugin"
    # Logs show the proxy without its password.
    curl = next(c for c in commands if isinstance(c, Command) and c.argv[0] == "curl")
    assert "pw@" not in curl.display() and "http://***@proxy:3128" in curl.display()


def test_version_pin_channel_and_mirror_on_dnf5(registry):
    options = PlanOptions(DockerSource.OFFICIAL, user="admin", docker_version="27.3", channel="test", repository_base="https://mirror.example/docker")
    plan = registry.plan(make_facts("fedora-41", "amd64", DNF5, "dnf5 version 5.2.6.2"), options)
    assert shown(plan.step("install_docker").commands)[1:] == [
        "dnf -y config-manager addrepo --from-repofile=https://mirror.example/docker/linux/fedora/docker-ce.repo --overwrite",
        "sed -i 's#https://download.docker.com#https://mirror.example/docker#g' /etc/yum.repos.d/docker-ce.repo",
        "dnf -y config-manager setopt docker-ce-test.enabled=1",
        "dnf -y install 'docker-ce-27.3*' 'docker-ce-cli-27.3*' containerd.io docker-buildx-plugin docker-compose-plugin",
    ]


def test_dnf_generation_is_decided_by_the_server_not_the_version(registry):
    # A Fedora 41 still running dnf4 (upgraded in place without dnf5) keeps --add-repo.
    plan = registry.plan(make_facts("fedora-41", "amd64", DNF4, "4.21.1"), PlanOptions(DockerSource.OFFICIAL))
    assert "dnf -y config-manager --add-repo https://download.docker.com/linux/fedora/docker-ce.repo" in shown(plan.step("install_docker").commands)


def test_raspberry_pi_os_64_bit_reports_debian_and_uses_debian_repo(registry):
    plan = registry.plan(make_facts("debian-12", "arm64", APT, ""), PlanOptions(DockerSource.OFFICIAL))
    assert (plan.repository.url, plan.architecture) == (D, "arm64")


def test_root_needs_no_group_change(registry):
    plan = registry.plan(make_facts("debian-12", "amd64", APT, "", uid=0), PlanOptions(DockerSource.DISTRO, user="root"))
    assert plan.step("configure_user").skip_reason


def test_two_drivers_claiming_one_os_equally_is_an_error_naming_both():
    from serverprep.drivers import hookimpl
    from serverprep.drivers.apt import AptDriver

    class Greedy(AptDriver):
        name = "greedy"

    class Plugin:
        @hookimpl
        def serverprep_drivers(self):
            return [Greedy()]

    registry = DriverRegistry(make_plugin_manager(load_entry_points=False, plugins=[*_builtins(), Plugin()]))
    with pytest.raises(DriverConflict) as e:
        registry.select(OsRelease.from_text(OS_RELEASES["debian-12"]))
    assert "apt" in e.value.message and "greedy" in e.value.message


def test_a_driver_that_raises_is_named():
    from serverprep.drivers import hookimpl
    from serverprep.service.errors import DriverError

    class Broken:
        name = "broken"
        distros = ("Alpine",)

        def match(self, os_release):
            return 2 if os_release.id == "alpine" else None

        def plan(self, facts, options):
            raise KeyError("apk")

    class Plugin:
        @hookimpl
        def serverprep_drivers(self):
            return [Broken()]

    registry = DriverRegistry(make_plugin_manager(load_entry_points=False, plugins=[Plugin()]))
    with pytest.raises(DriverError, match="driver 'broken' .* failed in plan: KeyError"):
        registry.plan(make_facts("alpine-3.20", "amd64", ("apk",), ""), PlanOptions())


def test_plans_never_carry_user_text_unquoted(registry):
    plan = registry.plan(make_facts("debian-12", "amd64", APT, ""), PlanOptions(DockerSource.DISTRO, user="x$(touch /tmp/pwned)"))
    rendered = " ".join(c.render() for c in [*plan.step("configure_user").commands, *plan.step("configure_user").check])
    assert "'x$(touch /tmp/pwned)'" in rendered


# -- architectures: only what Docker publishes, for the official source -------------------------

def facts_on(name, machine, tools=APT, dnf_version=""):
    """A server of ``name`` whose kernel reports ``machine``; dpkg (when present) answers as a real one would."""
    from serverprep.drivers.architectures import dpkg_architecture

    return Facts(os_release=OsRelease.from_text(OS_RELEASES[name]), machine=machine,
                 dpkg_architecture=dpkg_architecture(machine) if "dpkg" in tools else "", user="admin", uid=1000,
                 commands=frozenset(tools), dnf_version=dnf_version)


@pytest.mark.parametrize("name, machine, tools, dnf_version, published", [
    ("debian-12", "i686", APT, "", "amd64, arm64, armhf, ppc64el"),
    ("debian-12", "s390x", APT, "", "amd64, arm64, armhf, ppc64el"),
    ("debian-13", "riscv64", APT, "", "amd64, arm64, armhf, ppc64el"),
    ("ubuntu-24.04", "i686", APT, "", "amd64, arm64, armhf, ppc64el, s390x"),
    ("fedora-41", "s390x", DNF5, "dnf5 version 5.2.6.2", "x86_64, aarch64, ppc64le"),
    ("fedora-41", "armv7l", DNF5, "dnf5 version 5.2.6.2", "x86_64, aarch64, ppc64le"),
    ("rhel-9.4", "s390x", DNF4, "4.14.0", "x86_64, aarch64"),
    ("rhel-9.4", "ppc64le", DNF4, "4.14.0", "x86_64, aarch64"),
    ("rocky-9.4", "s390x", DNF4, "4.14.0", "x86_64, aarch64, ppc64le"),
])
def test_official_source_refuses_an_architecture_docker_does_not_publish(registry, name, machine, tools, dnf_version, published):
    facts = facts_on(name, machine, tools, dnf_version)
    with pytest.raises(UnsupportedOS) as e:
        registry.plan(facts, PlanOptions(DockerSource.OFFICIAL, user="admin"))
    assert e.value.reason == "UNSUPPORTED_OS"
    assert facts.os_release.describe() in e.value.message and f"for {published} only" in e.value.message


@pytest.mark.parametrize("name, machine, tools, dnf_version", [
    ("debian-12", "i686", APT, ""),
    ("debian-13", "riscv64", APT, ""),
    ("fedora-41", "s390x", DNF5, "dnf5 version 5.2.6.2"),
])
def test_distro_source_follows_the_distribution_not_dockers_matrix(registry, name, machine, tools, dnf_version):
    plan = registry.plan(facts_on(name, machine, tools, dnf_version), PlanOptions(DockerSource.DISTRO, user="admin"))
    assert plan.repository is None


@pytest.mark.parametrize("name, machine, tools, dnf_version, url, arch", [
    ("ubuntu-24.04", "s390x", APT, "", U, "s390x"),
    ("ubuntu-24.04", "ppc64le", APT, "", U, "ppc64el"),
    ("debian-12", "armv7l", APT, "", D, "armhf"),
    ("debian-12", "ppc64le", APT, "", D, "ppc64el"),
    ("raspbian-12", "armv6l", APT, "", "https://download.docker.com/linux/raspbian", "armhf"),
    ("raspbian-12", "aarch64", APT, "", D, "arm64"),
    ("rhel-9.4", "aarch64", DNF4, "4.14.0", "https://download.docker.com/linux/rhel", "arm64"),
    ("rocky-9.4", "ppc64le", DNF4, "4.14.0", "https://download.docker.com/linux/centos", "ppc64el"),
])
def test_official_source_on_a_published_architecture(registry, name, machine, tools, dnf_version, url, arch):
    plan = registry.plan(facts_on(name, machine, tools, dnf_version), PlanOptions(DockerSource.OFFICIAL, user="admin"))
    assert (plan.repository.url, plan.architecture) == (url, arch)
    if "apt-get" in tools:
        sources = next(c for c in plan.step("install_docker").commands if isinstance(c, WriteFile))
        assert f"\nArchitectures: {arch}\n" in sources.content


def test_raspbian_trixie_has_no_raspbian_repository_and_uses_debians():
    # get.docker.com does the same: Docker publishes no raspbian trixie suite.
    text = OS_RELEASES["raspbian-12"].replace("bookworm", "trixie").replace('"12"', '"13"').replace("12 (", "13 (")
    facts = Facts(os_release=OsRelease.from_text(text), machine="armv7l", dpkg_architecture="armhf",
                  user="admin", uid=1000, commands=frozenset(APT))
    registry = DriverRegistry(make_plugin_manager(load_entry_points=False, plugins=_builtins()))
    plan = registry.plan(facts, PlanOptions(DockerSource.OFFICIAL, user="admin"))
    assert (plan.repository.url, plan.repository.suite, plan.architecture) == (D, "trixie", "armhf")


MACHINES = ("x86_64", "aarch64", "armv8l", "armv7l", "armv6l", "i686", "ppc64le", "ppc64", "s390x", "riscv64", "loongarch64", "mips")


@pytest.mark.parametrize("name", sorted(n for n, row in MATRIX.items() if row[3][0] != "refused"))
def test_an_official_plan_never_points_at_an_architecture_docker_does_not_publish(registry, name):
    """Every OS the official source serves, on every kernel architecture: a plan only where Docker publishes."""
    from serverprep.drivers.architectures import published_architectures

    _, tools, dnf_version, _, _ = MATRIX[name]
    for channel in ("stable", "test"):
        for machine in MACHINES:
            facts = facts_on(name, machine, tools, dnf_version)
            try:
                plan = registry.plan(facts, PlanOptions(DockerSource.OFFICIAL, user="admin", channel=channel))
            except UnsupportedOS as e:
                assert "only, not for" in e.message, e.message
                continue
            repository = plan.repository.url.rsplit("/", 1)[1]
            assert plan.architecture in published_architectures(repository, channel), (name, machine, channel)
