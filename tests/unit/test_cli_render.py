"""The CLI's pure parts as tables: control characters made visible, the follow view, host keys, argument checks, help."""

from __future__ import annotations

import argparse
import io

import pytest
from google.protobuf.timestamp_pb2 import Timestamp

from serverprep.clients import InvalidArgumentError, messages
from serverprep.clients.cli import build_parser
from serverprep.clients.cli.common import CliError
from serverprep.clients.cli.completion import walk
from serverprep.clients.cli.follow import LogView, TailCollector
from serverprep.clients.cli.servers import host_key_from
from serverprep.clients.cli.terminal import Style, visible
from serverprep.clients.types import (
    LOG_STREAM_EVENT,
    LOG_STREAM_STDERR,
    LOG_STREAM_STDOUT,
    PREPARATION_STATE_RUNNING,
    STEP_STATE_FAILED,
    STEP_STATE_RUNNING,
    STEP_STATE_SUCCEEDED,
    LogEntry,
)

KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFsJX6Mg0bvmTHe3LUNQbnLxlOSsdIq1vUP4N0DxIK8P"


@pytest.mark.parametrize("raw, shown", [
    ("plain text, tabs\tkept", "plain text, tabs\tkept"),
    ("\033]0;TITLE\007", "^[]0;TITLE^G"),  # window title
    ("\033[2J\033[H", "^[[2J^[[H"),  # clear screen, cursor home
    ("\033]52;c;ZWNobyBwd25lZA==\007", "^[]52;c;ZWNobyBwd25lZA==^G"),  # OSC 52: set the clipboard
    ("\033]52;c;ZWNobyBwd25lZA==\033\\", "^[]52;c;ZWNobyBwd25lZA==^[\\"),  # ... ended by ST
    ("\x9b2J \x9d0;t\x9c", "\\x9b2J \\x9d0;t\\x9c"),  # the 8-bit C1 forms of CSI, OSC, ST
    ("a\rb", "a^Mb"),  # a CR would let a line overwrite what is before it
    ("CRLF line\r", "CRLF line"),
    ("bell\x07 nul\x00 del\x7f bs\x08", "bell^G nul^@ del^? bs^H"),
    ("two\nlines", "two^Jlines"),
    ("evil\u202eexe.txt \u2066x\u2069", "evil<U+202E>exe.txt <U+2066>x<U+2069>"),  # bidi overrides
    ("ünïcödé ✔ 日本", "ünïcödé ✔ 日本"),
])
def test_visible_shows_control_characters_instead_of_obeying_them(raw, shown):
    assert visible(raw) == shown
    assert not any(ord(c) < 0x20 and c != "\t" or 0x7F <= ord(c) <= 0x9F for c in visible(raw))


def entry(seq, step, stream, text, step_state=0, prep_state=0):
    return LogEntry(seq=seq, time=Timestamp(seconds=1_700_000_000), step=step, stream=stream, text=text,
                    step_state=step_state, preparation_state=prep_state)


FACTS_RUN = [
    entry(1, "", LOG_STREAM_EVENT, "preparation RUNNING (attempt 1)", prep_state=PREPARATION_STATE_RUNNING),
    entry(2, "detect_os", LOG_STREAM_EVENT, "detect_os RUNNING", STEP_STATE_RUNNING),
    entry(3, "detect_os", LOG_STREAM_EVENT, "connecting over SSH to admin@10.0.0.5:22"),
    entry(4, "detect_os", LOG_STREAM_STDOUT, "os-release"),
    entry(5, "detect_os", LOG_STREAM_STDOUT, 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"'),
    entry(6, "detect_os", LOG_STREAM_STDOUT, "has apt-get"),
    entry(7, "detect_os", LOG_STREAM_EVENT, "detect_os SUCCEEDED: detected Debian GNU/Linux 12", STEP_STATE_SUCCEEDED),
    entry(8, "update_packages", LOG_STREAM_EVENT, "update_packages RUNNING", STEP_STATE_RUNNING),
    entry(9, "update_packages", LOG_STREAM_EVENT, "$ apt-get update"),
    entry(10, "update_packages", LOG_STREAM_STDERR, "W: old warning"),
    entry(11, "update_packages", LOG_STREAM_EVENT, "$ apt-get install docker.io"),
    entry(12, "update_packages", LOG_STREAM_STDOUT, "Reading package lists..."),
    entry(13, "update_packages", LOG_STREAM_STDERR, "E: Unable to locate package docker.io"),
    entry(14, "update_packages", LOG_STREAM_EVENT, "command failed; diagnostics follow"),
    entry(15, "update_packages", LOG_STREAM_STDERR, "diagnostic output"),
    entry(16, "update_packages", LOG_STREAM_EVENT, "update_packages FAILED: STEP_FAILED: ...", STEP_STATE_FAILED),
]
STEPS = ["detect_os", "update_packages", "install_docker"]


def test_follow_view_folds_the_facts_counts_steps_and_keeps_the_failed_commands_stderr():
    out = io.StringIO()
    view = LogView(out, Style(False), STEPS, fold_facts=True, as_json=False)
    for e in FACTS_RUN:
        view(e)
    lines = out.getvalue().splitlines()
    assert [line.split()[1] for line in lines] == ["1", "2", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16"]
    assert "▶ step 1/3 detect_os RUNNING" in lines[1]
    assert "✔ step 1/3 detect_os SUCCEEDED: detected Debian GNU/Linux 12" in lines[2]
    assert "✘ step 2/3 update_packages FAILED" in lines[-1]
    assert view.tails.tail("update_packages") == ["E: Unable to locate package docker.io"]
    assert view.last_seq == 16


def test_unfolded_view_shows_every_line_and_json_keeps_the_raw_text():
    out = io.StringIO()
    view = LogView(out, Style(False), STEPS, fold_facts=False, as_json=False)
    for e in FACTS_RUN:
        view(e)
    assert len(out.getvalue().splitlines()) == len(FACTS_RUN)

    import json

    out = io.StringIO()
    view = LogView(out, Style(True), STEPS, fold_facts=True, as_json=True)
    view(entry(1, "install_docker", LOG_STREAM_STDOUT, "\033]52;c;QUJD\007"))
    assert json.loads(out.getvalue()) == {"entry": {
        "seq": 1, "time": "2023-11-14T22:13:20Z", "step": "install_docker", "stream": "STDOUT", "text": "\033]52;c;QUJD\007",
        "step_state": None, "preparation_state": None}}


def test_colours_are_ours_only():
    out = io.StringIO()
    LogView(out, Style(True), STEPS, fold_facts=False, as_json=False)(entry(3, "install_docker", LOG_STREAM_STDERR, "\033[31mred\033[0m"))
    line = out.getvalue()
    assert "^[[31mred^[[0m" in line
    assert line.count("\033[") == 4  # dim and reset around the stamp, red and reset around the line


def test_tail_after_retry_is_the_new_attempts():
    tails = TailCollector()
    for e in FACTS_RUN:
        tails.feed(e)
    tails.feed(entry(17, "update_packages", LOG_STREAM_EVENT, "update_packages RUNNING", STEP_STATE_RUNNING))
    tails.feed(entry(18, "update_packages", LOG_STREAM_STDOUT, "only stdout this time"))
    assert tails.tail("update_packages") == []


@pytest.mark.parametrize("given, key, host", [
    (KEY, KEY, ""),
    (f"{KEY} admin@laptop", KEY, ""),
    (f"203.0.113.10 {KEY}", KEY, "203.0.113.10"),
    (f"[203.0.113.10]:2222 {KEY}", KEY, "[203.0.113.10]:2222"),
    (f"# 203.0.113.10:22 SSH-2.0-OpenSSH_9.2p1 Debian-2\n203.0.113.10 {KEY}\n", KEY, "203.0.113.10"),
    (f"web1,203.0.113.10 {KEY}", KEY, "web1,203.0.113.10"),
    ("|1|F1E1KeoE/eEWhi10WpGv4OdiO6Y=|3988QV0VE8wmZL7suNrYQLITLCg= " + KEY, KEY, "|1|F1E1KeoE/eEWhi10WpGv4OdiO6Y=|3988QV0VE8wmZL7suNrYQLITLCg="),
    ("sk-ssh-ed25519@openssh.com AAAAGnNr", "sk-ssh-ed25519@openssh.com AAAAGnNr", ""),
    ("h ecdsa-sha2-nistp256 AAAAE2Vj", "ecdsa-sha2-nistp256 AAAAE2Vj", "h"),
])
def test_host_key_accepts_ssh_keyscan_lines_as_they_are(given, key, host):
    assert host_key_from(given) == (key, host)


@pytest.mark.parametrize("given, why", [
    ("", "is empty"),
    ("# only a comment", "is empty"),
    (f"h {KEY}\nh ssh-rsa AAAAB3Nza", "got 2 keys (ssh-ed25519, ssh-rsa)"),
    ("AAAAC3NzaC1lZDI1NTE5", "expected 'TYPE BASE64'"),
    ("host notakey AAAA", "expected 'TYPE BASE64'"),
    (f"@cert-authority *.example.com {KEY}", "is not a host key"),
])
def test_host_key_refusals_are_specific(given, why):
    with pytest.raises(CliError) as e:
        host_key_from(given)
    assert why in str(e.value) and e.value.code == 2


@pytest.mark.parametrize("call, field", [
    (lambda: messages.prepare_options(docker_source="bogus"), "docker_source"),
    (lambda: messages.prepare_options(docker_source=True), "docker_source"),
    (lambda: messages.prepare_options(docker_source=7), "docker_source"),
    (lambda: messages.prepare_options(step_timeout="60"), "step_timeout"),
    (lambda: messages.prepare_options(step_timeout=-1), "step_timeout"),
    (lambda: messages.prepare_options(step_timeout=2**32), "step_timeout"),
    (lambda: messages.prepare_options(http_proxy=3128), "http_proxy"),
    (lambda: messages.prepare("web1", None, messages.prepare_options()), "request_id"),  # type: ignore[arg-type]
    (lambda: messages.update_server("web1", {"hots": "10.0.0.1"}), "hots"),
    (lambda: messages.update_server("web1", {"port": "22"}), "port"),
    (lambda: messages.update_server("web1", {"port": True}), "port"),
    (lambda: messages.update_server("web1", {"accept_new_host_key": 1}), "accept_new_host_key"),
    (lambda: messages.update_server("web1", {}), "update_mask"),
    (lambda: messages.update_server(42, {"host": "h"}), "name"),  # type: ignore[arg-type]
    (lambda: messages.stream_logs("web1", "", -1, True), "after_seq"),
    (lambda: messages.list_servers(0, ""), "page_size"),
    (lambda: messages.create_server("w", host="h", user="u", port=70000, private_key="", private_key_passphrase="",
                                    password="", sudo_password="", host_key="", accept_new_host_key=False), "port"),
])
def test_arguments_that_cannot_be_sent_are_invalid_argument_errors(call, field):
    with pytest.raises(InvalidArgumentError) as e:
        call()
    assert field in e.value.violations
    assert isinstance(e.value, ValueError) and e.value.reason == "INVALID_ARGUMENT" and e.value.metadata == {"origin": "client"}


def test_unknown_update_field_suggests_the_known_one():
    with pytest.raises(InvalidArgumentError) as e:
        messages.update_server("web1", {"hots": "10.0.0.1"})
    assert "did you mean 'host'?" in e.value.violations["hots"]


def test_update_mask_names_exactly_the_changes():
    request = messages.update_server("web1", {"host": "10.0.0.6", "sudo_password": "", "accept_new_host_key": True})
    assert list(request.update_mask.paths) == ["host", "credentials.sudo_password", "accept_new_host_key"]
    assert messages.UPDATABLE == {"host": str, "port": int, "user": str, "private_key": str, "private_key_passphrase": str,
                                  "password": str, "sudo_password": str, "host_key": str, "accept_new_host_key": bool}


def _parsers(parser: argparse.ArgumentParser, path: str = "serverprep"):
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            helped = {a.dest for a in action._choices_actions}
            for name, sub in action.choices.items():
                if name in helped:
                    yield from _parsers(sub, f"{path} {name}")


CLIENT_COMMANDS = {"servers", "prepare", "status", "logs", "retry", "cancel", "preparations", "health", "version", "completion"}


def test_every_client_command_has_examples_and_every_flag_has_help():
    for path, parser in _parsers(build_parser()):
        words = path.split()
        if len(words) > 1 and words[1] not in CLIENT_COMMANDS:
            continue  # another package's command (the service's serve, plan, drivers)
        assert parser.epilog and "examples:" in parser.epilog, f"{path} has no examples"
        for action in parser._actions:
            assert action.help and action.help != argparse.SUPPRESS, f"{path}: {action.option_strings or action.dest} has no help"


def test_every_command_takes_the_output_flag_before_or_after_it():
    parser = build_parser()
    for path, sub in _parsers(parser):
        if not sub._subparsers and path != "serverprep":
            assert any("--output" in a.option_strings for a in sub._actions), path
    assert parser.parse_args(["-o", "json", "status", "web1"]).output == "json"
    assert parser.parse_args(["status", "web1", "-o", "json"]).output == "json"
    assert parser.parse_args(["--address", "h:1", "servers", "list", "--color", "never"]).address == "h:1"


def test_completion_tree_sees_every_command_and_choice():
    tree = walk(build_parser())
    assert {"", "servers", "servers add", "servers update", "prepare", "status", "logs", "completion"} <= set(tree)
    assert set(tree["servers"].subcommands) == {"add", "update", "list", "show", "rm"}
    assert tree["status"].positional == "server" and tree["servers add"].positional == ""
    assert tree["completion"].positional == "bash zsh fish"
    prepare = {f: o for o in tree["prepare"].options for f in o.flags}
    assert prepare["--docker-source"].choices == ["official", "distro"]
    assert prepare["-o"].choices == ["text", "json"] and prepare["--token-file"].kind == "file"
    assert not prepare["--follow"].takes_value and prepare["--request-id"].takes_value
