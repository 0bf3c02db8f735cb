"""HttpTransport against a real local HTTP server: headers, redirects, streams and error mapping."""

from __future__ import annotations

import base64
import ssl
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from framework.mesos.errors import ConnectionLost, MasterUnavailable, RequestTimeout
from framework.mesos.recordio import RecordIODecoder
from framework.mesos.transport import EventStream, HttpTransport, redact_url
from framework.testing.scripted_server import Drop, Redirect, Respond, ScriptedServer, Stream

SCHEDULER_PATH = "/api/v1/scheduler"

pytestmark = pytest.mark.usefixtures("no_thread_leak")

BASIC = "Basic " + base64.b64encode(b"steward:s3cr3t-pw").decode()
HEARTBEAT = b'{"type":"HEARTBEAT"}'


def read_records(stream: EventStream, count: int) -> list[bytes]:
    decoder = RecordIODecoder()
    records: list[bytes] = []
    for chunk in stream.chunks():
        records.extend(decoder.feed(chunk))
        if len(records) >= count:
            break
    return records


# --- short calls --------------------------------------------------------------------------------


def test_a_call_sends_exact_json_headers_and_authorization(
    server: ScriptedServer, transport: HttpTransport
) -> None:
    response = transport.post(server.endpoint(SCHEDULER_PATH), b'{"type":"REVIVE"}')
    assert response.status == 202
    assert response.url == server.endpoint(SCHEDULER_PATH)
    (request,) = server.requests
    assert request.method == "POST"
    assert request.path == SCHEDULER_PATH
    assert request.body == b'{"type":"REVIVE"}'
    assert request.headers.get_all("Content-Type") == ["application/json"]
    assert request.headers.get_all("Accept") == ["application/json"]
    assert request.headers["Authorization"] == BASIC
    assert request.headers["User-Agent"].startswith("steward/")


def test_extra_headers_are_sent_and_cannot_replace_authorization(
    server: ScriptedServer, transport: HttpTransport
) -> None:
    transport.post(
        server.endpoint(SCHEDULER_PATH), b"{}", headers={"Mesos-Stream-Id": "sid-1", "Authorization": "x"}
    )
    (request,) = server.requests
    assert request.headers["Mesos-Stream-Id"] == "sid-1"
    assert request.headers["Authorization"] == BASIC


def test_a_bearer_token_is_sent_as_such(server: ScriptedServer) -> None:
    transport = HttpTransport(bearer_token="tok-123")
    try:
        transport.post(server.endpoint("/api/v1/executor"), b"{}")
    finally:
        transport.close()
    assert server.requests[0].headers["Authorization"] == "Bearer tok-123"


def test_no_authorization_header_without_credentials(server: ScriptedServer) -> None:
    transport = HttpTransport()
    try:
        transport.post(server.endpoint(SCHEDULER_PATH), b"{}")
    finally:
        transport.close()
    assert "Authorization" not in server.requests[0].headers


def test_error_statuses_are_returned_with_their_body_not_raised(
    server: ScriptedServer, transport: HttpTransport
) -> None:
    server.on(None, Respond(400, b"Framework cannot be found"))
    response = transport.post(server.endpoint(SCHEDULER_PATH), b"{}")
    assert response.status == 400
    assert response.text == "Framework cannot be found"


def test_a_protocol_relative_307_is_followed_by_hand_keeping_authorization(
    make_server: Callable[[], ScriptedServer], transport: HttpTransport
) -> None:
    follower, leader = make_server(), make_server()
    follower.on(None, Redirect(f"//127.0.0.1:{leader.port}{SCHEDULER_PATH}"))
    response = transport.post(follower.endpoint(SCHEDULER_PATH), b'{"type":"DECLINE"}')
    assert response.status == 202
    assert response.url == leader.endpoint(SCHEDULER_PATH)
    (redirected,) = leader.requests
    assert redirected.body == b'{"type":"DECLINE"}'
    assert redirected.headers["Authorization"] == BASIC
    assert redirected.headers["Content-Type"] == "application/json"
    assert follower.requests[0].headers["Authorization"] == BASIC


def test_a_redirect_loop_ends_as_master_unavailable(server: ScriptedServer) -> None:
    server.on(None, Redirect(SCHEDULER_PATH))
    transport = HttpTransport(max_redirects=3)
    try:
        with pytest.raises(MasterUnavailable, match="redirects"):
            transport.post(server.endpoint(SCHEDULER_PATH), b"{}")
    finally:
        transport.close()
    assert len(server.requests) == 4


def test_redirects_are_returned_when_following_is_off(
    server: ScriptedServer, transport: HttpTransport
) -> None:
    server.on(None, Redirect("//elsewhere:5050/api/v1/scheduler"))
    response = transport.post(server.endpoint(SCHEDULER_PATH), b"{}", follow_redirects=False)
    assert response.status == 307
    assert response.headers["location"] == "//elsewhere:5050/api/v1/scheduler"


def test_connection_refused_is_connection_lost(transport: HttpTransport) -> None:
    probe = ScriptedServer()
    url = probe.endpoint(SCHEDULER_PATH)
    probe.close()  # the port is now closed
    with pytest.raises(ConnectionLost):
        transport.post(url, b"{}")


def test_a_dropped_connection_is_connection_lost(server: ScriptedServer, transport: HttpTransport) -> None:
    server.on(None, Drop())
    with pytest.raises(ConnectionLost):
        transport.post(server.endpoint(SCHEDULER_PATH), b"{}")


def test_a_slow_answer_is_a_request_timeout(server: ScriptedServer) -> None:
    server.on(None, Respond(202, delay=2.0))
    transport = HttpTransport(call_timeout=0.2)
    try:
        with pytest.raises(RequestTimeout):
            transport.post(server.endpoint(SCHEDULER_PATH), b"{}")
    finally:
        transport.close()


def test_the_secret_appears_in_no_repr_or_error(transport: HttpTransport) -> None:
    assert "s3cr3t-pw" not in repr(transport)
    assert BASIC.split()[1] not in repr(transport)
    assert "steward" in repr(transport)  # the principal is not a secret
    with pytest.raises(ConnectionLost) as caught:
        transport.post("http://user:pw-in-url@127.0.0.1:9/x", b"{}")
    assert "s3cr3t-pw" not in str(caught.value)
    assert "pw-in-url" not in str(caught.value)


def test_redact_url_removes_userinfo_only() -> None:
    assert redact_url("https://u:p@master:5050/api") == "https://master:5050/api"
    assert redact_url("http://master:5050/api") == "http://master:5050/api"


def test_basic_auth_and_bearer_token_are_exclusive() -> None:
    with pytest.raises(ValueError):
        HttpTransport(basic_auth=("a", "b"), bearer_token="c")


# --- event streams ------------------------------------------------------------------------------


def test_a_stream_delivers_chunks_as_they_arrive(server: ScriptedServer, transport: HttpTransport) -> None:
    server.on("SUBSCRIBE", Stream([HEARTBEAT], stream_id="sid-7"))
    stream = transport.open_stream(server.endpoint(SCHEDULER_PATH), b'{"type":"SUBSCRIBE"}', read_timeout=5.0)
    try:
        assert stream.status == 200
        assert stream.headers["mesos-stream-id"] == "sid-7"
        decoder = RecordIODecoder()
        chunks = stream.chunks()
        assert decoder.feed(next(chunks)) == [HEARTBEAT]
        # The next record is pushed only now: the client gets it without the stream ending.
        server.push({"type": "OFFERS"})
        assert decoder.feed(next(chunks)) == [b'{"type":"OFFERS"}']
    finally:
        stream.close()
    (request,) = server.requests
    assert request.headers.get_all("Content-Type") == ["application/json"]
    assert request.headers.get_all("Accept") == ["application/json"]
    assert request.headers["Authorization"] == BASIC


def test_records_split_across_tiny_http_chunks_are_reassembled(
    server: ScriptedServer, transport: HttpTransport
) -> None:
    records = [HEARTBEAT, b'{"type":"SUBSCRIBED","x":"\xc3\xa9"}', HEARTBEAT]
    server.on(None, Stream(records, chunk_size=3))
    with transport.open_stream(server.endpoint(SCHEDULER_PATH), b"{}", read_timeout=5.0) as stream:
        assert read_records(stream, 3) == records


def test_the_stream_uses_its_own_connection(server: ScriptedServer, transport: HttpTransport) -> None:
    server.on("SUBSCRIBE", Stream([HEARTBEAT]))
    transport.post(server.endpoint(SCHEDULER_PATH), b'{"type":"REVIVE"}')
    with transport.open_stream(
        server.endpoint(SCHEDULER_PATH), b'{"type":"SUBSCRIBE"}', read_timeout=5.0
    ) as stream:
        assert read_records(stream, 1) == [HEARTBEAT]
        transport.post(server.endpoint(SCHEDULER_PATH), b'{"type":"DECLINE"}')
    revive, subscribe, decline = server.requests
    assert subscribe.client_port not in {revive.client_port, decline.client_port}
    assert revive.client_port == decline.client_port  # calls reuse the call session's connection


def test_a_clean_end_of_the_body_ends_iteration(server: ScriptedServer, transport: HttpTransport) -> None:
    server.on(None, Stream([HEARTBEAT], then="close"))
    with transport.open_stream(server.endpoint(SCHEDULER_PATH), b"{}", read_timeout=5.0) as stream:
        assert b"".join(stream.chunks()) == b"20\n" + HEARTBEAT


def test_a_stream_cut_mid_record_is_connection_lost(server: ScriptedServer, transport: HttpTransport) -> None:
    server.on(None, Stream([HEARTBEAT], tail=b'50\n{"type"', then="cut"))
    decoder = RecordIODecoder()
    received: list[bytes] = []
    stream = transport.open_stream(server.endpoint(SCHEDULER_PATH), b"{}", read_timeout=5.0)
    with stream, pytest.raises(ConnectionLost):
        for chunk in stream.chunks():
            received.extend(decoder.feed(chunk))
    assert received == [HEARTBEAT]
    assert decoder.buffered > 0  # the half record never completed


def test_silence_beyond_the_read_timeout_is_a_request_timeout(
    server: ScriptedServer, transport: HttpTransport
) -> None:
    server.on(None, Stream([HEARTBEAT]))
    stream = transport.open_stream(server.endpoint(SCHEDULER_PATH), b"{}", read_timeout=0.3)
    with stream, pytest.raises(RequestTimeout):
        read_records(stream, 2)
    server.wait_for_stream(1).wait_client_gone()


def test_the_read_timeout_can_be_tightened_after_the_stream_opened(
    server: ScriptedServer, transport: HttpTransport
) -> None:
    server.on(None, Stream([HEARTBEAT]))
    with transport.open_stream(server.endpoint(SCHEDULER_PATH), b"{}", read_timeout=None) as stream:
        stream.set_read_timeout(0.3)
        with pytest.raises(RequestTimeout):
            read_records(stream, 2)


def test_close_from_another_thread_wakes_a_blocked_reader(
    server: ScriptedServer, transport: HttpTransport
) -> None:
    server.on(None, Stream([HEARTBEAT]))
    stream = transport.open_stream(server.endpoint(SCHEDULER_PATH), b"{}", read_timeout=None)
    chunks = stream.chunks()
    next(chunks)
    outcome: list[BaseException] = []
    blocked = threading.Event()

    def reader() -> None:
        blocked.set()
        try:
            next(chunks)
        except BaseException as exc:
            outcome.append(exc)

    thread = threading.Thread(target=reader)
    thread.start()
    assert blocked.wait(5)
    stream.close()
    thread.join(5)
    assert not thread.is_alive()
    assert len(outcome) == 1
    assert isinstance(outcome[0], ConnectionLost)
    assert stream.closed
    assert server.wait_for_stream(1).wait_client_gone()


def test_a_redirected_subscribe_reports_the_leader_url(
    make_server: Callable[[], ScriptedServer], transport: HttpTransport
) -> None:
    follower, leader = make_server(), make_server()
    follower.on(None, Redirect(f"//127.0.0.1:{leader.port}{SCHEDULER_PATH}"))
    leader.on(None, Stream([HEARTBEAT]))
    with transport.open_stream(follower.endpoint(SCHEDULER_PATH), b"{}", read_timeout=5.0) as stream:
        assert stream.url == leader.endpoint(SCHEDULER_PATH)
        assert read_records(stream, 1) == [HEARTBEAT]
    assert leader.requests[0].headers["Authorization"] == BASIC


def test_a_non_200_subscribe_returns_the_stream_with_its_body(
    server: ScriptedServer, transport: HttpTransport
) -> None:
    server.on(None, Respond(503, b"No leader elected"))
    stream = transport.open_stream(server.endpoint(SCHEDULER_PATH), b"{}", read_timeout=5.0)
    assert stream.status == 503
    assert stream.read_body() == b"No leader elected"
    assert stream.closed


def test_closing_the_transport_closes_open_streams(server: ScriptedServer) -> None:
    server.on(None, Stream([HEARTBEAT]))
    transport = HttpTransport()
    stream = transport.open_stream(server.endpoint(SCHEDULER_PATH), b"{}", read_timeout=5.0)
    transport.close()
    assert stream.closed
    assert server.wait_for_stream(1).wait_client_gone()


# --- TLS ----------------------------------------------------------------------------------------


@pytest.fixture
def tls_server(self_signed_cert: tuple[Path, Path]) -> ScriptedServer:
    cert, key = self_signed_cert
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return ScriptedServer(ssl_context=context)


def test_tls_with_the_ca_bundle_works(
    tls_server: ScriptedServer, self_signed_cert: tuple[Path, Path]
) -> None:
    transport = HttpTransport(verify=str(self_signed_cert[0]))
    try:
        assert transport.post(tls_server.endpoint(SCHEDULER_PATH), b"{}").status == 202
    finally:
        transport.close()
        tls_server.close()


def test_tls_verification_is_on_by_default(tls_server: ScriptedServer) -> None:
    transport = HttpTransport()
    try:
        with pytest.raises(ConnectionLost, match="TLS"):
            transport.post(tls_server.endpoint(SCHEDULER_PATH), b"{}")
    finally:
        transport.close()
        tls_server.close()
