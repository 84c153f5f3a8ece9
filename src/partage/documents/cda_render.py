"""CDA documents as HTML a web page can embed: generated from a whitelist, never copied.

The narrative of a CDA document is markup written by a sender's software, sometimes by
hand; showing it must never run anything in the reader's browser. So nothing of it is
passed through: every HTML element here is one this module writes (from the few narrative
elements CDA defines), every piece of text and every attribute value is escaped, and the
only attributes carried over are integers (colspan, rowspan) and http(s) links. No style,
no event handler, no script, no frame, and no reference the browser would fetch by itself:
embedded media (a level-1 PDF or image, a level-3 observationMedia) become `Attachment`s
the page serves from its own route, at the URL `attachment_url(id)` gives.

That route must still be careful with what it serves: `Attachment.inline_safe` says which
types may be shown inline; anything else should go out as a download
(`Content-Disposition: attachment`), always with `X-Content-Type-Options: nosniff`.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from urllib.parse import urlsplit
from xml.etree.ElementTree import Element

from markupsafe import escape

from partage.documents.cda import (
    HL7_NS,
    CdaDocument,
    Hl7Time,
    PersonName,
    TimePrecision,
    parse_cda,
)

_NS = "{" + HL7_NS + "}"

# Types a browser shows without running anything: a route may serve these inline.
INLINE_SAFE_TYPES = frozenset(
    {"application/pdf", "text/plain", "image/png", "image/jpeg", "image/gif"}
)
_IMAGE_TYPES = frozenset({"image/png", "image/jpeg", "image/gif"})
_MAGIC = (
    (b"%PDF-", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
)
_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
_MAX_SPAN = 1000
# Nesting beyond these is flattened to text: a hostile document cannot exhaust the stack.
_MAX_DEPTH = 100
_MAX_SECTION_DEPTH = 30

LABELS: dict[str, dict[str, str]] = {
    "fr": {
        "patient": "Patient",
        "born": "né(e) le",
        "birth_name": "nom de naissance",
        "sex": "sexe",
        "ins": "INS",
        "author": "Auteur",
        "organization": "Organisation",
        "custodian": "Établissement responsable",
        "date": "Date du document",
        "service": "Date de l'acte",
        "legal": "Validé par",
        "confidentiality": "Confidentialité",
        "N": "normale",
        "R": "restreinte",
        "V": "très restreinte",
        "pdf": "document PDF joint",
        "attachment": "pièce jointe",
        "missing": "pièce jointe introuvable",
        "to": "au",
    },
    "en": {
        "patient": "Patient",
        "born": "born",
        "birth_name": "birth name",
        "sex": "sex",
        "ins": "INS",
        "author": "Author",
        "organization": "Organisation",
        "custodian": "Custodian",
        "date": "Document date",
        "service": "Date of service",
        "legal": "Signed by",
        "confidentiality": "Confidentiality",
        "N": "normal",
        "R": "restricted",
        "V": "very restricted",
        "pdf": "attached PDF document",
        "attachment": "attachment",
        "missing": "attachment not found",
        "to": "to",
    },
}


@dataclass(frozen=True)
class Attachment:
    """Embedded content the page serves itself. `media_type` is the declared one unless the
    bytes say otherwise (a "image/jpeg" that is a PNG is served as a PNG)."""

    id: str
    media_type: str
    data: bytes = field(repr=False)
    title: str | None = None

    @property
    def inline_safe(self) -> bool:
        return self.media_type in INLINE_SAFE_TYPES


@dataclass(frozen=True)
class RenderedCda:
    html: str
    attachments: list[Attachment]


def _default_attachment_url(attachment_id: str) -> str:
    return "#attachment-" + attachment_id


def render_cda(
    document: CdaDocument | bytes,
    *,
    locale: str = "fr",
    attachment_url: Callable[[str], str] = _default_attachment_url,
) -> RenderedCda:
    """The document as an HTML fragment (header block, then body) and its attachments.

    Bytes are parsed first (`InvalidCda` if they are not a usable CDA document).
    """
    if isinstance(document, bytes):
        document = parse_cda(document)
    renderer = _Renderer(document, "en" if locale == "en" else "fr", attachment_url)
    return renderer.render()


def _sniff(data: bytes, declared: str) -> str:
    for magic, media_type in _MAGIC:
        if data.startswith(magic):
            return media_type
    return declared


class _Renderer:
    def __init__(self, document: CdaDocument, locale: str, url: Callable[[str], str]) -> None:
        self.document = document
        self.locale = locale
        self.labels = LABELS[locale]
        self.url = url
        self.attachments: dict[str, Attachment] = {}
        self._by_source: dict[str, str] = {}
        self._media: dict[str, Element] | None = None

    def render(self) -> RenderedCda:
        parts = ['<article class="cda-document">', self._header(), '<div class="cda-body">']
        if self.document.non_xml_body is not None:
            parts.append(self._level1())
        else:
            body = self.document.root.find(f"{_NS}component/{_NS}structuredBody")
            if body is not None:
                for section in body.findall(f"{_NS}component/{_NS}section"):
                    parts.extend(self._section(section, 1))
        parts.append("</div></article>")
        return RenderedCda(html="".join(parts), attachments=list(self.attachments.values()))

    # -- header ----------------------------------------------------------------------------

    def _header(self) -> str:
        doc, lab = self.document, self.labels
        rows: list[tuple[str, str]] = []
        patient = doc.patient
        name = " ".join(
            p
            for p in (
                patient.used_family_name or patient.birth_family_name,
                patient.used_given_name or " ".join(patient.given_names),
            )
            if p
        )
        details = []
        if patient.birth_family_name and patient.birth_family_name != (
            patient.used_family_name or patient.birth_family_name
        ):
            details.append(f"{lab['birth_name']} {patient.birth_family_name}")
        if patient.birth_date is not None:
            details.append(f"{lab['born']} {self._date(patient.birth_date.isoformat())}")
        if patient.sex:
            details.append(f"{lab['sex']} {patient.sex}")
        if patient.ins:
            details.append(f"{lab['ins']} {patient.ins}")
        rows.append((lab["patient"], ", ".join([name or "?", *details])))
        author = doc.author
        if author is not None:
            who = _name(author.name) or author.device_name or ""
            if author.code is not None and author.code.display:
                who = f"{who} ({author.code.display})" if who else author.code.display
            if who:
                rows.append((lab["author"], who))
            if author.organization is not None and author.organization.name:
                rows.append((lab["organization"], author.organization.name))
        custodian = doc.custodian
        if (
            custodian is not None
            and custodian.name
            and (author is None or author.organization != custodian)
        ):
            rows.append((lab["custodian"], custodian.name))
        if doc.effective_time is not None:
            rows.append((lab["date"], self._time(doc.effective_time)))
        event = doc.service_event
        if event is not None and (event.start or event.end):
            span = self._time(event.start) if event.start is not None else ""
            if event.end is not None and event.end != event.start:
                span = f"{span} {lab['to']} {self._time(event.end)}".strip()
            rows.append((lab["service"], span))
        legal = doc.legal_authenticator
        if legal is not None and _name(legal.name):
            signed = _name(legal.name)
            if legal.time is not None:
                signed = f"{signed}, {self._time(legal.time)}"
            rows.append((lab["legal"], signed))
        if doc.confidentiality_code:
            code = doc.confidentiality_code
            rows.append((lab["confidentiality"], lab.get(code, code)))
        out = ['<header class="cda-header">']
        if doc.title:
            out.append(f'<h1 class="cda-title">{escape(doc.title)}</h1>')
        out.append('<dl class="cda-meta">')
        for label, value in rows:
            out.append(f"<dt>{escape(label)}</dt><dd>{escape(value)}</dd>")
        out.append("</dl></header>")
        return "".join(out)

    def _date(self, iso: str) -> str:
        year, month, day = iso[:10].split("-")
        return f"{day}/{month}/{year}" if self.locale == "fr" else f"{year}-{month}-{day}"

    def _time(self, time: Hl7Time) -> str:
        text = self._date(time.at.date().isoformat())
        if time.precision in (TimePrecision.year, TimePrecision.month, TimePrecision.day):
            return text
        return f"{text} {time.at:%H:%M}"

    # -- level 1 ---------------------------------------------------------------------------

    def _level1(self) -> str:
        body = self.document.non_xml_body
        assert body is not None
        declared = body.media_type or "application/octet-stream"
        attachment = self._attach(
            "body", "document", _sniff(body.data, declared), body.data, self.document.title
        )
        url = escape(self.url(attachment.id))
        if attachment.media_type == "text/plain":
            text = body.data.decode("utf-8", errors="replace")
            return f'<pre class="cda-text">{escape(text)}</pre>'
        if attachment.media_type in _IMAGE_TYPES:
            alt = escape(self.document.title or self.labels["attachment"])
            return f'<p class="cda-image"><img src="{url}" alt="{alt}"></p>'
        label = (
            self.labels["pdf"]
            if attachment.media_type == "application/pdf"
            else f"{self.labels['attachment']} ({attachment.media_type})"
        )
        return f'<p class="cda-attachment"><a href="{url}">{escape(label)}</a></p>'

    def _attach(
        self, source: str, fallback: str, media_type: str, data: bytes, title: str | None
    ) -> Attachment:
        if source in self._by_source:
            return self.attachments[self._by_source[source]]
        if _SAFE_ID.match(source) and source not in self.attachments:
            attachment_id = source
        else:
            attachment_id = f"{fallback}-{len(self.attachments) + 1}"
        attachment = Attachment(id=attachment_id, media_type=media_type, data=data, title=title)
        self.attachments[attachment_id] = attachment
        self._by_source[source] = attachment_id
        return attachment

    # -- level 3 ---------------------------------------------------------------------------

    def _section(self, section: Element, depth: int) -> Iterator[str]:
        if depth > _MAX_SECTION_DEPTH:
            yield f"<p>{escape(' '.join(''.join(section.itertext()).split()))}</p>"
            return
        yield '<section class="cda-section">'
        title = section.find(_NS + "title")
        if title is not None:
            level = min(depth + 1, 4)
            text = " ".join("".join(title.itertext()).split())
            if text:
                yield f"<h{level}>{escape(text)}</h{level}>"
        text_block = section.find(_NS + "text")
        if text_block is not None:
            yield '<div class="cda-narrative">'
            yield from self._children(text_block, 0)
            yield "</div>"
        for child in section.findall(f"{_NS}component/{_NS}section"):
            yield from self._section(child, depth + 1)
        yield "</section>"

    def _children(self, element: Element, depth: int) -> Iterator[str]:
        if element.text:
            yield str(escape(element.text))
        for child in element:
            yield from self._element(child, depth + 1)
            if child.tail:
                yield str(escape(child.tail))

    def _element(self, element: Element, depth: int) -> Iterator[str]:
        tag = element.tag if isinstance(element.tag, str) else ""
        name = tag[len(_NS) :] if tag.startswith(_NS) else None
        if depth > _MAX_DEPTH or name is None:
            yield str(escape("".join(element.itertext())))
            return
        simple = _SIMPLE.get(name)
        if simple is not None:
            yield simple[0]
            yield from self._children(element, depth)
            yield simple[1]
        elif name == "br":
            yield "<br>"
        elif name == "content":
            yield from self._content(element, depth)
        elif name == "list":
            yield from self._list(element, depth)
        elif name == "table":
            yield from self._table(element, depth)
        elif name in ("td", "th"):
            yield from self._cell(element, name, depth)
        elif name == "renderMultiMedia":
            yield from self._multimedia(element)
        elif name == "linkHtml":
            yield from self._link(element, depth)
        elif name in ("footnoteRef", "colgroup", "col"):
            return
        else:
            yield str(escape("".join(element.itertext())))

    def _content(self, element: Element, depth: int) -> Iterator[str]:
        if (element.get("revised") or "").strip() == "delete":
            return  # CDA: content marked deleted is kept for the record, not shown
        tags = _style_tags(element.get("styleCode") or "")
        yield "".join(f"<{t}>" for t in tags)
        yield from self._children(element, depth)
        yield "".join(f"</{t}>" for t in reversed(tags))

    def _list(self, element: Element, depth: int) -> Iterator[str]:
        caption = element.find(_NS + "caption")
        if caption is not None:
            yield '<p class="cda-caption">'
            yield from self._children(caption, depth)
            yield "</p>"
        tag = "ol" if (element.get("listType") or "").strip() == "ordered" else "ul"
        yield f"<{tag}>"
        for item in element.findall(_NS + "item"):
            yield "<li>"
            yield from self._children(item, depth)
            yield "</li>"
        yield f"</{tag}>"

    def _table(self, element: Element, depth: int) -> Iterator[str]:
        yield '<table class="cda-table">'
        for child in element:
            if child.tag == _NS + "caption":
                yield "<caption>"
                yield from self._children(child, depth)
                yield "</caption>"
            elif child.tag in (_NS + "thead", _NS + "tbody", _NS + "tfoot"):
                part = child.tag[len(_NS) :]
                yield f"<{part}>"
                for row in child.findall(_NS + "tr"):
                    yield from self._element(row, depth + 1)
                yield f"</{part}>"
            elif child.tag == _NS + "tr":
                yield from self._element(child, depth + 1)
        yield "</table>"

    def _cell(self, element: Element, name: str, depth: int) -> Iterator[str]:
        attributes = ""
        for attribute in ("colspan", "rowspan"):
            value = (element.get(attribute) or "").strip()
            if value.isascii() and value.isdigit() and 1 < int(value) <= _MAX_SPAN:
                attributes += f' {attribute}="{int(value)}"'
        tags = _style_tags(element.get("styleCode") or "")
        yield f"<{name}{attributes}>" + "".join(f"<{t}>" for t in tags)
        yield from self._children(element, depth)
        yield "".join(f"</{t}>" for t in reversed(tags)) + f"</{name}>"

    def _multimedia(self, element: Element) -> Iterator[str]:
        caption = element.find(_NS + "caption")
        title = " ".join("".join(caption.itertext()).split()) if caption is not None else None
        for reference in (element.get("referencedObject") or "").split():
            media = self._media_index().get(reference)
            value = media.find(_NS + "value") if media is not None else None
            data = _decode_media(value) if value is not None else None
            if value is None or data is None:
                yield f'<span class="cda-missing">[{escape(self.labels["missing"])}]</span>'
                continue
            declared = (value.get("mediaType") or "application/octet-stream").strip().lower()
            attachment = self._attach(reference, "media", _sniff(data, declared), data, title)
            url = escape(self.url(attachment.id))
            label = escape(title or f"{self.labels['attachment']} ({attachment.media_type})")
            if attachment.media_type in _IMAGE_TYPES:
                yield f'<img class="cda-media" src="{url}" alt="{label}">'
            else:
                yield f'<a class="cda-media" href="{url}">{label}</a>'

    def _media_index(self) -> dict[str, Element]:
        if self._media is None:
            self._media = {}
            for media in self.document.root.iter(_NS + "observationMedia"):
                identifier = (media.get("ID") or "").strip()
                if identifier:
                    self._media.setdefault(identifier, media)
        return self._media

    def _link(self, element: Element, depth: int) -> Iterator[str]:
        href = _safe_href(element.get("href") or "")
        if href is None:
            yield from self._children(element, depth)
            return
        yield f'<a href="{escape(href)}" rel="noopener noreferrer nofollow">'
        yield from self._children(element, depth)
        yield "</a>"


_SIMPLE = {
    "paragraph": ("<p>", "</p>"),
    "sub": ("<sub>", "</sub>"),
    "sup": ("<sup>", "</sup>"),
    "footnote": ('<small class="cda-footnote">', "</small>"),
    "caption": ('<span class="cda-caption">', "</span>"),
    "tr": ("<tr>", "</tr>"),
    "thead": ("<thead>", "</thead>"),
    "tbody": ("<tbody>", "</tbody>"),
    "tfoot": ("<tfoot>", "</tfoot>"),
    "item": ("<li>", "</li>"),
}
# styleCode tokens (case-insensitive; "BoldItalics" is a variant seen in real documents).
_STYLE_TAGS = {
    "bold": ("strong",),
    "italics": ("em",),
    "underline": ("u",),
    "emphasis": ("em",),
    "bolditalics": ("strong", "em"),
}


def _style_tags(style_code: str) -> list[str]:
    tags: list[str] = []
    for token in style_code.lower().split():
        for tag in _STYLE_TAGS.get(token, ()):
            if tag not in tags:
                tags.append(tag)
    return tags


def _safe_href(href: str) -> str | None:
    """`href` if it is an absolute http(s) URL, else None. Whitespace and control characters
    are dropped first: they are never meaningful in a URL, and "java\\tscript:" is a trick."""
    cleaned = "".join(c for c in href if c > " " and c != "\x7f")
    try:
        parts = urlsplit(cleaned)
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return cleaned


def _decode_media(value: Element) -> bytes | None:
    text = "".join(value.itertext())
    if (value.get("representation") or "TXT").strip().upper() != "B64":
        return text.encode("utf-8") if text.strip() else None  # a reference is never fetched
    try:
        return base64.b64decode("".join(text.split()), validate=True)
    except (binascii.Error, ValueError):
        return None


def _name(name: PersonName | None) -> str:
    if name is None:
        return ""
    return " ".join(p for p in (name.prefix, *name.given, name.family) if p)
