"""Every message of the portal has its French translation, and the catalogs load."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.pofile import read_po

from partage.web.i18n import choose_locale, translations

WEB = Path(str(resources.files("partage.web")))
METHOD_MAP = [("templates/**.html", "jinja2.ext:babel_extract"), ("*.py", "python")]
OPTIONS_MAP = {"templates/**.html": {"extensions": "jinja2.ext.i18n"}}
KEYWORDS = {**DEFAULT_KEYWORDS, "N_": None}


def extracted_messages() -> dict[str | tuple[str, ...], str]:
    """Message id -> where it was found, from the templates and the marked Python sources."""
    found: dict[str | tuple[str, ...], str] = {}
    for filename, lineno, message, _comments, _context in extract_from_dir(
        str(WEB), METHOD_MAP, OPTIONS_MAP, KEYWORDS
    ):
        key = message if isinstance(message, str) else tuple(message)
        found.setdefault(key, f"{filename}:{lineno}")
    return found


def french_catalog() -> dict[str | tuple[str, ...], object]:
    po_file = WEB / "locale" / "fr" / "LC_MESSAGES" / "messages.po"
    with po_file.open("rb") as handle:
        catalog = read_po(handle, locale="fr")
    return {
        (m.id if isinstance(m.id, str) else tuple(m.id)): m.string
        for m in catalog
        if m.id and not m.fuzzy
    }


def _translated(string: object) -> bool:
    if isinstance(string, str):
        return bool(string.strip())
    return isinstance(string, tuple | list) and all(str(s).strip() for s in string)


def test_every_message_has_a_french_translation() -> None:
    messages = extracted_messages()
    assert len(messages) > 100  # the extraction really read the templates and sources
    catalog = french_catalog()
    missing = [
        f"{where}: {msgid!r}"
        for msgid, where in messages.items()
        if not _translated(catalog.get(msgid))
    ]
    assert not missing, "untranslated in fr/messages.po:\n" + "\n".join(missing)


def test_both_catalogs_load_without_a_compile_step() -> None:
    assert translations("fr").gettext("Skip to content") == "Aller au contenu"
    assert translations("en").gettext("Skip to content") == "Skip to content"
    assert translations("fr").ngettext("%(num)s application", "%(num)s applications", 2) == (
        "%(num)s applications"
    )


def test_language_choice() -> None:
    assert choose_locale(None, None) == "fr"
    assert choose_locale("en", "fr-FR") == "en"
    assert choose_locale("xx", "en-US,en;q=0.9") == "en"
    assert choose_locale(None, "de;q=1, en;q=0.5") == "en"
    assert choose_locale(None, "en;q=0, fr;q=0.1") == "fr"
    assert choose_locale(None, "nonsense;q=x") == "fr"
