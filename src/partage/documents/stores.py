"""Where encrypted contents are kept: local files (the default) or an S3-compatible store.

Stores deal in opaque keys (names made by the repository) and bytes that are already
encrypted: they know nothing of documents, keys or hashes.

- `LocalFileStore`: deposits appended to packs (`append`, see `packs.py`), whose keys say
  where the bytes lie; `put` writes `root/abc/<key>` to a temporary file in the same
  directory, fsynced, then renamed into place.
- `S3Store`: path-style requests signed with AWS Signature V4, made with httpx (the
  transport is injectable, for tests and proxies).
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import re
import secrets
import urllib.parse
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO, NamedTuple, Protocol
from xml.etree import ElementTree

import httpx

from partage.config import ConfigurationError, Settings
from partage.documents.durable import dead_owners, fsync_directory
from partage.documents.packs import PACKS, PackArea, PackKey

_KEY = re.compile(r"^[0-9a-f]{8,128}$")
STAGING = "staging"


class StoreError(RuntimeError):
    """The store failed (I/O error, unexpected answer from the object store)."""


class BlobNotFound(LookupError):
    """No object under this key."""


# What stores accept to write: the repository hands them the envelope's bytearray as is.
Buffer = bytes | bytearray | memoryview


class StoredKey(NamedTuple):
    key: str
    # Last modification, seconds since the epoch.
    modified: float


class ContentStore(Protocol):
    def put(self, key: str, data: Buffer) -> None:
        """Store `data` durably under `key`, replacing any previous object atomically."""

    def get(self, key: str) -> bytes: ...

    def get_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes [start, end) of the object (fewer if it is shorter)."""

    def delete(self, key: str) -> None:
        """Remove the object; nothing happens if there is none."""

    def exists(self, key: str) -> bool: ...

    def list_keys(self, prefix: str = "") -> Iterator[StoredKey]:
        """Every key starting with `prefix`, in ascending order."""


def check_key(key: str) -> str:
    # Keys become file names and URL paths: only what the repository makes is accepted.
    if not _KEY.match(key):
        raise ValueError(f"not a storage key: {key!r}")
    return key


def open_store(settings: Settings, *, transport: httpx.BaseTransport | None = None) -> ContentStore:
    """The store `PARTAGE_STORAGE_URL` names: empty for local files under data_dir/blobs,
    `file:///path` for local files elsewhere, `s3://bucket/prefix?endpoint=…&region=…`."""
    url = settings.storage_url
    if not url:
        return LocalFileStore(settings.data_dir / "blobs")
    if url.startswith("file://"):
        return LocalFileStore(Path(urllib.parse.urlsplit(url).path))
    if url.startswith("s3://"):
        return S3Store.from_url(url, transport=transport)
    raise ConfigurationError("PARTAGE_STORAGE_URL must be empty, file:///path or s3://bucket/…")


# -- local files ----------------------------------------------------------------------------


class LocalFileStore:
    """Deposited contents in append-only packs (`root/packs/`, see `packs.py`); contents
    put under a name of their own (`put`) in files `root/abc/<key>`.

    Files an earlier version staged, `root/staging/<pid>-<random>/` beside a lock file its
    process held with flock, are still read and settled by `recover_staging`.
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self.packs = PackArea(root)

    # The ContentStore protocol.

    def put(self, key: str, data: Buffer) -> None:
        path = self._path(key)
        _ensure_dir(path.parent)
        tmp = path.parent / f".tmp-{secrets.token_hex(6)}"
        _write_new(tmp, data)
        os.replace(tmp, path)
        fsync_directory(path.parent)

    def get(self, key: str) -> bytes:
        pack = PackKey.parse(key)
        if pack is not None:
            return self._read_pack(pack, 0, pack.length)
        with self._open(key) as handle:
            return handle.read()

    def get_range(self, key: str, start: int, end: int) -> bytes:
        pack = PackKey.parse(key)
        if pack is not None:
            return self._read_pack(pack, start, end)
        with self._open(key) as handle:
            return os.pread(handle.fileno(), max(0, end - start), start)

    def delete(self, key: str) -> None:
        pack = PackKey.parse(key)
        if pack is not None:
            self.packs.discard(pack)
            return
        self._path(key).unlink(missing_ok=True)

    def exists(self, key: str) -> bool:
        pack = PackKey.parse(key)
        if pack is not None:
            try:
                size = (self.root / PACKS / f"{pack.volume}.pack").stat().st_size
            except FileNotFoundError:
                return False
            return size >= pack.offset + pack.length
        return self._path(key).exists()

    def list_keys(self, prefix: str = "") -> Iterator[StoredKey]:
        """The contents put under names of their own (not those in packs)."""
        if not self.root.exists():
            return
        for first in sorted(self.root.iterdir()):
            if len(first.name) != 3 or not first.name.startswith(prefix[:3]):
                continue
            if first.is_dir():
                for path in sorted(first.iterdir()):
                    if _KEY.match(path.name) and path.name.startswith(prefix):
                        with contextlib.suppress(FileNotFoundError):
                            yield StoredKey(path.name, path.stat().st_mtime)

    # Deposits.

    def append(self, data: Buffer) -> str:
        """Write `data` durably into this process's pack; the key it is read by."""
        return self.packs.append(data)

    def _read_pack(self, pack: PackKey, start: int, end: int) -> bytes:
        start, end = max(0, start), min(end, pack.length)
        try:
            fd = os.open(self.root / PACKS / f"{pack.volume}.pack", os.O_RDONLY)
        except FileNotFoundError:
            raise BlobNotFound(str(pack)) from None
        try:
            chunks, at = [], start
            while at < end:
                chunk = os.pread(fd, end - at, pack.offset + at)
                if not chunk:
                    raise BlobNotFound(f"{pack}: the pack ends before the content")
                chunks.append(chunk)
                at += len(chunk)
        finally:
            os.close(fd)
        return b"".join(chunks)

    def recover_staging(self, stored: Callable[[Sequence[str]], set[str]]) -> tuple[int, int]:
        """Finish or remove what dead processes of an earlier version left staged: an
        object whose key `stored` returns (its row was committed) is put in place, any
        other is deleted. Returns (put in place, removed)."""
        base = self.root / STAGING
        if not base.exists():
            return 0, 0
        promoted = removed = 0
        for lock_path in dead_owners(base):
            area = lock_path.with_suffix("")
            names = [p.name for p in area.iterdir()] if area.exists() else []
            keys = [n for n in names if _KEY.match(n)]
            keep = stored(keys) if keys else set()
            for name in names:
                if name in keep:
                    final = self._path(name)
                    _ensure_dir(final.parent)
                    os.replace(area / name, final)
                    promoted += 1
                else:
                    (area / name).unlink(missing_ok=True)
                    removed += 1 if name in keys else 0
            if area.exists():
                fsync_directory(self.root)
                area.rmdir()
            # Last: a staging directory is never left without its lock file.
            lock_path.unlink(missing_ok=True)
        return promoted, removed

    def close(self) -> None:
        self.packs.close()

    def _path(self, key: str) -> Path:
        check_key(key)
        # One level of 4,096 directories: a few hundred files each at a territory's scale.
        return self.root / key[:3] / key

    @contextlib.contextmanager
    def _open(self, key: str) -> Iterator[BinaryIO]:
        path = self._path(key)
        handle: BinaryIO
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            handle = self._open_staged(key, path)
        with handle:
            yield handle

    def _open_staged(self, key: str, final: Path) -> BinaryIO:
        # Committed by an earlier version but not yet put in place: in a staging area until
        # recovery settles it.
        for area in (self.root / STAGING).glob("*-*"):
            with contextlib.suppress(FileNotFoundError, NotADirectoryError):
                return (area / key).open("rb")
        try:
            return final.open("rb")  # put in place while we looked
        except FileNotFoundError:
            raise BlobNotFound(key) from None


def _write_new(path: Path, data: Buffer) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        path.unlink(missing_ok=True)
        raise
    os.close(fd)


def _ensure_dir(path: Path) -> None:
    """Make `path` and its missing parents, each made durable in its parent: a file
    fsynced into a directory whose own entry is lost in a power cut would be lost too."""
    if path.is_dir():
        return
    missing = []
    at = path
    while not at.is_dir() and at.parent != at:
        missing.append(at)
        at = at.parent
    for directory in reversed(missing):
        try:
            directory.mkdir(mode=0o700)
        except FileExistsError:
            continue
        fsync_directory(directory.parent)


# -- S3 --------------------------------------------------------------------------------------

EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
_S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"


@dataclass(frozen=True, slots=True)
class Credentials:
    access_key: str
    secret_key: str = ""
    session_token: str | None = None

    def __repr__(self) -> str:  # never print the secret
        return f"Credentials(access_key={self.access_key!r})"


def sigv4_authorization(
    *,
    method: str,
    path: str,
    query: Sequence[tuple[str, str]],
    headers: Mapping[str, str],
    payload_sha256: str,
    credentials: Credentials,
    region: str,
    service: str,
    amz_date: str,
) -> str:
    """The `Authorization` header of AWS Signature Version 4 for a request.

    `path` is already URI-encoded (S3 does not encode it a second time); every header in
    `headers` is signed (names are lowercased, values trimmed); `amz_date` is the request's
    `x-amz-date` (YYYYMMDDTHHMMSSZ).
    """
    canonical_query = "&".join(
        f"{k}={v}" for k, v in sorted((_uri_encode(k), _uri_encode(v)) for k, v in query)
    )
    folded = sorted((k.lower().strip(), " ".join(v.split())) for k, v in headers.items())
    canonical_headers = "".join(f"{k}:{v}\n" for k, v in folded)
    signed_headers = ";".join(k for k, _ in folded)
    canonical_request = "\n".join(
        [method, path, canonical_query, canonical_headers, signed_headers, payload_sha256]
    )
    day = amz_date[:8]
    scope = f"{day}/{region}/{service}/aws4_request"
    to_sign = "\n".join(
        [
            "AWS4-HMAC-SHA256",
            amz_date,
            scope,
            hashlib.sha256(canonical_request.encode()).hexdigest(),
        ]
    )
    key = f"AWS4{credentials.secret_key}".encode()
    for part in (day, region, service, "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    return (
        f"AWS4-HMAC-SHA256 Credential={credentials.access_key}/{scope}, "
        f"SignedHeaders={signed_headers}, Signature={signature}"
    )


def _uri_encode(value: str, *, keep_slash: bool = False) -> str:
    return urllib.parse.quote(value, safe="/-_.~" if keep_slash else "-_.~")


class S3Store:
    """An S3-compatible bucket, path-style (`endpoint/bucket/key`): what MinIO, Ceph,
    Garage and the French hosting providers' object stores all accept."""

    def __init__(
        self,
        *,
        endpoint: str,
        bucket: str,
        credentials: Credentials,
        prefix: str = "",
        region: str = "us-east-1",
        transport: httpx.BaseTransport | None = None,
        timeout: float = 30.0,
    ) -> None:
        self._endpoint = httpx.URL(endpoint.rstrip("/"))
        self._host = self._endpoint.netloc.decode("ascii")
        self._bucket = bucket
        self._prefix = prefix.strip("/") + "/" if prefix.strip("/") else ""
        self._credentials = credentials
        self._region = region
        self._client = httpx.Client(transport=transport, timeout=timeout)
        self.clock: Callable[[], datetime] = lambda: datetime.now(UTC)

    @classmethod
    def from_url(
        cls,
        url: str,
        *,
        environ: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> S3Store:
        """`s3://bucket/prefix?endpoint=http://host:port&region=…`; credentials from
        AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY (and AWS_SESSION_TOKEN if set)."""
        env = os.environ if environ is None else environ
        parts = urllib.parse.urlsplit(url)
        params = dict(urllib.parse.parse_qsl(parts.query))
        region = params.get("region") or env.get("AWS_REGION") or "us-east-1"
        endpoint = params.get("endpoint") or f"https://s3.{region}.amazonaws.com"
        access, secret = env.get("AWS_ACCESS_KEY_ID", ""), env.get("AWS_SECRET_ACCESS_KEY", "")
        if not parts.netloc or not access or not secret:
            raise ConfigurationError(
                "an s3:// storage URL needs a bucket, and AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY in the environment"
            )
        return cls(
            endpoint=endpoint,
            bucket=parts.netloc,
            prefix=parts.path,
            region=region,
            credentials=Credentials(access, secret, env.get("AWS_SESSION_TOKEN") or None),
            transport=transport,
        )

    def create_bucket(self) -> None:
        """Create the bucket if it does not exist (development setups, tests)."""
        body = b""
        if self._region != "us-east-1":  # S3's one region that takes no location
            body = (
                '<CreateBucketConfiguration xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
                f"<LocationConstraint>{self._region}</LocationConstraint>"
                "</CreateBucketConfiguration>"
            ).encode()
        response = self._request("PUT", f"/{self._bucket}", body=body)
        if response.status_code not in (200, 409):
            raise self._error(response)

    def put(self, key: str, data: Buffer) -> None:
        response = self._request("PUT", self._object(key), body=bytes(data))
        if response.status_code != 200:
            raise self._error(response)

    def get(self, key: str) -> bytes:
        response = self._request("GET", self._object(key))
        if response.status_code == 404:
            raise BlobNotFound(key)
        if response.status_code != 200:
            raise self._error(response)
        return response.content

    def get_range(self, key: str, start: int, end: int) -> bytes:
        if end <= start:
            return b""
        response = self._request(
            "GET", self._object(key), headers={"range": f"bytes={start}-{end - 1}"}
        )
        if response.status_code == 404:
            raise BlobNotFound(key)
        if response.status_code == 416:
            return b""  # the range starts past the end
        if response.status_code == 200:
            return response.content[start:end]  # a store that ignores Range
        if response.status_code != 206:
            raise self._error(response)
        return response.content

    def delete(self, key: str) -> None:
        response = self._request("DELETE", self._object(key))
        if response.status_code not in (200, 204, 404):
            raise self._error(response)

    def exists(self, key: str) -> bool:
        response = self._request("HEAD", self._object(key))
        if response.status_code in (200, 404):
            return response.status_code == 200
        raise self._error(response)

    def list_keys(self, prefix: str = "", *, page_size: int = 1000) -> Iterator[StoredKey]:
        # Objects are named prefix/ab/cd/<key>: listing under the key's first four
        # characters keeps the store's ascending order, which is the keys' order.
        listed = self._prefix + (f"{prefix[:2]}/" if len(prefix) >= 2 else prefix)
        if len(prefix) >= 4:
            listed += f"{prefix[2:4]}/"
        token: str | None = None
        while True:
            query = [("list-type", "2"), ("max-keys", str(page_size)), ("prefix", listed)]
            if token:
                query.append(("continuation-token", token))
            response = self._request("GET", f"/{self._bucket}", query=query)
            if response.status_code != 200:
                raise self._error(response)
            # The answer of the object store this deployment is configured with.
            root = ElementTree.fromstring(response.content)  # noqa: S314
            for item in root.iter(f"{_S3_NS}Contents"):
                name = (item.findtext(f"{_S3_NS}Key") or "").rsplit("/", 1)[-1]
                modified = item.findtext(f"{_S3_NS}LastModified") or ""
                if _KEY.match(name) and name.startswith(prefix):
                    when = datetime.fromisoformat(modified.replace("Z", "+00:00"))
                    yield StoredKey(name, when.timestamp())
            token = root.findtext(f"{_S3_NS}NextContinuationToken")
            if root.findtext(f"{_S3_NS}IsTruncated") != "true" or not token:
                return

    def close(self) -> None:
        self._client.close()

    def _object(self, key: str) -> str:
        check_key(key)
        return f"/{self._bucket}/{self._prefix}{key[:2]}/{key[2:4]}/{key}"

    def _request(
        self,
        method: str,
        path: str,
        *,
        query: Sequence[tuple[str, str]] = (),
        headers: Mapping[str, str] | None = None,
        body: bytes = b"",
    ) -> httpx.Response:
        path = _uri_encode(self._endpoint.path.rstrip("/") + path, keep_slash=True)
        amz_date = self.clock().strftime("%Y%m%dT%H%M%SZ")
        if self._endpoint.scheme == "https":
            # TLS protects the body in transit and the envelope's tags authenticate it
            # anyway: hashing every byte once more for the signature would buy nothing.
            payload = "UNSIGNED-PAYLOAD"
        else:
            payload = hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256
        signed = {
            "host": self._host,
            "x-amz-date": amz_date,
            "x-amz-content-sha256": payload,
            **(headers or {}),
        }
        if self._credentials.session_token:
            signed["x-amz-security-token"] = self._credentials.session_token
        signed["authorization"] = sigv4_authorization(
            method=method,
            path=path,
            query=query,
            headers=signed,
            payload_sha256=signed["x-amz-content-sha256"],
            credentials=self._credentials,
            region=self._region,
            service="s3",
            amz_date=amz_date,
        )
        encoded_query = "&".join(f"{_uri_encode(k)}={_uri_encode(v)}" for k, v in query)
        url = self._endpoint.copy_with(
            raw_path=(path + (f"?{encoded_query}" if encoded_query else "")).encode("ascii")
        )
        try:
            return self._client.request(method, url, headers=signed, content=body or None)
        except httpx.HTTPError as exc:
            raise StoreError(f"object store unreachable: {exc}") from exc

    @staticmethod
    def _error(response: httpx.Response) -> StoreError:
        code = ""
        with contextlib.suppress(ElementTree.ParseError):
            if response.content:
                code = ElementTree.fromstring(response.content).findtext("Code") or ""  # noqa: S314
        return StoreError(f"object store answered {response.status_code} {code}".rstrip())
