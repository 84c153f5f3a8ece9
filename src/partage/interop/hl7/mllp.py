"""The MLLP listener: frames in, ADT parsed, handler called in a worker thread, ACK out.

MSH-9 routes each message: MDM messages go to the MDM handler when one is given (parsed by
`mdm.parse_mdm`; it returns the AA's note, or raises `AdtError`), everything else to the ADT
path below. A connection's MDM deposits run one at a time like its other messages.

MLLP (HL7 v2 appendix C) wraps each message in <VT> ... <FS><CR>. One connection is served
in order: a message is acknowledged before the next one on that connection is looked at,
so pipelined messages are answered in the order they were sent, and a hospital's stream of
identity events reaches the handler in its order. Connections run concurrently.

The handler is synchronous and may be slow (a database transaction): it runs in a bounded
thread pool, never on the event loop. It returns to accept (AA), raises `AdtError` to
refuse with that error, and anything else it raises is answered AE 207 and logged, the
listener carrying on. Logs name the control id and event, never patient data.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import traceback
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from types import TracebackType

from .ack import DEFAULT_APPLICATION, ack_bytes, build_ack
from .adt import (
    AckCode,
    AdtError,
    AdtMessage,
    ErrorCode,
    MessageHeader,
    parse_adt,
    salvage_header,
)
from .mdm import MdmMessage, parse_mdm

logger = logging.getLogger(__name__)

Handler = Callable[[AdtMessage], None]
# Returns the text of the AA (MSA-3, "" for none); raises AdtError to refuse.
MdmHandler = Callable[[MdmMessage], str]

START_BLOCK = b"\x0b"
END_BLOCK = b"\x1c"
CARRIAGE_RETURN = b"\r"
DEFAULT_PORT = 2575
DEFAULT_MAX_MESSAGE_BYTES = 10 * 1024 * 1024
_HEAD_BYTES = 4096  # enough of an oversized frame to read its MSH for the AR
_READ_SIZE = 64 * 1024
_BLANKS = b"\r\n\t "


@dataclass(frozen=True, slots=True)
class OversizedFrame:
    """A frame that grew past the size limit; `head` is its beginning, for the AR."""

    head: bytes


class FrameDecoder:
    """MLLP framing without I/O: feed bytes as they arrive, get whole frames back.

    Bytes outside a frame are skipped (blank lines between frames silently, anything else
    counted in `discarded`). A start block inside a frame means the sender gave up on it and
    started again: the unfinished frame is dropped (counted in `restarted`). An end block
    not followed by CR still ends the frame. Once a frame outgrows `max_size`, an
    `OversizedFrame` is returned and the decoder takes nothing more: the connection is to be
    closed, since nothing tells where the rest of that frame ends.
    """

    def __init__(self, max_size: int = DEFAULT_MAX_MESSAGE_BYTES) -> None:
        self.max_size = max_size
        self.discarded = 0
        self.restarted = 0
        self._buffer = bytearray()
        self._in_frame = False
        self._scanned = 0  # bytes of the current frame already searched for delimiters
        self._closed = False

    @property
    def pending(self) -> int:
        """Bytes of a frame begun and not finished."""
        return len(self._buffer) if self._in_frame else 0

    def feed(self, data: bytes) -> list[bytes | OversizedFrame]:
        if self._closed:
            return []
        frames: list[bytes | OversizedFrame] = []
        self._buffer += data
        while True:
            if not self._in_frame:
                start = self._buffer.find(START_BLOCK)
                skipped = self._buffer if start < 0 else self._buffer[:start]
                self.discarded += len(bytes(skipped).translate(None, _BLANKS))
                if start < 0:
                    self._buffer.clear()
                    return frames
                del self._buffer[: start + 1]
                self._in_frame = True
                self._scanned = 0
            end = self._buffer.find(END_BLOCK, self._scanned)
            restart = self._buffer.find(START_BLOCK, self._scanned)
            if restart >= 0 and (end < 0 or restart < end):
                self.restarted += 1
                del self._buffer[: restart + 1]
                self._scanned = 0
                continue
            size = end if end >= 0 else len(self._buffer)
            if size > self.max_size:
                frames.append(OversizedFrame(bytes(self._buffer[:_HEAD_BYTES])))
                self._buffer.clear()
                self._closed = True
                return frames
            if end < 0:
                self._scanned = len(self._buffer)
                return frames
            frames.append(bytes(self._buffer[:end]))
            # The CR after the end block, when it is there, is a blank: skipped above.
            del self._buffer[: end + 1]
            self._in_frame = False


def frame(payload: bytes) -> bytes:
    """Wrap one message for MLLP."""
    return START_BLOCK + payload + END_BLOCK + CARRIAGE_RETURN


class _Connection:
    __slots__ = ("busy", "task")

    def __init__(self, task: asyncio.Task[None]) -> None:
        self.task = task
        self.busy = False


class MllpServer:
    """An MLLP listener for ADT messages; `port=0` binds a free port, read back in `port`.

        async with MllpServer(handler, port=0) as server:
            ... server.port ...

    `workers` bounds the handlers running at once (size it like the database pool).
    `idle_timeout` closes connections silent that long; `max_message_bytes` refuses larger
    frames with an AR and closes their connection.
    """

    def __init__(
        self,
        handler: Handler,
        *,
        host: str = "127.0.0.1",
        port: int = DEFAULT_PORT,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
        idle_timeout: float = 300.0,
        workers: int = 8,
        application: str = DEFAULT_APPLICATION,
        facility: str = "",
        mdm_handler: MdmHandler | None = None,
    ) -> None:
        self._handler = handler
        self._mdm_handler = mdm_handler
        self._host = host
        self._port = port
        self._max_message_bytes = max_message_bytes
        self._idle_timeout = idle_timeout
        self._workers = workers
        self._application = application
        self._facility = facility
        self._server: asyncio.Server | None = None
        self._executor: ThreadPoolExecutor | None = None
        self._connections: set[_Connection] = set()
        self._closing = False

    @property
    def port(self) -> int:
        if self._server is None or not self._server.sockets:
            raise RuntimeError("the server is not started")
        return int(self._server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self._closing = False
        self._executor = ThreadPoolExecutor(self._workers, thread_name_prefix="mllp-handler")
        self._server = await asyncio.start_server(self._accept, self._host, self._port)
        logger.info("MLLP listening on %s port %d", self._host, self.port)

    async def stop(self, grace: float = 5.0) -> None:
        """Stop listening; let messages being handled finish and be acknowledged (up to
        `grace` seconds), close every connection."""
        if self._server is None:
            return
        self._closing = True
        self._server.close()
        for connection in list(self._connections):
            if not connection.busy:
                connection.task.cancel()
        tasks = [c.task for c in self._connections]
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=grace)
            for task in late:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        await self._server.wait_closed()
        if self._executor is not None:
            # A handler still running past the grace period keeps its thread; we do not wait.
            self._executor.shutdown(wait=False, cancel_futures=True)
        self._server = None
        self._executor = None
        logger.info("MLLP listener stopped")

    async def serve_forever(self) -> None:
        if self._server is None:
            await self.start()
        assert self._server is not None
        await self._server.serve_forever()

    async def __aenter__(self) -> MllpServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        connection = _Connection(task)
        self._connections.add(connection)
        try:
            await self._serve(connection, reader, writer)
        except asyncio.CancelledError:
            pass
        except (ConnectionError, TimeoutError) as exc:
            logger.info("MLLP connection from %s ended: %s", _peer(writer), type(exc).__name__)
        finally:
            self._connections.discard(connection)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _serve(
        self, connection: _Connection, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        peer = _peer(writer)
        decoder = FrameDecoder(self._max_message_bytes)
        loop = asyncio.get_running_loop()
        while not self._closing:
            try:
                async with asyncio.timeout(self._idle_timeout):
                    data = await reader.read(_READ_SIZE)
            except TimeoutError:
                logger.info("MLLP connection from %s idle, closed", peer)
                return
            if not data:
                if decoder.pending:
                    logger.warning(
                        "MLLP connection from %s closed inside a message: %d bytes dropped",
                        peer,
                        decoder.pending,
                    )
                return
            discarded, restarted = decoder.discarded, decoder.restarted
            frames = decoder.feed(data)
            if decoder.discarded > discarded:
                logger.warning(
                    "MLLP from %s: %d bytes outside any frame skipped",
                    peer,
                    decoder.discarded - discarded,
                )
            if decoder.restarted > restarted:
                logger.warning("MLLP from %s: unfinished frame dropped (new start block)", peer)
            for payload in frames:
                if isinstance(payload, OversizedFrame):
                    await self._refuse_oversized(payload, writer, peer)
                    return
                connection.busy = True
                try:
                    ack = await loop.run_in_executor(self._executor, self._process, payload)
                finally:
                    connection.busy = False
                writer.write(frame(ack))
                async with asyncio.timeout(self._idle_timeout):
                    await writer.drain()
                if self._closing:
                    return

    async def _refuse_oversized(
        self, oversized: OversizedFrame, writer: asyncio.StreamWriter, peer: str
    ) -> None:
        error = AdtError(
            ErrorCode.segment_sequence,
            f"message larger than {self._max_message_bytes} bytes: refused",
            ack=AckCode.reject,
        )
        ack = self._ack(oversized.head, AckCode.reject, error)
        logger.warning("MLLP from %s: frame over %d bytes refused", peer, self._max_message_bytes)
        writer.write(frame(ack))
        async with asyncio.timeout(self._idle_timeout):
            await writer.drain()

    def _process(self, payload: bytes) -> bytes:
        """Parse, handle, acknowledge one message (in a worker thread)."""
        if self._mdm_handler is not None and _message_type(payload) == "MDM":
            return self._process_mdm(payload, self._mdm_handler)
        try:
            message = parse_adt(payload)
        except AdtError as error:
            control_id = error.header.control_id if error.header else ""
            logger.warning(
                "HL7 message %r refused: %s %d at %s",
                control_id,
                error.ack.value,
                error.code,
                error.location or "-",
            )
            return self._ack(error.header or payload, error.ack, error)
        except Exception as exc:  # a parser bug must not take the listener down
            self._log_failure("parsing", "", "", exc)
            return self._ack(payload, AckCode.error, _internal_error())
        if not message.handled:
            logger.debug("HL7 %s %r accepted, not processed", message.event, message.control_id)
            return self._ack(
                message,
                AckCode.accept,
                text=f"event {message.event} accepted, not processed by this receiver",
            )
        try:
            self._handler(message)
        except AdtError as error:
            logger.warning(
                "HL7 %s %r refused by the handler: %s %d at %s",
                message.event,
                message.control_id,
                error.ack.value,
                error.code,
                error.location or "-",
            )
            return self._ack(message, error.ack, error)
        except Exception as exc:
            self._log_failure("handling", message.event, message.control_id, exc)
            return self._ack(message, AckCode.error, _internal_error())
        logger.debug("HL7 %s %r accepted", message.event, message.control_id)
        return self._ack(message, AckCode.accept)

    def _process_mdm(self, payload: bytes, handler: MdmHandler) -> bytes:
        try:
            message = parse_mdm(payload)
        except AdtError as error:
            control_id = error.header.control_id if error.header else ""
            logger.warning(
                "HL7 MDM %r refused: %s %d at %s",
                control_id,
                error.ack.value,
                error.code,
                error.location or "-",
            )
            return self._ack(error.header or payload, error.ack, error)
        except Exception as exc:  # a parser bug must not take the listener down
            self._log_failure("parsing", "MDM", "", exc)
            return self._ack(payload, AckCode.error, _internal_error())
        try:
            note = handler(message)
        except AdtError as error:
            logger.warning(
                "HL7 %s %r refused by the handler: %s %d at %s",
                message.event,
                message.control_id,
                error.ack.value,
                error.code,
                error.location or "-",
            )
            return self._ack(message.header, error.ack, error)
        except Exception as exc:
            self._log_failure("handling", message.event, message.control_id, exc)
            return self._ack(message.header, AckCode.error, _internal_error())
        logger.debug("HL7 %s %r accepted", message.event, message.control_id)
        return self._ack(message.header, AckCode.accept, text=note)

    def _ack(
        self,
        source: AdtMessage | MessageHeader | bytes,
        code: AckCode,
        error: AdtError | None = None,
        *,
        text: str = "",
    ) -> bytes:
        ack = build_ack(
            source,
            code=code,
            error=error,
            text=text,
            application=self._application,
            facility=self._facility,
        )
        header = source.header if isinstance(source, AdtMessage) else source
        return ack_bytes(ack, header if isinstance(header, MessageHeader) else None)

    @staticmethod
    def _log_failure(stage: str, event: str, control_id: str, exc: Exception) -> None:
        # The exception's own message may quote patient data (a database error citing the
        # row): log its type and where it was raised, not its text.
        stack = "".join(traceback.format_tb(exc.__traceback__))
        logger.error(
            "HL7 %s %r: %s failed with %s, answered AE 207\n%s",
            event,
            control_id,
            stage,
            type(exc).__qualname__,
            stack,
        )


def _message_type(payload: bytes) -> str:
    """MSH-9.1, read from the first segment only (an MDM message may weigh megabytes)."""
    head = payload.lstrip()[:4096]
    end = min((i for i in (head.find(b"\r"), head.find(b"\n")) if i >= 0), default=len(head))
    header = salvage_header(head[:end])
    return header.message_type if header else ""


def _internal_error() -> AdtError:
    return AdtError(ErrorCode.internal_error, "application internal error, message not applied")


def _peer(writer: asyncio.StreamWriter) -> str:
    peer = writer.get_extra_info("peername")
    return f"{peer[0]}:{peer[1]}" if isinstance(peer, tuple) and len(peer) >= 2 else str(peer)


async def serve_mllp(
    handler: Handler,
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_PORT,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    idle_timeout: float = 300.0,
    workers: int = 8,
    application: str = DEFAULT_APPLICATION,
    facility: str = "",
    mdm_handler: MdmHandler | None = None,
) -> MllpServer:
    """Start a listener and return it (stop it with `await server.stop()`)."""
    server = MllpServer(
        handler,
        host=host,
        port=port,
        max_message_bytes=max_message_bytes,
        idle_timeout=idle_timeout,
        workers=workers,
        application=application,
        facility=facility,
        mdm_handler=mdm_handler,
    )
    await server.start()
    return server


def run_mllp(
    handler: Handler,
    host: str = "0.0.0.0",  # noqa: S104
    port: int = DEFAULT_PORT,
    *,
    mdm_handler: MdmHandler | None = None,
) -> None:
    """Serve until SIGINT or SIGTERM: the entry point for the command line."""

    async def main() -> None:
        server = await serve_mllp(handler, host=host, port=port, mdm_handler=mdm_handler)
        stopping = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):  # no signal handlers on Windows
                loop.add_signal_handler(signum, stopping.set)
        try:
            await stopping.wait()
        finally:
            await server.stop()

    asyncio.run(main())
