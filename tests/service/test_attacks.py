"""Faults found by attacking the service (issue 8), each with the test that failed before its fix.

They run against the real service (gRPC on a port, SQLite) and a real sshd whose package tools
are stand-ins (a simulation: these prove the service, not a distro). Figures are printed (-s).
"""

from __future__ import annotations

import logging
import os
import random
import time

import grpc
import pytest

from conftest import register, wait_done, wait_step
from harness.targets import behave
from serverprep.clients.client import TERMINAL, ServerprepClientError
from serverprep.v1 import preparations_pb2 as pb

pytestmark = pytest.mark.sshd


def test_cancel_at_any_moment_always_ends_the_preparation(client, sim, caplog):
    """1. A Cancel that lands while a transition is being stored left the preparation RUNNING forever
    (IntegrityError: the batch was stored, put back as unflushed, and inserted again)."""
    caplog.set_level(logging.ERROR)
    register(client, sim)
    behave(sim, "apt-get", "sleep 20")
    rng = random.Random(8)
    rounds, deadline = 0, time.monotonic() + 75
    outcomes: dict[str, int] = {}
    while rounds < 200 and time.monotonic() < deadline:
        rounds += 1
        if rounds % 4 == 0:
            try:
                prep = client.retry("sim")
            except ServerprepClientError:
                prep = client.prepare("sim", docker_source="distro")
        else:
            prep = client.prepare("sim", docker_source="distro")
        time.sleep(rng.choice((0, 0, 0.001, 0.003, 0.005, 0.01, 0.03, 0.08)))
        try:
            client.cancel("sim", prep.id)
        except ServerprepClientError as e:
            assert e.reason == "NOT_CANCELLABLE", e  # it ended by itself first: fine
        final = wait_done(client, "sim", prep.id, timeout=15)
        name = pb.PreparationState.Name(final.state)
        outcomes[name] = outcomes.get(name, 0) + 1
        assert final.state in TERMINAL
        assert not any(s.state == pb.STEP_STATE_RUNNING for s in final.steps), final
        seqs = [e.seq for e in client.stream_logs("sim", prep.id, follow=False)]
        assert seqs == list(range(1, len(seqs) + 1)), "a log entry was lost or stored twice"
    print(f"\ncancel storm: {rounds} rounds, outcomes {outcomes}")
    assert rounds >= 100
    crashes = [r.getMessage() for r in caplog.records if "crashed" in r.getMessage() or "left" in r.getMessage()]
    assert not crashes
    # The server is free: a new preparation is accepted and can run to its end.
    behave(sim, "apt-get", "")
    assert wait_done(client, "sim", client.prepare("sim", docker_source="distro").id).state == pb.PREPARATION_STATE_SUCCEEDED


def test_a_log_of_huge_invalid_utf8_lines_stays_readable_by_every_client(service, client, sim, tmp_path):
    """2. 300 lines of 16,000 bytes of \\377 (each byte becomes U+FFFD, 3 bytes) made a StreamLogs
    message of 14 MB that every client refused ('Received message larger than max')."""
    register(client, sim)
    behave(sim, "apt-get", 'case "$*" in *update) i=0; while [ $i -lt 300 ]; do head -c 16000 /dev/zero | tr "\\000" "\\377"; '
                           'echo; i=$((i+1)); done;; esac')
    prep = client.prepare("sim", docker_source="distro")
    assert wait_done(client, "sim", prep.id).state == pb.PREPARATION_STATE_SUCCEEDED
    from serverprep.v1 import preparations_pb2_grpc as pb_grpc

    with grpc.insecure_channel(service.address) as channel:  # default limits: 4 MiB per message received
        stub = pb_grpc.PreparationServiceStub(channel)
        sizes, entries = [], 0
        for response in stub.StreamLogs(pb.StreamLogsRequest(server="sim", preparation_id=prep.id, no_follow=True)):
            sizes.append(response.ByteSize())
            entries += len(response.entries)
        resumed = next(stub.StreamLogs(pb.StreamLogsRequest(server="sim", preparation_id=prep.id, after_seq=5, no_follow=True)))
    wide = [e for e in client.stream_logs("sim", prep.id, follow=False) if len(e.text) == 16000]
    print(f"\nhuge lines: {len(wide)} stored; {len(sizes)} messages, largest {max(sizes):,} bytes, {entries} entries")
    assert len(wide) == 300 and set(wide[0].text) == {"\ufffd"}
    assert max(sizes) <= 1024 * 1024 + 64 * 1024
    assert resumed.entries[0].seq == 6
    import subprocess

    from conftest import GRPCURL

    out = subprocess.run([GRPCURL, "-plaintext", "-d", f'{{"server": "sim", "preparation_id": "{prep.id}", "no_follow": true}}',
                          service.address, "serverprep.v1.PreparationService/StreamLogs"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr[-500:]
    cli = subprocess.run([__import__("sys").executable, "-m", "serverprep.clients.cli", "--address", service.address, "logs", "sim"],
                         capture_output=True, text=True, timeout=120)
    assert cli.returncode == 0 and cli.stdout.count("\ufffd" * 100) >= 300, cli.stderr[-500:]


def _rss_kib(pid: int, field: str = "VmHWM") -> int:
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def test_facts_output_is_bounded_in_size_and_plans_in_number(tmp_path, sim):
    """5. A target whose `dpkg --print-architecture` printed 330 MB took the service from 70 to
    433 MiB and stored 316 MiB; four concurrent Plan calls peaked at 1.46 GiB."""
    from harness.service import service_process
    from serverprep.clients.client import Client

    behave(sim, "dpkg", 'case "$1" in --print-architecture) sleep 2; head -c 330000000 /dev/zero | tr "\\000" a; echo;; esac')
    with service_process(tmp_path, "--max-concurrent-plans", "2") as (proc, address), Client(address) as client:
        register(client, sim)
        before = _rss_kib(proc.pid)
        started = time.monotonic()
        failed = wait_done(client, "sim", client.prepare("sim", docker_source="distro").id, timeout=60)
        took = time.monotonic() - started
        assert (failed.failure.reason, failed.failure.step) == ("FACTS_FAILED", "detect_os")
        assert "dpkg --print-architecture with 'aaaa" in failed.failure.message
        import concurrent.futures

        def plan(_):
            try:
                client.plan("sim", docker_source="distro")
                return "planned"
            except ServerprepClientError as e:
                return e.reason

        with concurrent.futures.ThreadPoolExecutor(5) as pool:
            answers = sorted(pool.map(plan, range(5)))
        after = _rss_kib(proc.pid)
        db = sum(p.stat().st_size for p in tmp_path.glob("serverprep.db*"))
    print(f"\n330 MB of facts: FACTS_FAILED in {took:.1f}s; service peak RSS {before // 1024} -> {after // 1024} MiB; "
          f"database {db / 1e6:.1f} MB; 5 concurrent Plans with a limit of 2: {answers}")
    assert answers.count("TOO_MANY_PLANS") == 3 and answers.count("FACTS_FAILED") == 2
    assert after - before < 60 * 1024
    assert db < 20e6


def test_one_preparation_stores_a_bounded_log_and_says_what_it_dropped(tmp_path, sim):
    """5. ... and cap what one preparation may store, with a clear marker when output is cut."""
    from harness.service import ServiceThread

    svc = ServiceThread(tmp_path / "data", max_log_lines=300).start()
    try:
        with svc.client() as client:
            register(client, sim)
            behave(sim, "apt-get", 'case "$*" in *update) seq 1 2000;; esac')
            prep = client.prepare("sim", docker_source="distro")
            assert wait_done(client, "sim", prep.id).state == pb.PREPARATION_STATE_SUCCEEDED
            entries = list(client.stream_logs("sim", prep.id, follow=False))
    finally:
        svc.stop()
    output = [e for e in entries if e.stream != pb.LOG_STREAM_EVENT]
    notes = [e.text for e in entries if "not stored" in e.text]
    print(f"\nlog cap 300 lines: {len(output)} output lines stored of about 2,000; notes: {notes}")
    assert len(output) == 300
    assert any(n.startswith("output limit reached: this preparation stored 300 lines") for n in notes)
    assert any(n.endswith("lines of output were not stored (output limit)") for n in notes)


def test_a_five_megabyte_line_is_cut_and_reading_goes_on(client, sim):
    """7. One line over about 2 MB without a newline stopped the reader; the command blocked on write
    and the step ended in STEP_TIMEOUT with everything after the long line lost."""
    register(client, sim)
    behave(sim, "apt-get", 'case "$*" in *update) head -c 5000000 /dev/zero | tr "\\000" x; echo; echo "after the long line"; '
                           'printf "no newline at the end";; esac')
    prep = client.prepare("sim", docker_source="distro", step_timeout=60)
    done = wait_done(client, "sim", prep.id, timeout=90)
    assert done.state == pb.PREPARATION_STATE_SUCCEEDED, done.failure
    texts = [e.text for e in client.stream_logs("sim", prep.id, follow=False) if e.step == "update_packages"]
    long = [t for t in texts if t.startswith("xxxx")]
    assert len(long) == 1 and long[0].endswith("[line cut: longer than 16384 bytes]") and len(long[0]) == 16384
    assert "after the long line" in texts and "no newline at the end" in texts


def test_a_command_that_prints_without_end_is_stopped_at_its_output_budget(sim):
    """5. The service side of the bound: whatever a server prints, serverprep reads at most the budget."""
    import asyncio

    from serverprep.service import ssh
    from serverprep.service.domain import Secrets
    from serverprep.service.errors import OutputTooLarge

    async def go():
        target = ssh.Target(host=sim.host, port=sim.port, user=sim.user, secrets=Secrets(private_key=sim.key.private), host_key=sim.host_key)
        conn = await ssh.connect(target)
        lines = []
        try:
            started = time.monotonic()
            with pytest.raises(OutputTooLarge):
                await conn.run("yes serverprep", on_line=lambda stream, text: lines.append(text), timeout=30, max_output=1 << 20)
            return time.monotonic() - started, len(lines)
        finally:
            await conn.close()

    took, seen = asyncio.run(go())
    print(f"\nendless output stopped after {seen} lines in {took:.2f}s")
    assert seen <= (1 << 20) // len("serverprep\n") + 1 and took < 10


def test_no_secret_is_ever_in_a_command_line_on_the_target(client, sim):
    """3. Proxy passwords were in the argv of `sh -c env ... sudo -S ...` (any local user's ps showed
    them) and in sudo's argv, which real sudo writes to syslog. Every /proc/*/cmdline is read while
    each step runs (this simulation shares the host's process table)."""
    import threading
    from pathlib import Path

    proxy_pw, sudo_pw = "Prx-S3cret-4711", "Sudo-S3cret-4712"
    (sim.extra["sim"] / "sudo-password").write_text(sudo_pw)
    register(client, sim, sudo_password=sudo_pw)
    # The stand-ins check their environment against a file, so that the check itself has no secret in its argv.
    (sim.extra["sim"] / "expected-env").write_text(f"http_proxy=http://u:{proxy_pw}@proxy.example:3128\n")
    for tool in ("apt-get", "curl"):
        behave(sim, tool, 'env | grep -qxF -f "$SIM/expected-env" && '
                          'echo proxy-env-ok >> "$SIM/proxy-seen"; sleep 0.2; '
                          'while [ "$#" -gt 0 ]; do [ "$1" = -o ] && : > "$2"; shift; done; exit 0'.replace("$SIM", str(sim.extra["sim"])))
    seen, scans, stop, watched_to_the_end = set(), [0], threading.Event(), threading.Event()

    def watch():
        while not stop.is_set():
            # Not Path.glob: it stats each match, and a process that ends meanwhile raises from
            # the glob itself (ProcessLookupError), which ended this thread and the watch with it.
            for pid in [d for d in os.listdir("/proc") if d.isdigit()]:
                try:
                    text = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
                except OSError:  # ended meanwhile
                    continue
                if proxy_pw in text or sudo_pw in text:
                    seen.add(text[:200])
            scans[0] += 1
        watched_to_the_end.set()

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        prep = client.prepare("sim", docker_source="official", http_proxy=f"http://u:{proxy_pw}@proxy.example:3128",
                              https_proxy=f"http://u:{proxy_pw}@proxy.example:3128")
        done = wait_done(client, "sim", prep.id)
    finally:
        stop.set()
        watcher.join()
    assert done.state == pb.PREPARATION_STATE_SUCCEEDED, done.failure
    proxied = (sim.extra["sim"] / "proxy-seen").read_text().count("proxy-env-ok")
    print(f"\n/proc scanned {scans[0]} times during the preparation; commands that got the proxy in their environment: {proxied}")
    assert not seen, seen
    assert watched_to_the_end.is_set() and scans[0] > 0  # the watch did not die halfway
    assert proxied >= 3  # apt-get update, install; curl for the key
    recorded = (sim.extra["sim"] / "calls").read_text()
    assert proxy_pw not in recorded and sudo_pw not in recorded
    logs = " ".join(e.text for e in client.stream_logs("sim", prep.id, follow=False))
    assert proxy_pw not in logs and "http://***@proxy.example:3128" in logs


def test_a_second_service_with_the_same_replica_name_refuses_to_start(tmp_path, sim):
    """6. Service B started on service A's data directory (same default --replica) marked A's live
    preparation INTERRUPTED and ran a second preparation of the same server at once."""
    import subprocess
    import sys

    from harness.service import service_process
    from serverprep.clients.client import Client

    with service_process(tmp_path) as (a, address), Client(address) as client:
        register(client, sim)
        behave(sim, "apt-get", "sleep 5")
        prep = client.prepare("sim", docker_source="distro")
        wait_step(client, "sim", "update_packages", pb.STEP_STATE_RUNNING)
        b = subprocess.run([sys.executable, "-m", "serverprep.service", "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path)],
                           capture_output=True, text=True, timeout=60)
        print(f"\nsecond service: exit {b.returncode}: {b.stderr.strip()}")
        assert b.returncode != 0
        assert f"is in use by pid {a.pid} on this host" in b.stderr and "--replica" in b.stderr
        assert client.status("sim", prep.id).state == pb.PREPARATION_STATE_RUNNING  # A's work untouched
        behave(sim, "apt-get", "")
        assert wait_done(client, "sim", prep.id).state == pb.PREPARATION_STATE_SUCCEEDED
        # Another name is welcome on the same database: it shares the work without taking A's.
        with service_process(tmp_path, "--replica", "other") as (_, other_address), Client(other_address) as other:
            assert other.status("sim", prep.id).state == pb.PREPARATION_STATE_SUCCEEDED
        a.kill()
        a.wait()
    # A died without letting go of its name: a new process on this host sees it is gone at once.
    with service_process(tmp_path) as (_, address), Client(address) as client:
        assert client.status("sim", prep.id).state == pb.PREPARATION_STATE_SUCCEEDED


def _violation(error: ServerprepClientError, field: str) -> str:
    assert (error.code, error.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "INVALID_ARGUMENT"), error
    return error.violations[field]


def test_a_trailing_newline_is_not_part_of_a_valid_value(client, sim):
    """9. `^...$` with re.match accepted 'web1\\n' (stored beside web1) and a repository_url ending in a
    newline (written into a deb822 file on the target)."""
    with pytest.raises(ServerprepClientError) as e:
        register(client, sim, "web1\n")
    assert _violation(e.value, "name")
    register(client, sim, "web1")
    for field, value in (("repository_url", "https://mirror.example/docker\n"), ("docker_version", "27.3\n"),
                         ("http_proxy", "http://proxy:3128\n"), ("no_proxy", "localhost\n")):
        with pytest.raises(ServerprepClientError) as e:
            client.prepare("web1", **{field: value})
        assert _violation(e.value, f"options.{field}")
    with pytest.raises(ServerprepClientError) as e:
        client.prepare("web1", request_id="id-1\n")
    assert _violation(e.value, "request_id")


def test_an_ipv6_scope_id_is_an_interface_name_and_hosts_are_short(client, sim):
    """10. A host given as an IPv6 literal accepted any scope id text (backticks, $(), newlines) and any length."""
    for host in ("fe80::1%`id`", "fe80::1%$(touch /tmp/x)", "fe80::1%eth0\nx", "fe80::1%" + "a" * 3_000_000):
        with pytest.raises(ServerprepClientError) as e:
            register(client, sim, "v6", host=host)
        assert _violation(e.value, "host")
    assert register(client, sim, "v6", host="fe80::1%eth0").host == "fe80::1%eth0"


def test_a_key_encrypted_by_ssh_keygen_by_default_is_accepted_and_used(client, sim, tmp_path):
    """11. ssh-keygen's default encryption (bcrypt KDF) was refused: bcrypt was missing."""
    import subprocess

    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "phrase-4711", "-f", str(tmp_path / "k")], check=True)
    with open(sim.root / "authorized_keys", "a") as keys:
        keys.write((tmp_path / "k.pub").read_text())
    register(client, sim, "bcrypt", private_key=(tmp_path / "k").read_text(), private_key_passphrase="phrase-4711")
    done = wait_done(client, "bcrypt", client.prepare("bcrypt", docker_source="distro").id)
    assert done.state == pb.PREPARATION_STATE_SUCCEEDED, done.failure


def test_tampered_page_tokens_are_invalid_arguments(client, sim):
    """12. Tampered page_tokens answered UNKNOWN with tracebacks (OverflowError, RecursionError)."""
    import base64

    register(client, sim)

    def token(text: str) -> str:
        return base64.urlsafe_b64encode(text.encode()).decode()

    bad = [token("[" * 200 + "]" * 200), token(f"[{10 ** 400}, \"{'a' * 32}\"]"), token(f"[1e999, \"{'a' * 32}\"]"),
           token("[NaN, \"x\"]"), token("[true, \"x\"]"), token('"x"' * 400), "!!!", token("[1.5]"), "A" * 10_000]
    for page_token in bad:
        for call in (lambda t: client.servers.ListServers(__import__("serverprep.v1.servers_pb2", fromlist=["x"]).ListServersRequest(page_token=t)),
                     lambda t: client.preparations.ListPreparations(pb.ListPreparationsRequest(server="sim", page_token=t))):
            with pytest.raises(grpc.RpcError) as e:
                call(page_token)
            assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT, (page_token[:40], e.value.details())


def test_short_secrets_are_masked_where_a_target_echoes_them(client, sim):
    """13. Secrets shorter than 4 characters were shown in clear when a target echoed them."""
    (sim.extra["sim"] / "sudo-password").write_text("ab1")
    register(client, sim, sudo_password="ab1")
    behave(sim, "apt-get", 'echo "the sudo password is ab1, and abc1 is another word"')
    prep = client.prepare("sim", docker_source="distro")
    assert wait_done(client, "sim", prep.id).state == pb.PREPARATION_STATE_SUCCEEDED
    texts = [e.text for e in client.stream_logs("sim", prep.id, follow=False)]
    assert "the sudo password is ********, and abc1 is another word" in texts


def test_a_request_id_reused_with_other_options_is_refused(client, sim):
    """14. Reusing a request_id with different options silently returned the earlier preparation (AIP-155)."""
    register(client, sim)
    first = client.prepare("sim", docker_source="distro", request_id="deploy-1")
    assert client.prepare("sim", docker_source="distro", request_id="deploy-1").id == first.id
    with pytest.raises(ServerprepClientError) as e:
        client.prepare("sim", docker_source="official", request_id="deploy-1")
    assert (e.value.code, e.value.reason) == (grpc.StatusCode.ALREADY_EXISTS, "REQUEST_ID_REUSED")
    assert e.value.metadata["preparation_id"] == first.id


def test_a_deleted_database_is_noticed_and_a_broken_key_file_is_told(tmp_path, sim):
    """14. Deleting the database files while the service ran: writes were acknowledged and health stayed
    SERVING (everything gone after a restart). A truncated secret.key crashed start-up with a traceback."""
    import subprocess
    import sys

    from harness.service import service_process
    from serverprep.clients.client import Client

    with service_process(tmp_path, "--stale-after", "2") as (_, address), Client(address) as client:
        register(client, sim)
        for path in tmp_path.glob("serverprep.db*"):
            path.unlink()
        with pytest.raises(ServerprepClientError) as e:
            register(client, sim, "after")
        assert (e.value.code, e.value.reason) == (grpc.StatusCode.UNAVAILABLE, "STORAGE_ERROR")
        assert "was removed or replaced" in e.value.message
        deadline = time.monotonic() + 10
        while client.health() == "SERVING" and time.monotonic() < deadline:
            time.sleep(0.2)
        assert client.health() == "NOT_SERVING"
    key = tmp_path / "secret.key"
    key.write_bytes(key.read_bytes()[:20])
    out = subprocess.run([sys.executable, "-m", "serverprep.service", "--listen", "127.0.0.1:0", "--data-dir", str(tmp_path)],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert "secret.key is not a usable key" in out.stderr and "restore it from the backup" in out.stderr


def test_idle_unauthenticated_connections_cannot_exhaust_descriptors(tmp_path, sim):
    """4. Under ulimit -n 1024 with a token set, 1,100 TCP connections that sent nothing exhausted the
    descriptors ('File descriptor limit reached') and a Prepare failed INTERNAL."""
    import os
    import resource
    import socket
    import subprocess
    import sys

    from harness.service import wait_serving
    from harness.targets import free_port
    from serverprep.clients.client import Client

    def small_limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (1024, 1024))

    port = free_port()
    address = f"127.0.0.1:{port}"
    env = {**os.environ, "SERVERPREP_TOKEN": "t0ken-4711"}
    log = open(tmp_path / "service.log", "wb")
    proc = subprocess.Popen([sys.executable, "-m", "serverprep.service", "--listen", address, "--data-dir", str(tmp_path),
                             "--handshake-timeout", "3"], env=env, preexec_fn=small_limit, stdout=log, stderr=subprocess.STDOUT)
    idle: list[socket.socket] = []
    try:
        wait_serving(address, proc)
        with Client(address, token="t0ken-4711") as client:
            register(client, sim)
            behave(sim, "apt-get", "sleep 4")
            prep = client.prepare("sim", docker_source="distro")
            wait_step(client, "sim", "update_packages", pb.STEP_STATE_RUNNING)
        for _ in range(1100):  # while the preparation runs and will need descriptors for verify_docker's SSH
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex(("127.0.0.1", port))
            idle.append(s)
        time.sleep(1)
        held = len(os.listdir(f"/proc/{proc.pid}/fd"))
        time.sleep(4)  # past the handshake timeout: the silent ones are dropped
        with Client(address, token="t0ken-4711") as client:
            done = wait_done(client, "sim", prep.id, timeout=60)
            assert done.state == pb.PREPARATION_STATE_SUCCEEDED, done.failure
            after = len(os.listdir(f"/proc/{proc.pid}/fd"))
            assert client.health() == "SERVING"
    finally:
        for s in idle:
            s.close()
        proc.terminate()
        proc.wait(30)
        log.close()
    text = (tmp_path / "service.log").read_text()
    print(f"\n1,100 silent connections under ulimit -n 1024 during a preparation: service held {held} descriptors, "
          f"{after} after the handshake timeout; the preparation SUCCEEDED")
    assert "File descriptor limit" not in text and "Traceback" not in text
    assert held < 1024 and after < 200


def test_long_lines_do_not_fill_the_services_memory(tmp_path, sim):
    """The live window kept 10,000 entries (20,000 before a trim) whatever their size, so a step
    printing 16 KiB lines held up to 320 MB per preparation in the service. It is now bounded by
    --stream-backlog-bytes too (4 MiB by default), and long lines are stored without waiting."""
    from harness.service import service_process
    from serverprep.clients.client import Client

    behave(sim, "apt-get", 'case "$*" in *update) i=0; while [ $i -lt 4000 ]; do head -c 16000 /dev/zero | tr "\\000" x; '
                           'echo; i=$((i+1)); done;; esac')
    with service_process(tmp_path) as (proc, address), Client(address) as client:
        register(client, sim)
        before = _rss_kib(proc.pid, "VmRSS")
        done = wait_done(client, "sim", client.prepare("sim", docker_source="distro").id, timeout=120)
        peak = _rss_kib(proc.pid)
        stored = sum(1 for e in client.stream_logs("sim", done.id, follow=False) if len(e.text) == 16000)
    print(f"\n4,000 lines of 16,000 characters (64 MB): service RSS {before // 1024} MiB before, peak {peak // 1024} MiB; "
          f"{stored} lines stored")
    assert done.state == pb.PREPARATION_STATE_SUCCEEDED
    assert stored == 4000
    assert peak - before < 40 * 1024
