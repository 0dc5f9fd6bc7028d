"""Driver tables: facts in, plan out. Pure: no connection, no service."""

import pytest

from serverprep.drivers import DockerSource, Facts, OsRelease, PlanOptions, PLANNED_STEPS
from serverprep.service.errors import DriverConflict, UnsupportedOS
from serverprep.service.plugins import DriverRegistry, make_plugin_manager

OS = {
    "debian-11": 'PRETTY_NAME="Debian GNU/Linux 11 (bullseye)"\nVERSION_ID="11"\nVERSION_CODENAME=bullseye\nID=debian\n',
    "debian-12": 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\nID=debian\n',
    "debian-13": 'PRETTY_NAME="Debian GNU/Linux 13 (trixie)"\nVERSION_ID="13"\nVERSION_CODENAME=trixie\nID=debian\n',
    "ubuntu-24.04": 'NAME="Ubuntu"\nVERSION_ID="24.04"\nID=ubuntu\nID_LIKE=debian\nVERSION_CODENAME=noble\nUBUNTU_CODENAME=noble\n',
    "ubuntu-20.04": 'NAME="Ubuntu"\nVERSION_ID="20.04"\nID=ubuntu\nID_LIKE=debian\nVERSION_CODENAME=focal\nUBUNTU_CODENAME=focal\n',
    "mint-21.3": 'NAME="Linux Mint"\nID=linuxmint\nID_LIKE="ubuntu debian"\nVERSION_ID="21.3"\nVERSION_CODENAME=virginia\nUBUNTU_CODENAME=jammy\n',
    "raspbian-12": 'PRETTY_NAME="Raspbian GNU/Linux 12 (bookworm)"\nID=raspbian\nID_LIKE=debian\nVERSION_ID="12"\nVERSION_CODENAME=bookworm\n',
    "fedora-41": 'NAME="Fedora Linux"\nVERSION_ID=41\nID=fedora\nPLATFORM_ID="platform:f41"\n',
    "rocky-9": 'NAME="Rocky Linux"\nVERSION_ID="9.4"\nID="rocky"\nID_LIKE="rhel centos fedora"\n',
    "amzn-2023": 'NAME="Amazon Linux"\nVERSION_ID="2023"\nID="amzn"\nID_LIKE="fedora"\n',
    "alpine": 'NAME="Alpine Linux"\nID=alpine\nVERSION_ID=3.20.0\n',
}


@pytest.fixture(scope="module")
def registry():
    return DriverRegistry(make_plugin_manager())


def facts(name, *, arch="amd64", commands=("apt-get", "dpkg", "systemctl", "sudo"), uid=1000):
    return Facts(os_release=OsRelease.from_text(OS[name]), machine="x86_64", dpkg_architecture=arch, user="admin", uid=uid, commands=frozenset(commands))


def commands(plan, step):
    return [c.render() for c in plan.step(step).commands]


@pytest.mark.parametrize(
    "name, url, suite, arch",
    [
        ("debian-11", "https://download.docker.com/linux/debian", "bullseye", "amd64"),
        ("debian-12", "https://download.docker.com/linux/debian", "bookworm", "arm64"),
        ("debian-13", "https://download.docker.com/linux/debian", "trixie", "amd64"),
        ("ubuntu-24.04", "https://download.docker.com/linux/ubuntu", "noble", "amd64"),
        ("ubuntu-20.04", "https://download.docker.com/linux/ubuntu", "focal", "amd64"),
        # Mint must get its Ubuntu base's codename, not its own.
        ("mint-21.3", "https://download.docker.com/linux/ubuntu", "jammy", "amd64"),
        ("raspbian-12", "https://download.docker.com/linux/raspbian", "bookworm", "armhf"),
    ],
)
def test_apt_official_repository(registry, name, url, suite, arch):
    plan = registry.plan(facts(name, arch=arch), PlanOptions(DockerSource.OFFICIAL, user="admin"))
    assert plan.driver == "apt"
    assert (plan.repository.url, plan.repository.suite) == (url, suite)
    install = commands(plan, "install_docker")
    sources = next(c for c in plan.step("install_docker").commands if getattr(c, "path", "") == "/etc/apt/sources.list.d/docker.sources")
    assert f"URIs: {url}\nSuites: {suite}\nComponents: stable\nArchitectures: {arch}\nSigned-By: /etc/apt/keyrings/docker.asc\n" in sources.content
    assert install[-1] == (
        "env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 -q install -y "
        "docker-ce docker-ce-cli containerd.io docker-buildx-plugin docker-compose-plugin"
    )
    assert f"curl -fsSL --retry 3 -o /etc/apt/keyrings/docker.asc {url}/gpg" in install
    assert "rm -f /etc/apt/sources.list.d/docker.list /etc/apt/trusted.gpg.d/docker.gpg /etc/apt/trusted.gpg.d/docker.asc" in install


def test_apt_distro_source_on_debian_12(registry):
    plan = registry.plan(facts("debian-12"), PlanOptions(DockerSource.DISTRO, user="admin"))
    assert plan.repository is None
    assert [s.name for s in plan.steps] == list(PLANNED_STEPS)
    assert commands(plan, "update_packages") == ["env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 -q update"]
    assert commands(plan, "install_docker") == [
        "env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 -q install -y --no-install-recommends docker.io docker-compose"
    ]
    assert commands(plan, "start_docker") == ["systemctl enable --now docker.service"]
    assert commands(plan, "configure_user") == ["usermod -aG docker -- admin"]
    assert plan.step("verify_docker").as_user


def test_root_needs_no_group_change(registry):
    plan = registry.plan(facts("debian-12", uid=0), PlanOptions(DockerSource.DISTRO, user="root"))
    assert plan.step("configure_user").skip_reason


@pytest.mark.parametrize(
    "name, commands_, add_repo",
    [
        ("fedora-41", ("dnf", "dnf5", "rpm"), "dnf config-manager addrepo --from-repofile=https://download.docker.com/linux/fedora/docker-ce.repo --overwrite"),
        ("rocky-9", ("dnf", "rpm"), "dnf config-manager --add-repo https://download.docker.com/linux/centos/docker-ce.repo"),
    ],
)
def test_dnf_official_repository_by_dnf_generation(registry, name, commands_, add_repo):
    plan = registry.plan(facts(name, commands=commands_), PlanOptions(DockerSource.OFFICIAL, user="admin"))
    assert plan.driver == "dnf"
    assert add_repo in commands(plan, "install_docker")


def test_amazon_linux_official_is_refused_clearly(registry):
    with pytest.raises(UnsupportedOS, match="no Amazon Linux packages"):
        registry.plan(facts("amzn-2023", commands=("dnf", "rpm")), PlanOptions(DockerSource.OFFICIAL, user="admin"))


def test_yum_only_system_is_refused(registry):
    with pytest.raises(UnsupportedOS, match="has no dnf"):
        registry.plan(facts("rocky-9", commands=("yum", "rpm")), PlanOptions(DockerSource.OFFICIAL))


def test_unknown_os_names_the_os_and_the_installed_drivers(registry):
    with pytest.raises(UnsupportedOS) as e:
        registry.plan(facts("alpine"), PlanOptions())
    assert "Alpine Linux" in e.value.message and "apt, dnf" in e.value.message
    assert e.value.reason == "UNSUPPORTED_OS"


def test_two_drivers_claiming_one_os_equally_is_an_error_naming_both():
    from serverprep.drivers import hookimpl
    from serverprep.drivers.apt import AptDriver

    class Greedy(AptDriver):
        name = "greedy"

    class Plugin:
        @hookimpl
        def serverprep_drivers(self):
            return [Greedy()]

    registry = DriverRegistry(make_plugin_manager(plugins=[Plugin()]))
    with pytest.raises(DriverConflict) as e:
        registry.select(OsRelease.from_text(OS["debian-12"]))
    assert "apt" in e.value.message and "greedy" in e.value.message


def test_plans_never_carry_user_text_unquoted(registry):
    plan = registry.plan(facts("debian-12"), PlanOptions(DockerSource.DISTRO, user="x$(touch /tmp/pwned)"))
    rendered = " ".join(commands(plan, "configure_user") + [c.render() for c in plan.step("configure_user").check])
    assert "'x$(touch /tmp/pwned)'" in rendered
