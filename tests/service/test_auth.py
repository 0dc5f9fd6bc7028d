"""API access: bearer token (unary and streaming), TLS, mutual TLS, and refusing to be exposed."""

import dataclasses
import os
import subprocess
import sys

import grpc
import pytest

from conftest import GRPCURL
from harness.service import ServiceThread
from harness.tls import make_pki
from serverprep.clients.client import Client, ServerprepClientError
from serverprep.service.auth import check_exposure
from serverprep.service.errors import InsecureListen


def start(tmp_path, **settings):
    svc = ServiceThread(tmp_path / "data")
    svc.settings = dataclasses.replace(svc.settings, **settings)
    return svc.start()


def test_token_guards_unary_and_streaming_calls_but_not_health(tmp_path):
    svc = start(tmp_path, token="s3cret-token")
    try:
        with Client(svc.address, token="") as anonymous, Client(svc.address, token="wrong") as wrong:
            for client in (anonymous, wrong):
                with pytest.raises(ServerprepClientError) as e:
                    list(client.list_servers())
                assert (e.value.code, e.value.reason) == (grpc.StatusCode.UNAUTHENTICATED, "UNAUTHENTICATED")
                with pytest.raises(ServerprepClientError) as e:
                    list(client.stream_logs("web1", "0" * 32, resume=False))
                assert e.value.code == grpc.StatusCode.UNAUTHENTICATED
            assert anonymous.health() == "SERVING"
        with Client(svc.address, token="s3cret-token") as good:
            assert list(good.list_servers()) == []
            with pytest.raises(ServerprepClientError) as e:
                list(good.stream_logs("web1", "0" * 32, resume=False))
            assert e.value.reason == "SERVER_NOT_FOUND"  # past the token check
    finally:
        svc.stop()


def test_tls_and_mutual_tls(tmp_path):
    pki = make_pki(tmp_path)
    svc = start(tmp_path, tls_cert=pki["server_cert"], tls_key=pki["server_key"], tls_client_ca=pki["ca"])
    try:
        with Client(svc.address, tls_ca=str(pki["ca"]), tls_cert=str(pki["client_cert"]), tls_key=str(pki["client_key"]), timeout=5) as ok:
            assert list(ok.list_servers()) == []
        with Client(svc.address, tls_ca=str(pki["ca"]), timeout=5) as no_client_cert:
            with pytest.raises(ServerprepClientError) as e:
                list(no_client_cert.list_servers())
            assert e.value.code == grpc.StatusCode.UNAVAILABLE
        with Client(svc.address, timeout=5) as plaintext:
            with pytest.raises(ServerprepClientError):
                list(plaintext.list_servers())
    finally:
        svc.stop()


def test_grpcurl_over_tls(tmp_path):
    pki = make_pki(tmp_path)
    svc = start(tmp_path, tls_cert=pki["server_cert"], tls_key=pki["server_key"], token="tok-123")
    try:
        out = subprocess.run([GRPCURL, "-cacert", str(pki["ca"]), "-H", "authorization: Bearer tok-123", svc.address,
                              "serverprep.v1.ServerService/ListServers"], capture_output=True, text=True, timeout=30)
        assert out.returncode == 0, out.stderr
    finally:
        svc.stop()


@pytest.mark.parametrize("listen, ok", [("127.0.0.1:50051", True), ("[::1]:50051", True), ("localhost:1", True),
                                        ("0.0.0.0:50051", False), ("10.1.2.3:50051", False), ("[::]:50051", False)])
def test_exposure_check(listen, ok):
    if ok:
        check_exposure(listen, tls=False, token=False, insecure=False)
    else:
        with pytest.raises(InsecureListen, match="refusing to listen"):
            check_exposure(listen, tls=False, token=False, insecure=False)
        check_exposure(listen, tls=True, token=False, insecure=False)
        check_exposure(listen, tls=False, token=True, insecure=False)
        check_exposure(listen, tls=False, token=False, insecure=True)


def test_serve_refuses_a_public_address_in_the_clear(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("SERVERPREP_TOKEN", "SERVERPREP_INSECURE")}
    out = subprocess.run([sys.executable, "-m", "serverprep.clients.cli", "serve", "--listen", "0.0.0.0:0", "--data-dir", str(tmp_path)],
                         capture_output=True, text=True, env=env, timeout=60)
    assert out.returncode == 2
    assert "refusing to listen on 0.0.0.0:0 without TLS or a token" in out.stderr
    assert "Traceback" not in out.stderr
