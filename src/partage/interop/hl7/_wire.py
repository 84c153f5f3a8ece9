"""HL7 v2 ER7 encoding: separators, escape sequences, and a message split into a typed tree.

A message is split into plain tuples of already-unescaped strings (segment, field,
repetition, component, sub-component), so the ADT code above can index fields without
caring whether a level had separators. The tree is the one python-hl7 builds, without its
untyped containers (and much faster).

python-hl7's `unescape` is not used: it logs the whole field value on an unknown escape
sequence (patient data in logs) and raises on a malformed repeat count.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

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
    """Split a message (segments separated by CR) and unescape every value.

    The tree is the one python-hl7 builds (`hl7.parse`), without its containers: plain
    `str.split` at each level, about ten times faster (parsing was a good part of the
    listener's time per message). MSH-1 and MSH-2 are kept verbatim.

    Raises ValueError when a segment is not named like an HL7 segment.
    """
    text = text.strip()
    separator = text[3]  # the message's field separator, as python-hl7 takes it
    levels = (encoding.repetition, encoding.component, encoding.subcomponent)
    segments: list[Segment] = []
    for line in text.split("\r"):
        fields = _split_segment(line, separator, levels, encoding, charset)
        name = fields[0][0][0][0] if fields and fields[0] and fields[0][0] else ""
        if not name and all(not any(any(c) for c in r) for f in fields for r in f):
            continue  # a blank line between segments
        if not _SEGMENT_NAME.fullmatch(name):
            raise ValueError("segment name")
        if name == "MSH":
            # MSH-1 and MSH-2 hold the separators themselves: kept verbatim.
            fields[1:3] = [(((encoding.field,),),), (((encoding.characters,),),)]
        segments.append(Segment(name, tuple(fields[1:])))
    return tuple(segments)


def _split_segment(
    line: str, separator: str, levels: tuple[str, str, str], encoding: Encoding, charset: str
) -> list[Field]:
    rest = line
    head: list[Field] = []
    if line[:3] in ("MSH", "BHS", "FHS") and any(c in line for c in (separator, *levels)):
        # The header's first two fields are the separators, not separated by them.
        own = line[3]
        end = line.find(own, 4)
        head = [_leaf(line[:3], encoding, charset), _leaf(own, encoding, charset)]
        head.append(_leaf(line[4:end], encoding, charset))
        rest = line[end + 1 :]
        if not rest:
            return head
    repetition, component, subcomponent = levels
    if encoding.escape not in rest:  # nothing to unescape (most segments)
        return head + [
            tuple(
                tuple(tuple(part.split(subcomponent)) for part in rep.split(component))
                for rep in field.split(repetition)
            )
            for field in rest.split(separator)
        ]
    return head + [
        tuple(
            tuple(
                tuple(unescape(sub, encoding, charset) for sub in part.split(subcomponent))
                for part in rep.split(component)
            )
            for rep in field.split(repetition)
        )
        for field in rest.split(separator)
    ]


def _leaf(value: str, encoding: Encoding, charset: str) -> Field:
    return (((unescape(value, encoding, charset),),),)


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
