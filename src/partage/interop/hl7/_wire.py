"""HL7 v2 ER7 encoding: separators, escape sequences, and a typed view of python-hl7's tree.

python-hl7 has no type hints and returns a tree whose levels are sometimes containers and
sometimes bare strings (a field without separators is a one-string list). Everything here
turns that into plain tuples of already-unescaped strings, so the ADT code above can index
fields without caring about either.

python-hl7's own `unescape` is not used: it logs the whole field value on an unknown escape
sequence (patient data in logs) and raises on a malformed repeat count.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import hl7

Component = tuple[str, ...]  # its sub-components
Repetition = tuple[Component, ...]
Field = tuple[Repetition, ...]

_SEGMENT_NAME = re.compile(r"[A-Z][A-Z0-9]{2}")


@dataclass(frozen=True, slots=True)
class Encoding:
    """The separators a message declares in MSH-1 and MSH-2."""

    field: str = "|"
    component: str = "^"
    repetition: str = "~"
    escape: str = "\\"
    subcomponent: str = "&"

    @property
    def characters(self) -> str:
        """MSH-2 as it is written in a message."""
        return self.component + self.repetition + self.escape + self.subcomponent

    @classmethod
    def read(cls, text: str) -> Encoding | None:
        """The separators of a message starting with "MSH", or None when they are unusable.

        HL7 v2.5 has four encoding characters; a fifth (the v2.7 truncation character) is
        tolerated and ignored. They must be distinct, and neither letters, digits, blanks nor
        segment terminators, or no field boundary could be trusted.
        """
        if len(text) < 8 or not text.startswith("MSH"):
            return None
        field = text[3]
        end = text.find(field, 4)
        declared = text[4:end] if end >= 0 else ""
        if len(declared) not in (4, 5):
            return None
        chars = field + declared
        if len(set(chars)) != len(chars):
            return None
        if any(c.isalnum() or c.isspace() or not c.isprintable() for c in chars):
            return None
        return cls(field, declared[0], declared[1], declared[2], declared[3])


DEFAULT_ENCODING = Encoding()


@dataclass(frozen=True, slots=True)
class Segment:
    """One segment; `fields[0]` is field 1 (for MSH, MSH-1 is the field separator)."""

    name: str
    fields: tuple[Field, ...]

    def field(self, number: int) -> Field:
        return self.fields[number - 1] if 0 < number <= len(self.fields) else ()

    def repetitions(self, number: int) -> tuple[Repetition, ...]:
        """The field's repetitions, the empty ones left out (`a~~b` has two)."""
        return tuple(rep for rep in self.field(number) if any(any(c) for c in rep))

    def value(self, number: int, component: int = 1, subcomponent: int = 1) -> str:
        """One sub-component of the field's first repetition, "" when absent."""
        reps = self.field(number)
        return part(reps[0], component, subcomponent) if reps else ""


def part(repetition: Repetition, component: int = 1, subcomponent: int = 1) -> str:
    """One sub-component of a repetition (1-based, as HL7 numbers them), "" when absent."""
    if not 0 < component <= len(repetition):
        return ""
    subs = repetition[component - 1]
    return subs[subcomponent - 1].strip() if 0 < subcomponent <= len(subs) else ""


def split_segments(text: str, encoding: Encoding, charset: str) -> tuple[Segment, ...]:
    """Split a message (segments separated by CR) with python-hl7 and unescape every value.

    Raises ValueError when a segment is not named like an HL7 segment. Anything python-hl7
    itself raises is left to the caller, which cannot know its exception types either.
    """
    segments: list[Segment] = []
    for node in hl7.parse(text):
        fields = [_field(f, encoding, charset) for f in node]
        name = fields[0][0][0][0] if fields and fields[0] and fields[0][0] else ""
        if not name and all(not any(any(c) for c in r) for f in fields for r in f):
            continue  # a blank line between segments
        if not _SEGMENT_NAME.fullmatch(name):
            raise ValueError("segment name")
        if name == "MSH":
            # python-hl7 gives MSH-1 and MSH-2 as bare strings: keep them verbatim.
            fields[1:3] = [(((encoding.field,),),), (((encoding.characters,),),)]
        segments.append(Segment(name, tuple(fields[1:])))
    return tuple(segments)


def _field(node: object, encoding: Encoding, charset: str) -> Field:
    items = node if isinstance(node, list) else [node]
    return tuple(_repetition(item, encoding, charset) for item in items)


def _repetition(node: object, encoding: Encoding, charset: str) -> Repetition:
    if isinstance(node, list):
        return tuple(_component(c, encoding, charset) for c in node)
    return (_component(node, encoding, charset),)


def _component(node: object, encoding: Encoding, charset: str) -> Component:
    if isinstance(node, list):
        return tuple(unescape(str(s), encoding, charset) for s in node)
    return (unescape(str(node), encoding, charset),)


def unescape(value: str, encoding: Encoding, charset: str = "utf-8") -> str:
    """Resolve HL7 escape sequences (\\F\\ \\S\\ \\T\\ \\R\\ \\E\\ \\Xhh\\ \\.br\\).

    Formatting and character-set switches (\\H\\, \\N\\, \\Cxxyy\\, \\.sp\\...) carry nothing
    for identity traits and are dropped. A lone escape character is kept as it is.
    """
    esc = encoding.escape
    if esc not in value:
        return value
    plain = {
        "F": encoding.field,
        "S": encoding.component,
        "T": encoding.subcomponent,
        "R": encoding.repetition,
        "E": esc,
        ".br": " ",
    }
    out: list[str] = []
    i = 0
    while i < len(value):
        start = value.find(esc, i)
        if start < 0:
            out.append(value[i:])
            break
        out.append(value[i:start])
        end = value.find(esc, start + 1)
        if end < 0:
            out.append(value[start:])
            break
        sequence = value[start + 1 : end]
        if sequence in plain:
            out.append(plain[sequence])
        elif sequence[:1] == "X" and re.fullmatch(r"(?:[0-9A-Fa-f]{2})+", sequence[1:]):
            # Hexadecimal bytes, in the message's character set.
            out.append(bytes.fromhex(sequence[1:]).decode(charset, errors="replace"))
        i = end + 1
    return "".join(out)


def escape(value: str, encoding: Encoding) -> str:
    """Make free text safe inside one component of a message written with `encoding`."""
    esc = encoding.escape
    table = {
        esc: f"{esc}E{esc}",
        encoding.field: f"{esc}F{esc}",
        encoding.component: f"{esc}S{esc}",
        encoding.subcomponent: f"{esc}T{esc}",
        encoding.repetition: f"{esc}R{esc}",
        "\r": " ",
        "\n": " ",
    }
    return "".join(table.get(c, c) for c in value)
