"""HL7 v2.5 ADT over MLLP (IHE PAM, French extension): parse, acknowledge, listen.

Independent of the database: messages become `AdtMessage` objects handed to an injected
handler, `handler(message) -> None`, which raises `AdtError` to refuse one.
"""

from .ack import build_ack
from .adt import (
    HANDLED_EVENTS,
    AckCode,
    AdtError,
    AdtMessage,
    ErrorCode,
    HierarchicDesignator,
    IdentityAttribute,
    MessageHeader,
    PatientId,
    PatientIdentity,
    Severity,
    parse_adt,
)
from .mllp import FrameDecoder, Handler, MllpServer, OversizedFrame, run_mllp, serve_mllp

__all__ = [
    "HANDLED_EVENTS",
    "AckCode",
    "AdtError",
    "AdtMessage",
    "ErrorCode",
    "FrameDecoder",
    "Handler",
    "HierarchicDesignator",
    "IdentityAttribute",
    "MessageHeader",
    "MllpServer",
    "OversizedFrame",
    "PatientId",
    "PatientIdentity",
    "Severity",
    "build_ack",
    "parse_adt",
    "run_mllp",
    "serve_mllp",
]
