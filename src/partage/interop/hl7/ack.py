"""HL7 v2.5 original-mode acknowledgements (ACK^Axx^ACK): MSH, MSA and, on error, ERR.

The acknowledgement answers in the incoming message's own separators, version and character
set, so that whatever could send the message can read the answer. A message too broken to
show an MSH is still answered: AR, with an empty MSA-2.
"""

from __future__ import annotations

import itertools
import os
import time
from datetime import datetime

from ._wire import DEFAULT_ENCODING, Encoding, escape
from .adt import (
    AckCode,
    AdtError,
    AdtMessage,
    HierarchicDesignator,
    MessageHeader,
    charset_codec,
    salvage_header,
)

DEFAULT_APPLICATION = "PARTAGE"

# Control ids: unique per process run and time-ordered, within MSH-10's 20 characters.
_run = f"{os.getpid() % 1000:03d}{int(time.time()) % 100000:05d}"
_counter = itertools.count(1)


def _control_id() -> str:
    return f"P{_run}{next(_counter) % 10**11:011d}"


def build_ack(
    source: AdtMessage | MessageHeader | bytes | str | None,
    *,
    code: AckCode | str,
    error: AdtError | None = None,
    text: str = "",
    application: str = DEFAULT_APPLICATION,
    facility: str = "",
) -> str:
    """The acknowledgement of `source`: a parsed message, its header, or raw bytes/text
    (read as far as they go). `application`/`facility` name this receiver when the incoming
    MSH-5/MSH-6 do not. Segments are CR-terminated, as MLLP carries them."""
    code = AckCode(code)
    if isinstance(source, AdtMessage):
        header: MessageHeader | None = source.header
    elif isinstance(source, MessageHeader):
        header = source
    elif source is None:
        header = None
    else:
        header = salvage_header(source)
    enc = header.encoding if header else DEFAULT_ENCODING

    def hd(value: HierarchicDesignator) -> str:
        parts = (value.namespace_id, value.universal_id, value.universal_id_type)
        return enc.component.join(escape(p, enc) for p in parts).rstrip(enc.component)

    ours_app = hd(header.receiving_application) if header else ""
    ours_fac = hd(header.receiving_facility) if header else ""
    event = header.event if header and header.event.isalnum() else ""
    message_type = enc.component.join(("ACK", escape(event, enc), "ACK")) if event else "ACK"
    msh = [
        "MSH",
        enc.characters,
        ours_app or escape(application, enc),
        ours_fac or escape(facility, enc),
        hd(header.sending_application) if header else "",
        hd(header.sending_facility) if header else "",
        datetime.now().astimezone().strftime("%Y%m%d%H%M%S%z"),
        "",
        message_type,
        _control_id(),
        escape(header.processing_id, enc) if header and header.processing_id else "P",
        header.version_field if header and header.version_field else "2.5",
    ]
    if header and header.charset and charset_codec(header.charset) is not None:
        msh += ["", "", "", "", "", escape(header.charset, enc)]
    message = text or (error.message if error else "")
    segments = [
        enc.field.join(msh),
        enc.field.join(
            ["MSA", code.value, escape(header.control_id, enc) if header else "", _t(message, enc)]
        ).rstrip(enc.field),
    ]
    if error is not None:
        segments.append(_err(error, enc))
    return "".join(s + "\r" for s in segments)


def _t(text: str, enc: Encoding) -> str:
    # MSA-3 is kept by v2.5 for backward compatibility; many senders read nothing else.
    return escape(text[:80], enc)


def _err(error: AdtError, enc: Encoding) -> str:
    # ERR-2 (ERL): segment ^ segment sequence ^ field ^ repetition ^ component.
    location = ""
    if error.segment:
        numbers = [error.segment, "1"]
        if error.field:
            numbers.append(str(error.field))
            if error.repetition or error.component:
                numbers.append(str(error.repetition or 1))
            if error.component:
                numbers.append(str(error.component))
        location = enc.component.join(numbers)
    condition = enc.component.join((str(int(error.code)), error.code.text, "HL70357"))
    fields = ["ERR", "", location, condition, error.severity.value, "", "", ""]
    fields.append(escape(error.message, enc))  # ERR-8, user message
    return enc.field.join(fields)


def ack_bytes(ack: str, header: MessageHeader | None) -> bytes:
    """Encode an acknowledgement in the character set it declares (the incoming one)."""
    codec = charset_codec(header.charset) if header else ""
    return ack.encode(codec or "utf-8", errors="replace")
