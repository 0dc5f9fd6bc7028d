"""The shell text serverprep sends, and the parsers of what comes back, side by side.

Remote scripts announce themselves on standard output with lines that start with a
marker remote output cannot guess (:func:`new_marker`); everything else is the output
of the commands they run.
"""

from __future__ import annotations

import collections
import re
import secrets
import shlex
from collections.abc import Sequence
from dataclasses import dataclass, field

from serverprep.drivers import Facts, OsRelease, Probe, ProbeResult, StepPlan
from serverprep.drivers.commands import SecretRefs
from serverprep.service.domain import Stream
from serverprep.service.errors import FactsFailed

FACT_PROGRAMS = (
    "apt-get", "dpkg", "dnf", "dnf5", "yum", "microdnf", "zypper", "apk", "pacman",
    "systemctl", "docker", "sudo", "setsid", "curl",
)


# What uname -m, dpkg --print-architecture and id -un may answer.
_FACT_WORD = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.@-]{0,63}")


def new_marker() -> str:
    """A token remote output cannot guess, to tell serverprep's own lines from a command's."""
    return f"::serverprep-{secrets.token_hex(8)}::"


def facts_script(marker: str, probes: Sequence[Probe] = ()) -> str:
    """One read-only round trip that prints everything a driver decides on.

    Each probe's output comes between ``probe NAME`` and ``probe-end NAME STATUS`` lines.
    """
    m = shlex.quote(marker)
    programs = " ".join(FACT_PROGRAMS)
    probe_lines = [
        f'echo "$M probe {p.name}"; ( {p.command.render()} ) </dev/null 2>/dev/null; rc=$?; echo; echo "$M probe-end {p.name} $rc"'
        for p in probes
    ]
    # Each answer follows its marker on the same line (printf, then the tool, then a newline for a
    # tool that printed none): no command substitution, so no subshell per fact. What the tools print
    # is bounded by the caller (facts_max_bytes), and the last marker names the tool that overflowed.
    return "\n".join(
        [
            f"M={m}",
            'echo "$M os-release"',
            "cat /etc/os-release 2>/dev/null || cat /usr/lib/os-release 2>/dev/null",
            "echo",
            'echo "$M end-os-release"',
            "printf '%s machine ' \"$M\"; uname -m 2>/dev/null; echo",
            "printf '%s uid ' \"$M\"; id -u 2>/dev/null; echo",
            "printf '%s user ' \"$M\"; id -un 2>/dev/null; echo",
            "printf '%s groups ' \"$M\"; id -Gn 2>/dev/null; echo",
            f'for c in {programs}; do command -v "$c" >/dev/null 2>&1 && echo "$M has $c"; done',
            "command -v dpkg >/dev/null 2>&1 && { printf '%s dpkg-arch ' \"$M\"; dpkg --print-architecture 2>/dev/null; echo; }",
            "command -v docker >/dev/null 2>&1 && { printf '%s docker ' \"$M\"; docker --version 2>/dev/null; echo; }",
            "command -v dnf >/dev/null 2>&1 && { printf '%s dnf ' \"$M\"; dnf --version 2>/dev/null; echo; }",
            *probe_lines,
            "exit 0",
        ]
    )


def parse_facts(lines: list[str], marker: str) -> Facts:
    """Facts from the lines facts_script printed (stdout only, in order)."""
    os_lines: list[str] = []
    section = ""
    values: dict[str, str] = {}
    commands: set[str] = set()
    probe_output: dict[str, list[str]] = {}
    probes: dict[str, ProbeResult] = {}
    for line in lines:
        if not line.startswith(marker):
            if section == "os-release":
                os_lines.append(line)
            elif section in probe_output:
                probe_output[section].append(line)
            continue
        key, _, value = line[len(marker) :].strip().partition(" ")
        value = value.strip()
        if key == "os-release":
            section = "os-release"
        elif key == "end-os-release":
            section = ""
        elif key == "probe":
            section = value
            probe_output[value] = []
        elif key == "probe-end":
            name, _, status = value.partition(" ")
            output = probe_output.pop(name, [])
            if output and output[-1] == "":
                output.pop()  # the echo that ends output without a final newline
            text = "\n".join(output)[: Probe.MAX_OUTPUT]
            probes[name] = ProbeResult(exit_code=int(status) if status.isdigit() else -1, output=text)
            section = ""
        elif key == "has":
            commands.add(value)
        else:
            values[key] = value
    for key, what in (("machine", "uname -m"), ("dpkg-arch", "dpkg --print-architecture"), ("user", "id -un")):
        if values.get(key) and not _FACT_WORD.fullmatch(values[key]):
            raise FactsFailed(f"the server answered {what} with {values[key][:60]!r}, which is not a plausible answer",
                              metadata={"fact": key})
    uid = values.get("uid", "")
    return Facts(
        os_release=OsRelease.from_text("\n".join(os_lines)),
        machine=values.get("machine", ""),
        dpkg_architecture=values.get("dpkg-arch", ""),
        user=values.get("user", ""),
        uid=int(uid) if uid.isdigit() else -1,
        commands=frozenset(commands),
        groups=frozenset(values.get("groups", "").split()),
        docker_version=values.get("docker", ""),
        dnf_version=values.get("dnf", ""),
        probes=probes,
    )


#: The tool behind each fact, to name the one whose answer had no end.
_FACT_TOOLS = {"os-release": "cat /etc/os-release", "end-os-release": "uname -m", "machine": "uname -m", "uid": "id -u",
               "user": "id -un", "groups": "id -Gn", "dpkg-arch": "dpkg --print-architecture", "docker": "docker --version", "dnf": "dnf --version"}


def facts_overflow(lines: list[str], marker: str, max_bytes: int) -> FactsFailed:
    """The error for facts that printed more than ``max_bytes``, naming the tool that was answering."""
    last = next((line[len(marker):].strip() for line in reversed(lines) if line.startswith(marker)), "")
    key, _, value = last.partition(" ")
    what = f"the probe {value.split(' ')[0]!r}" if key == "probe" else _FACT_TOOLS.get(key)
    if what is None:
        return FactsFailed(f"gathering facts printed more than {max_bytes} bytes; the server's tools answer strangely")
    sample = f" with {value[:60]!r}…" if value and key != "probe" else ""
    return FactsFailed(f"the server answered {what}{sample} and more than {max_bytes} bytes in all; its tools answer strangely",
                       metadata={"fact": key})


def secret_refs(secrets: Sequence[str]) -> dict[str, str]:
    """A shell variable for each secret the step's commands use (see drivers.commands.quote)."""
    return {value: f"SERVERPREP_SECRET_{i}" for i, value in enumerate(dict.fromkeys(v for v in secrets if v), 1)}


def step_script(step: StepPlan, marker: str, refs: SecretRefs | None = None, secrets_marker: str = "") -> str:
    """The script of one step: announce the process group, check, then each command in turn.

    Lines starting with ``marker`` are serverprep's: ``start PID``, ``skip``, ``run N``,
    ``diagnostics`` (what follows explains a failure). Secrets (``refs``) are read from
    standard input after a ``MARKER secrets`` line (sudo -S may or may not have read its
    password line first), so that none is ever in a command line on the server.
    """
    m = shlex.quote(marker)
    lines = [f"M={m}"]
    if refs:
        sentinel = shlex.quote(f"{secrets_marker or marker} secrets")
        lines.append(f'while IFS= read -r l; do [ "$l" = {sentinel} ] && break; done')
        lines += [f"IFS= read -r {name}" for name in refs.values()]
    lines += [
        # Commands never read serverprep's stdin (which may have carried sudo's password).
        "exec </dev/null",
        'echo "$M start $$"',
    ]
    if step.check:
        check = " && ".join(c.render(refs) for c in step.check)
        lines.append(f'if {{ {check}; }} >/dev/null 2>&1; then echo "$M skip"; exit 0; fi')
    on_failure = "exit $rc"
    if step.diagnostics:
        diagnose = "; ".join(f"{d.render(refs)} 2>&1" for d in step.diagnostics)
        on_failure = f'echo "$M diagnostics"; {{ {diagnose}; }} >&2; exit $rc'
    for i, command in enumerate(step.commands):
        lines.append(f'echo "$M run {i}"')
        lines.append(f"{command.render(refs)} || {{ rc=$?; {on_failure}; }}")
    lines.append("exit 0")
    return "\n".join(lines)


def agent_script(marker: str, refs: SecretRefs | None = None) -> str:
    """A shell that runs step scripts sent on its standard input, one after another.

    It reads the secrets once (after a ``MARKER secrets`` line, which also skips the sudo password
    line when sudo did not read it), says ``MARKER agent PID``, then for each ``MARKER step``
    request reads the script's lines up to ``MARKER end`` and runs it in its own process group
    (setsid), with the secrets (if any) on the script's standard input, and says ``MARKER done
    STATUS``. It ends with its input. One session and one sudo serve every step of a preparation,
    and reading a step costs no process (the shell's own ``read``).
    """
    m = shlex.quote(marker)
    names = list((refs or {}).values())
    if names:
        # printf is a shell builtin: the secrets go down the pipe, in no process's arguments and
        # never on disk (a here-document would be a temporary file in some shells).
        feed = "printf '%s\\n'" + "".join(f' "${{{name}}}"' for name in names)
        run = f'  {{ echo "$M secrets"; {feed}; }} | setsid -w sh -c "$s"'
    else:
        run = '  setsid -w sh -c "$s" </dev/null'  # step scripts without secrets read nothing
    return "\n".join([
        f"M={m}",
        'while IFS= read -r l; do [ "$l" = "$M secrets" ] && break; done',
        *(f"IFS= read -r {name}" for name in names),
        'echo "$M agent $$"',
        "while IFS= read -r l; do",
        '  [ "$l" = "$M step" ] || continue',
        "  s=",
        '  while IFS= read -r l && [ "$l" != "$M end" ]; do s="$s$l',
        '"; done',
        run,
        '  echo "$M done $?"',
        "done",
    ])


def agent_request(marker: str, script: str) -> str:
    """What to write to an agent so that it runs ``script`` (its lines, then an end line no
    script line can be: the agent's marker is unguessable)."""
    body = script if script.endswith("\n") else script + "\n"
    return f"{marker} step\n{body}{marker} end\n"


def secrets_input(marker: str, refs: SecretRefs | None) -> str:
    """What step_script reads from standard input: the secrets, in the order of ``refs``."""
    if not refs:
        return ""
    return "".join(f"{line}\n" for line in (f"{marker} secrets", *refs))


@dataclass
class StepOutput:
    """Reads what a step script prints: :meth:`feed` returns the line for the log (None for a marker
    line) and keeps what the markers said: the process group, whether the check passed, which command runs."""

    marker: str
    #: Stderr lines kept from before the script started (sudo's refusal, if any).
    early_stderr_limit: int = 20
    started: bool = False
    skipped: bool = False
    pid: int | None = None
    command: int = -1
    diagnostics: bool = False
    early_stderr: list[str] = field(default_factory=list)
    #: The running command's last stderr lines (not the diagnostics'): the tool's own reason, for the failure message.
    command_stderr: collections.deque[str] = field(default_factory=lambda: collections.deque(maxlen=4))

    def feed(self, stream: Stream, text: str) -> str | None:
        """The output in ``text`` (None when it was only serverprep's marker line).

        A marker found inside a line follows output that did not end with a newline: the text
        before it is output, the rest is the marker line.
        """
        at = text.find(self.marker) if stream is Stream.STDOUT else -1
        if at > 0:
            self.feed(stream, text[at:])
            return text[:at]
        if at == 0:
            kind, _, arg = text[len(self.marker) :].strip().partition(" ")
            if kind == "start":
                self.started = True
                self.pid = int(arg) if arg.isdigit() else None
            elif kind == "skip":
                self.skipped = True
            elif kind == "run" and arg.isdigit():
                self.command = int(arg)
                self.command_stderr.clear()
            elif kind == "diagnostics":
                self.diagnostics = True
            return None
        self.feed_output(stream, [text])
        return text

    def feed_output(self, stream: Stream, texts: list[str]) -> None:
        """Keep what lines without a marker say: the early stderr lines, and the running command's last ones."""
        if stream is Stream.STDERR and not self.started:
            self.early_stderr.extend(texts[: max(0, self.early_stderr_limit - len(self.early_stderr))])
        elif stream is Stream.STDERR and not self.diagnostics:
            self.command_stderr.extend(filter(None, map(str.strip, texts)))


@dataclass(frozen=True)
class Invocation:
    command: str
    stdin: str | None = None


def invoke(script: str, *, privileged: bool, sudo_password: str = "", stdin: str = "") -> Invocation:
    """Wrap a script so that it runs in its own process group, through sudo when asked.

    The sudo password goes to standard input (before ``stdin``), never into the command line.
    """
    inner = ["setsid", "-w", "sh", "-c", script]
    if not privileged:
        return Invocation(_exec(inner), stdin=stdin or None)
    # LC_ALL=C: sudo's refusals are then the same words in every locale (see sudo_refusal).
    if sudo_password:
        return Invocation(_exec(["env", "LC_ALL=C", "sudo", "-S", "-p", "", "-k", "--", *inner]), stdin=sudo_password + "\n" + stdin)
    return Invocation(_exec(["env", "LC_ALL=C", "sudo", "-n", "--", *inner]), stdin=stdin or None)


def _exec(argv: list[str]) -> str:
    """The command line for the login shell: ``exec``, so that it does not stay as one more process."""
    return "exec " + shlex.join(argv)


def invoke_agent(script: str, *, privileged: bool, sudo_password: str = "", stdin: str = "") -> Invocation:
    """Start an agent (agent_script): through sudo when the steps need root, never in a new process
    group of its own (each step makes one)."""
    if not privileged:
        return Invocation(_exec(["sh", "-c", script]), stdin=stdin or None)
    if sudo_password:
        return Invocation(_exec(["env", "LC_ALL=C", "sudo", "-S", "-p", "", "-k", "--", "sh", "-c", script]),
                          stdin=sudo_password + "\n" + stdin)
    return Invocation(_exec(["env", "LC_ALL=C", "sudo", "-n", "--", "sh", "-c", script]), stdin=stdin or None)


def sudo_refusal(stderr: list[str]) -> tuple[str, str]:
    """(reason, explanation) for sudo's refusal, from what it printed under LC_ALL=C."""
    text = " ".join(stderr).lower()
    if "must have a tty" in text or "must have a terminal" in text:
        return "SUDO_NEEDS_TTY", "sudo on the server requires a terminal ('Defaults requiretty'): add 'Defaults:USER !requiretty' with visudo"
    if "password is required" in text:
        return "SUDO_PASSWORD_REQUIRED", "sudo needs a password and none was given for this server"
    if "incorrect password" in text or "sorry, try again" in text:
        return "SUDO_PASSWORD_WRONG", "sudo rejected the sudo password"
    if "not in the sudoers" in text or "is not allowed" in text or "may not run sudo" in text:
        return "SUDO_NOT_ALLOWED", "the user may not run commands as root with sudo"
    if "'sudo': no such file" in text or "sudo: not found" in text or "sudo: command not found" in text:
        return "SUDO_MISSING", "sudo is not installed on the server"
    return "SUDO_FAILED", "sudo refused to run the step"


def leftover_script(pid: int, marker: str) -> str:
    """Stop process group ``pid`` if it is still the step that printed ``marker`` (not a reused pid)."""
    return "\n".join([
        f"pid={int(pid)}; m={shlex.quote(marker)}",
        'if [ -r "/proc/$pid/cmdline" ] && tr "\\000" " " < "/proc/$pid/cmdline" | grep -qF -- "$m"; then',
        '  echo "stopping what is left of the previous attempt (process group $pid)"',
        '  kill -TERM -"$pid" 2>/dev/null; sleep 2; kill -KILL -"$pid" 2>/dev/null',
        "fi",
        "true",
    ])


def kill_script(pid: int, signal: str = "TERM") -> str:
    # No "--": dash's kill builtin rejects it; -SIG -PGID works in every sh.
    return f"kill -{signal} -{int(pid)} 2>/dev/null || true"
