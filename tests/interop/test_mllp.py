"""The MLLP listener on a real loopback socket, fed by python-hl7's MLLPClient.

The listener runs on its own event loop in a background thread, as it would beside the
application; the tests talk to it with blocking sockets.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import hl7
import pytest
from hl7.client import MLLPClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from partage.interop.hl7 import (
    AdtError,
    AdtMessage,
    ErrorCode,
    FrameDecoder,
    MllpServer,
    OversizedFrame,
    serve_mllp,
)

from .test_hl7_adt import IPP, adt

SB, EB, CR = b"\x0b", b"\x1c", b"\r"
TIMEOUT = 10.0


def frame(message: str | bytes) -> bytes:
    payload = message.encode() if isinstance(message, str) else message
    return SB + payload + EB + CR


class Recorder:
    """A handler that remembers what it was given (from several worker threads)."""

    def __init__(self, action: Callable[[AdtMessage], None] | None = None) -> None:
        self.messages: list[AdtMessage] = []
        self._lock = threading.Lock()
        self._action = action

    def __call__(self, message: AdtMessage) -> None:
        if self._action is not None:
            self._action(message)
        with self._lock:
            self.messages.append(message)

    @property
    def control_ids(self) -> list[str]:
        with self._lock:
            return [m.control_id for m in self.messages]


class Listener:
    """An MllpServer on port 0, served by an event loop in a background thread."""

    def __init__(self, handler: Callable[[AdtMessage], None], **options: Any) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        started = serve_mllp(handler, host="127.0.0.1", port=0, **options)
        self.server: MllpServer = self._run(started)
        self.port = self.server.port

    def _run(self, coroutine: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(TIMEOUT)

    def close(self) -> None:
        self._run(self.server.stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(TIMEOUT)
        self.loop.close()


@pytest.fixture
def listen() -> Iterator[Callable[..., Listener]]:
    listeners: list[Listener] = []

    def start(handler: Callable[[AdtMessage], None] | None = None, **options: Any) -> Listener:
        listener = Listener(handler or Recorder(), **options)
        listeners.append(listener)
        return listener

    yield start
    for listener in listeners:
        listener.close()


def read_ack(sock: socket.socket, pending: bytes = b"") -> tuple[str, bytes]:
    """One framed acknowledgement off a socket: (its text, bytes read beyond it)."""
    data = pending
    while EB + CR not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a whole acknowledgement: {data!r}")
        data += chunk
    end = data.index(EB + CR)
    start = data.index(SB)
    return data[start + 1 : end].decode("utf-8"), data[end + 2 :]


def send(port: int, message: str | bytes) -> str:
    """Send one message with python-hl7's client and return the acknowledgement's text."""
    with MLLPClient("127.0.0.1", port) as client:
        client.socket.settimeout(TIMEOUT)
        received = client.send_message(message)
        return read_ack(client.socket, received)[0]


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    return sock


def msa(ack: str) -> tuple[str, str]:
    segment = hl7.parse(ack).segment("MSA")
    return str(segment[1]), str(segment[2])


def err(ack: str) -> tuple[str, str, str, str]:
    """ERR-2 location, ERR-3 code, ERR-4 severity, ERR-8 user message."""
    segment = hl7.parse(ack).segment("ERR")
    return str(segment[2]), str(segment[3]), str(segment[4]), str(segment[8])


def closed_by_peer(sock: socket.socket) -> bool:
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


# --- every message answered -------------------------------------------------------------


@pytest.mark.parametrize("event", ["A01", "A04", "A08", "A28", "A31", "A40"])
def test_identity_events_are_handled_and_accepted(
    listen: Callable[..., Listener], event: str
) -> None:
    recorder = Recorder()
    listener = listen(recorder)

    ack = send(listener.port, adt(event, control_id=f"C-{event}"))

    assert msa(ack) == ("AA", f"C-{event}")
    assert str(hl7.parse(ack).segment("MSH")[9]) == f"ACK^{event}^ACK"
    [message] = recorder.messages
    assert message.event == event
    assert message.patient is not None
    assert message.patient.ipp.value == IPP
    if event == "A40":
        assert message.merged_id is not None
        assert message.merged_id.value == "20999"


def test_other_events_are_accepted_without_calling_the_handler(
    listen: Callable[..., Listener],
) -> None:
    recorder = Recorder()
    listener = listen(recorder)

    ack = send(listener.port, adt("A02", control_id="MOVE1"))

    assert msa(ack) == ("AA", "MOVE1")
    assert "not processed" in str(hl7.parse(ack).segment("MSA")[3])
    assert recorder.messages == []


def test_content_errors_are_answered_ae_with_the_err_segment(
    listen: Callable[..., Listener],
) -> None:
    recorder = Recorder()
    listener = listen(recorder)

    ack = send(listener.port, adt("A28", control_id="BAD7", pid_changes={7: "19910231"}))

    assert msa(ack) == ("AE", "BAD7")
    location, code, severity, message = err(ack)
    assert location == "PID^1^7"
    assert code == "102^Data type error^HL70357"
    assert severity == "E"
    assert "PID-7" in message
    assert recorder.messages == []


@pytest.mark.parametrize(
    ("message", "code"),
    [
        (adt(version="2.3", control_id="OLD"), "203^Unsupported version id^HL70357"),
        (adt(message_type="ORU", control_id="OLD"), "200^Unsupported message type^HL70357"),
    ],
)
def test_unsupported_versions_and_types_are_rejected(
    listen: Callable[..., Listener], message: str, code: str
) -> None:
    listener = listen()

    ack = send(listener.port, message)

    assert msa(ack) == ("AR", "OLD")
    assert err(ack)[1] == code


def test_latin_1_messages_are_read_and_answered_in_latin_1(
    listen: Callable[..., Listener],
) -> None:
    recorder = Recorder()
    listener = listen(recorder)
    text = adt(charset="8859/1", pid_changes={5: "BÉNÉZET^HÉLÈNE^^^^^L"})

    with connect(listener.port) as sock:
        sock.sendall(frame(text.encode("latin-1")))
        ack = read_ack(sock)[0]

    assert msa(ack) == ("AA", "MSG0001")
    assert str(hl7.parse(ack).segment("MSH")[18]) == "8859/1"
    [message] = recorder.messages
    assert message.patient is not None
    assert message.patient.traits.birth_family_name == "BÉNÉZET"


# --- handler failures ---------------------------------------------------------------------


def test_a_failing_handler_gives_ae_207_and_the_listener_carries_on(
    listen: Callable[..., Listener], caplog: pytest.LogCaptureFixture
) -> None:
    def explode(message: AdtMessage) -> None:
        if message.control_id == "BOOM":
            assert message.patient is not None
            raise RuntimeError(message.patient.traits.birth_family_name + " refused")

    recorder = Recorder(explode)
    listener = listen(recorder)

    with caplog.at_level(logging.INFO, logger="partage.interop.hl7"):
        failed = send(listener.port, adt(control_id="BOOM"))
        after = send(listener.port, adt(control_id="NEXT"))

    assert msa(failed) == ("AE", "BOOM")
    assert err(failed)[1] == "207^Application internal error^HL70357"
    assert msa(after) == ("AA", "NEXT")
    assert recorder.control_ids == ["NEXT"]
    assert "BOOM" in caplog.text and "RuntimeError" in caplog.text
    # The exception's text quotes the patient: it is not logged, its type and stack are.
    assert "DUVAL" not in caplog.text


def test_a_handler_refusal_is_answered_with_its_own_error(
    listen: Callable[..., Listener],
) -> None:
    def refuse(message: AdtMessage) -> None:
        raise AdtError(ErrorCode.unknown_key, "IPP unknown in this domain", segment="MRG", field=1)

    listener = listen(refuse)

    ack = send(listener.port, adt("A40", control_id="M1"))

    assert msa(ack) == ("AE", "M1")
    assert err(ack)[:2] == ("MRG^1^1", "204^Unknown key identifier^HL70357")


# --- framing and broken input -------------------------------------------------------------


def test_garbage_before_a_start_block_is_skipped(listen: Callable[..., Listener]) -> None:
    listener = listen()

    with connect(listener.port) as sock:
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n\x00\xff" + frame(adt(control_id="AFTER")))
        ack = read_ack(sock)[0]

    assert msa(ack) == ("AA", "AFTER")


def test_a_truncated_message_is_dropped_and_the_next_connection_served(
    listen: Callable[..., Listener],
) -> None:
    recorder = Recorder()
    listener = listen(recorder)
    whole = frame(adt(control_id="CUT"))

    with connect(listener.port) as sock:
        sock.sendall(whole[: len(whole) // 2])
    ack = send(listener.port, adt(control_id="WHOLE"))

    assert msa(ack) == ("AA", "WHOLE")
    assert recorder.control_ids == ["WHOLE"]


def test_bytes_that_are_not_hl7_in_a_frame_are_rejected_and_the_connection_kept(
    listen: Callable[..., Listener],
) -> None:
    recorder = Recorder()
    listener = listen(recorder)

    with connect(listener.port) as sock:
        sock.sendall(frame(b"\x89PNG\r\n\x1a\n not a message at all"))
        rejected, rest = read_ack(sock)
        sock.sendall(frame(adt(control_id="THEN")))
        accepted = read_ack(sock, rest)[0]

    assert msa(rejected) == ("AR", "")
    assert err(rejected)[1].startswith("100^")
    assert msa(accepted) == ("AA", "THEN")
    assert recorder.control_ids == ["THEN"]


def test_an_oversized_frame_is_rejected_and_its_connection_closed(
    listen: Callable[..., Listener],
) -> None:
    recorder = Recorder()
    listener = listen(recorder, max_message_bytes=20_000)
    huge = adt(control_id="HUGE", pid_changes={13: "0" * 30_000})

    with connect(listener.port) as sock:
        sock.sendall(frame(huge))
        ack = read_ack(sock)[0]
        assert closed_by_peer(sock)

    assert msa(ack) == ("AR", "HUGE")
    assert "larger than" in err(ack)[3]
    assert recorder.messages == []
    assert msa(send(listener.port, adt(control_id="SMALL"))) == ("AA", "SMALL")


def test_idle_connections_are_closed(listen: Callable[..., Listener]) -> None:
    listener = listen(idle_timeout=0.3)

    with connect(listener.port) as sock:
        time.sleep(0.8)
        assert closed_by_peer(sock)


@pytest.mark.parametrize("chunk", [1, 7, 4096])
def test_messages_split_over_many_packets_are_reassembled(
    listen: Callable[..., Listener], chunk: int
) -> None:
    listener = listen()
    data = frame(adt(control_id="SLOW"))

    with connect(listener.port) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for i in range(0, len(data), chunk):
            sock.sendall(data[i : i + chunk])
        ack = read_ack(sock)[0]

    assert msa(ack) == ("AA", "SLOW")


# --- order and concurrency ----------------------------------------------------------------


def test_pipelined_messages_are_answered_and_handled_in_order(
    listen: Callable[..., Listener],
) -> None:
    # A handler slower for some messages than others must not reorder anything.
    recorder = Recorder(lambda m: time.sleep(0.02 if m.control_id.endswith("3") else 0))
    listener = listen(recorder, workers=4)
    ids = [f"P{i:03d}" for i in range(30)]
    bad = {"P005", "P017"}
    stream = b"".join(
        frame(adt("A31", control_id=i, pid_changes={8: "X"} if i in bad else None)) for i in ids
    )

    with connect(listener.port) as sock:
        sock.sendall(stream)
        acks, rest = [], b""
        for _ in ids:
            ack, rest = read_ack(sock, rest)
            acks.append(msa(ack))

    assert acks == [("AE" if i in bad else "AA", i) for i in ids]
    assert recorder.control_ids == [i for i in ids if i not in bad]


def test_many_concurrent_clients_are_all_answered(listen: Callable[..., Listener]) -> None:
    recorder = Recorder(lambda m: time.sleep(0.001))
    listener = listen(recorder, workers=8)
    clients, per_client = 20, 15

    def client(number: int) -> list[tuple[str, str]]:
        with MLLPClient("127.0.0.1", listener.port) as mllp:
            mllp.socket.settimeout(TIMEOUT)
            answers = []
            for i in range(per_client):
                received = mllp.send_message(adt("A08", control_id=f"C{number}-{i}"))
                answers.append(msa(read_ack(mllp.socket, received)[0]))
            return answers

    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(client, range(clients)))

    for number, answers in enumerate(results):
        assert answers == [("AA", f"C{number}-{i}") for i in range(per_client)]
    assert len(recorder.messages) == clients * per_client
    # Each connection's messages reached the handler in the order they were sent.
    for number in range(clients):
        mine = [c for c in recorder.control_ids if c.startswith(f"C{number}-")]
        assert mine == [f"C{number}-{i}" for i in range(per_client)]


def test_a_slow_handler_does_not_hold_other_connections(listen: Callable[..., Listener]) -> None:
    release = threading.Event()
    recorder = Recorder(lambda m: release.wait(TIMEOUT) if m.control_id == "SLOW" else None)
    listener = listen(recorder, workers=2)

    with connect(listener.port) as slow:
        slow.sendall(frame(adt(control_id="SLOW")))
        time.sleep(0.1)
        fast = send(listener.port, adt(control_id="FAST"))
        assert msa(fast) == ("AA", "FAST")
        release.set()
        assert msa(read_ack(slow)[0]) == ("AA", "SLOW")


def test_stopping_lets_the_message_being_handled_be_acknowledged() -> None:
    started, release = threading.Event(), threading.Event()

    def slow(message: AdtMessage) -> None:
        started.set()
        release.wait(TIMEOUT)

    listener = Listener(Recorder(slow))
    try:
        with connect(listener.port) as busy, connect(listener.port) as idle:
            busy.sendall(frame(adt(control_id="LAST")))
            assert started.wait(TIMEOUT)
            stopping = asyncio.run_coroutine_threadsafe(listener.server.stop(), listener.loop)
            time.sleep(0.1)
            assert closed_by_peer(idle)
            release.set()
            assert msa(read_ack(busy)[0]) == ("AA", "LAST")
            stopping.result(TIMEOUT)
    finally:
        release.set()
        listener.loop.call_soon_threadsafe(listener.loop.stop)
        listener.thread.join(TIMEOUT)
        listener.loop.close()


# --- fuzzing ------------------------------------------------------------------------------


def test_random_bytes_never_take_the_listener_down(listen: Callable[..., Listener]) -> None:
    recorder = Recorder()
    listener = listen(recorder, max_message_bytes=4096, idle_timeout=2.0)

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
    @given(st.binary(max_size=3000), st.booleans())
    def throw(data: bytes, framed: bool) -> None:
        with connect(listener.port) as sock:
            sock.sendall(frame(data) if framed else data)
            sock.shutdown(socket.SHUT_WR)
            sock.settimeout(TIMEOUT)
            received = b""
            while chunk := sock.recv(65536):
                received += chunk
        # Whatever came back is whole acknowledgements.
        for part in received.split(EB + CR)[:-1]:
            assert part.startswith(SB + b"MSH|")
        assert received.endswith(EB + CR) or received == b""

    throw()
    assert msa(send(listener.port, adt(control_id="ALIVE"))) == ("AA", "ALIVE")


def frames_with_noise() -> st.SearchStrategy[tuple[list[bytes], bytes]]:
    payload = st.binary(max_size=300).map(lambda b: b.replace(SB, b"").replace(EB, b""))
    noise = st.binary(max_size=20).map(lambda b: b.replace(SB, b""))
    pieces = st.lists(st.tuples(noise, payload, st.booleans()), max_size=8)

    def build(items: list[tuple[bytes, bytes, bool]]) -> tuple[list[bytes], bytes]:
        stream = b"".join(n + SB + p + EB + (CR if cr else b"") for n, p, cr in items)
        return [p for _, p, _ in items], stream

    return pieces.map(build)


@settings(max_examples=300, deadline=None)
@given(frames_with_noise(), st.lists(st.integers(min_value=1, max_value=64), max_size=50))
def test_the_decoder_finds_the_same_frames_however_the_bytes_arrive(
    case: tuple[list[bytes], bytes], sizes: list[int]
) -> None:
    expected, stream = case
    decoder = FrameDecoder(max_size=1000)
    out: list[bytes | OversizedFrame] = []
    position = 0
    for size in sizes:
        out += decoder.feed(stream[position : position + size])
        position += size
    out += decoder.feed(stream[position:])

    assert out == expected
    assert decoder.pending == 0


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=3000), st.integers(min_value=1, max_value=500))
def test_the_decoder_survives_any_bytes(data: bytes, chunk: int) -> None:
    decoder = FrameDecoder(max_size=200)
    out: list[bytes | OversizedFrame] = []
    for i in range(0, len(data), chunk):
        out += decoder.feed(data[i : i + chunk])

    for item in out:
        if isinstance(item, OversizedFrame):
            assert item is out[-1]
        else:
            assert SB not in item and EB not in item and len(item) <= 200


def test_the_decoder_refuses_a_frame_over_its_limit_before_its_end() -> None:
    decoder = FrameDecoder(max_size=100)

    first = decoder.feed(SB + b"MSH|^~\\&|A" + b"x" * 200)

    assert first == [OversizedFrame(b"MSH|^~\\&|A" + b"x" * 200)]
    assert decoder.feed(EB + CR + frame(b"next")) == []


def test_the_decoder_counts_skipped_bytes_and_restarts() -> None:
    decoder = FrameDecoder()

    out = decoder.feed(b"\r\njunk" + SB + b"half" + SB + b"whole" + EB + CR + b"\n")

    assert out == [b"whole"]
    assert decoder.discarded == 4
    assert decoder.restarted == 1
    assert decoder.pending == 0
