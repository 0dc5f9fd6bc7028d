"""A plugin's fact probe runs on the server in the facts round trip and its result decides the plan.

The example zypper plugin (tests/plugins/serverprep-zypper), pip-installed and found through its
entry point by a real `serverprep serve` process, declares the probe `suse_transactional`. The
server is a simulation: a real sshd and shell with openSUSE's os-release, where `findmnt` and
`transactional-update` are stand-ins, so what is proven is the probe's path (declared, run
remotely as the login user, parsed, handed to the driver), not openSUSE.
"""

import subprocess
import sys

import pytest

from conftest import SIM_USER, register
from harness.osreleases import OS_RELEASES
from harness.service import service_process
from harness.targets import COMMON_STANDINS, behave, calls, simulated_host
from serverprep.clients.client import Client, ServerprepClientError

pytestmark = pytest.mark.sshd
PLUGIN = __import__("pathlib").Path(__file__).resolve().parents[1] / "plugins" / "serverprep-zypper"


@pytest.fixture(scope="module")
def plugin_path(tmp_path_factory):
    target = tmp_path_factory.mktemp("site")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(target), str(PLUGIN)],
                   check=True, capture_output=True)
    return target


@pytest.fixture
def suse():
    standins = ("zypper", "rpm", "findmnt", "transactional-update", *COMMON_STANDINS)
    with simulated_host(SIM_USER, OS_RELEASES["opensuse-leap-15.6"], standins=standins, writable=()) as target:
        yield target


def test_a_probe_result_reaches_the_driver_and_decides(tmp_path, plugin_path, suse):
    with service_process(tmp_path, env={"PYTHONPATH": str(plugin_path)}) as (_, address), Client(address) as client:
        register(client, suse, "suse")
        behave(suse, "findmnt", 'echo "rw,relatime"')
        plan = client.plan("suse", docker_source="distro")
        assert plan.driver == "zypper"
        assert [c for c in calls(suse) if c.startswith("findmnt")] == ["findmnt -no OPTIONS /"]  # ran remotely, once

        behave(suse, "findmnt", 'echo "ro,relatime"')  # now / is read-only: a transactional system
        with pytest.raises(ServerprepClientError) as refused:
            client.plan("suse", docker_source="distro")
        assert refused.value.reason == "UNSUPPORTED_OS"
        assert "transactional-update" in refused.value.message
