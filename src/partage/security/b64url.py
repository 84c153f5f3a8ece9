"""Base64url without padding (RFC 4648 §5, as JOSE, WebAuthn and PKCE use it)."""

from __future__ import annotations

import base64


def encode(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def decode(text: str) -> bytes:
    """Raises ValueError (binascii.Error) on malformed input."""
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
