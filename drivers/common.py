"""Steps that are the same on every systemd distribution, for drivers to reuse."""

from __future__ import annotations

from serverprep.drivers.commands import Command, Shell
from serverprep.drivers.types import PlanOptions, StepPlan

#: The group configure_user adds the user to. A login that already has it (or root) needs no new
#: login for verify_docker, which then runs on the connection serverprep has open.
DOCKER_GROUP = "docker"


def docker_service_steps(options: PlanOptions) -> list[StepPlan]:
    """start_docker, configure_user and verify_docker: the same on every systemd distro."""
    user = options.user
    return [
        StepPlan(
            "start_docker",
            check=[Shell("systemctl is-enabled --quiet docker && systemctl is-active --quiet docker")],
            check_description="docker.service is enabled and active",
            commands=[Command(("systemctl", "enable", "--now", "docker.service"))],
            diagnostics=[
                Command(("systemctl", "--no-pager", "status", "docker.service")),
                Command(("journalctl", "--no-pager", "-n", "25", "-u", "docker.service")),
            ],
        ),
        StepPlan(
            "configure_user",
            skip_reason="root needs no docker group" if user == "root" else "",
            check=[Shell('id -nG -- "$1" | tr " " "\\n" | grep -qx "$2"', (user, DOCKER_GROUP))],
            check_description=f"{user} is in the {DOCKER_GROUP} group",
            commands=[Command(("usermod", "-aG", DOCKER_GROUP, "--", user))],
        ),
        StepPlan(
            "verify_docker",
            as_user=True,
            commands=[
                Command(("docker", "info", "--format", "Docker {{.ServerVersion}} answering, storage driver {{.Driver}}, cgroup {{.CgroupVersion}}")),
                Shell(
                    "if docker compose version 2>/dev/null; then :; "
                    "elif command -v docker-compose >/dev/null; then docker-compose version; "
                    'else echo "no docker compose plugin or docker-compose command" >&2; exit 1; fi',
                    description="docker compose version || docker-compose version",
                ),
            ],
        ),
    ]
