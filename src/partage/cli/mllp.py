"""`partage mllp`: the HL7 v2 listener (ADT and MDM feeds of the establishments)."""

from __future__ import annotations

from typing import Annotated

import typer

from partage.cli.common import open_platform, out
from partage.documents.mdm_feed import MdmFeed
from partage.identity.feed import AdtFeed
from partage.interop.hl7.mllp import DEFAULT_PORT, run_mllp


def mllp(
    port: Annotated[int, typer.Option(help="TCP port to listen on.")] = DEFAULT_PORT,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
) -> None:
    """Listen for HL7 v2.5 ADT messages over MLLP (A01 A04 A08 A28 A31 A40), ACK each one;
    MDM^T02 and MDM^T10 messages deposit their document.

    Each establishment sends its patient ids under its own assigning authority (its code or
    the OID of its patient ids, see `partage establishments list`).
    """
    with open_platform() as platform:
        out.print(f"MLLP listener on {host}:{port} (Ctrl-C to stop)")
        run_mllp(AdtFeed(platform), host=host, port=port, mdm_handler=MdmFeed(platform))
