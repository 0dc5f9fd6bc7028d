"""A real third-party driver package: pip-installed, found through its entry point, used by the CLI."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from harness.osreleases import OS_RELEASES

PLUGIN = Path(__file__).resolve().parents[1] / "plugins" / "serverprep-zypper"


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory):
    """pip install the example plugin into its own directory, put on PYTHONPATH only for these commands."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(target), str(PLUGIN)],
        check=True, capture_output=True,
    )
    return target


def serverprep(plugin_path, *args):
    env = {**os.environ, "PYTHONPATH": str(plugin_path)}
    return subprocess.run([sys.executable, "-m", "serverprep.clients.cli", *args], capture_output=True, text=True, env=env, timeout=60)


def test_drivers_lists_the_plugin_with_its_distros(plugin_path):
    out = serverprep(plugin_path, "drivers")
    assert out.returncode == 0, out.stderr
    assert "zypper (plugin zypper)" in out.stdout and "openSUSE Leap 15" in out.stdout
    assert "apt (plugin apt)" in out.stdout  # overrides nothing
    assert "probe suse_transactional: is / read-only under transactional-update" in out.stdout


def test_plan_uses_the_plugin_for_its_os(plugin_path, tmp_path):
    osr = tmp_path / "os-release"
    osr.write_text(OS_RELEASES["opensuse-leap-15.6"])
    # No --has zypper: the driver's typical_facts says what an openSUSE install has.
    out = serverprep(plugin_path, "plan", "--os-release", str(osr), "--docker-source", "distro", "--user", "admin", "--json")
    assert out.returncode == 0, out.stderr
    plan = json.loads(out.stdout)
    assert plan["driver"] == "zypper"
    steps = {s["name"]: s["commands"] for s in plan["steps"]}
    assert steps["install_docker"] == ["zypper --non-interactive install --no-recommends docker docker-compose"]
    assert steps["configure_user"] == ["usermod -aG docker -- admin"]


def test_the_plugin_does_not_take_other_oses(plugin_path, tmp_path):
    osr = tmp_path / "os-release"
    osr.write_text(OS_RELEASES["debian-12"])
    plan = json.loads(serverprep(plugin_path, "plan", "--os-release", str(osr), "--json").stdout)
    assert plan["driver"] == "apt"


def test_without_the_plugin_opensuse_is_unsupported(tmp_path):
    osr = tmp_path / "os-release"
    osr.write_text(OS_RELEASES["opensuse-leap-15.6"])
    out = subprocess.run([sys.executable, "-m", "serverprep.clients.cli", "plan", "--os-release", str(osr), "--json"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 1
    error = json.loads(out.stderr)["error"]  # -o json (--json): errors as JSON on standard error
    assert error["reason"] == "UNSUPPORTED_OS" and "openSUSE Leap 15.6" in error["message"] and "apt, dnf" in error["message"]


def test_blocked_plugin_is_not_loaded(plugin_path):
    env_out = subprocess.run([sys.executable, "-m", "serverprep.clients.cli", "drivers"], capture_output=True, text=True,
                             env={**os.environ, "PYTHONPATH": str(plugin_path), "SERVERPREP_DISABLE_PLUGINS": "zypper"}, timeout=60)
    assert "zypper" not in env_out.stdout and "apt" in env_out.stdout


def test_offline_plan_json_for_mint_has_repository_and_steps(tmp_path):
    osr = tmp_path / "os-release"
    osr.write_text(OS_RELEASES["mint-21.3"])
    out = subprocess.run([sys.executable, "-m", "serverprep.clients.cli", "plan", "--os-release", str(osr), "--arch", "arm64", "--json"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    plan = json.loads(out.stdout)
    assert plan["driver"] == "apt"
    assert plan["repository"]["url"] == "https://download.docker.com/linux/ubuntu"
    assert plan["repository"]["suite"] == "jammy"
    assert [s["name"] for s in plan["steps"]] == ["update_packages", "install_dependencies", "install_docker", "start_docker", "configure_user", "verify_docker"]
    assert any("Architectures: arm64" in c for c in plan["steps"][2]["commands"])


def test_offline_plan_text_and_missing_file(tmp_path):
    osr = tmp_path / "os-release"
    osr.write_text(OS_RELEASES["fedora-41"])
    out = subprocess.run([sys.executable, "-m", "serverprep.clients.cli", "plan", "--os-release", str(osr)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0
    assert "driver:     dnf" in out.stdout
    assert "$ dnf -y config-manager addrepo --from-repofile=https://download.docker.com/linux/fedora/docker-ce.repo --overwrite" in out.stdout
    missing = subprocess.run([sys.executable, "-m", "serverprep.clients.cli", "plan", "--os-release", str(tmp_path / "nope")], capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "cannot read" in missing.stderr and "Traceback" not in missing.stderr


@pytest.mark.parametrize("arch, expected", [("x86_64", "amd64"), ("aarch64", "arm64"), ("armv7l", "armhf"), ("ppc64le", "ppc64el"),
                                            ("arm64", "arm64"), ("armv7hl", "armhf")])
def test_offline_plan_takes_kernel_dpkg_and_rpm_architecture_names(tmp_path, arch, expected):
    """plan --arch maps a name the way a real server's facts are mapped (uname -m, dpkg, rpm)."""
    osr = tmp_path / "os-release"
    osr.write_text(OS_RELEASES["debian-12"])
    out = subprocess.run([sys.executable, "-m", "serverprep.clients.cli", "plan", "--os-release", str(osr), "--arch", arch, "-o", "json"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    plan = json.loads(out.stdout)
    assert plan["operating_system"]["architecture"] == expected
    assert any(f"Architectures: {expected}" in c for c in plan["steps"][2]["commands"])


def test_offline_plan_refuses_what_docker_does_not_publish_and_what_is_no_architecture(tmp_path):
    osr = tmp_path / "os-release"
    osr.write_text(OS_RELEASES["debian-12"])
    s390x = subprocess.run([sys.executable, "-m", "serverprep.clients.cli", "plan", "--os-release", str(osr), "--arch", "s390x", "-o", "json"],
                           capture_output=True, text=True, timeout=60)
    error = json.loads(s390x.stderr)["error"]
    assert s390x.returncode == 1 and error["reason"] == "UNSUPPORTED_OS"
    assert "amd64" in error["message"] and "arm64" in error["message"]  # names what Docker does publish for Debian
    distro = subprocess.run([sys.executable, "-m", "serverprep.clients.cli", "plan", "--os-release", str(osr), "--arch", "s390x",
                             "--docker-source", "distro"], capture_output=True, text=True, timeout=60)
    assert distro.returncode == 0, distro.stderr  # Debian's own packages follow Debian
    bogus = subprocess.run([sys.executable, "-m", "serverprep.clients.cli", "plan", "--os-release", str(osr), "--arch", "bogus"],
                           capture_output=True, text=True, timeout=60)
    assert bogus.returncode == 2 and "is not an architecture serverprep knows" in bogus.stderr
