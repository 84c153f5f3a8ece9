"""Languages of the portal: French first, English too.

Catalogs are the .po files themselves, read with Babel when first needed (no compile step).
Message ids are English; French is the default language. One Jinja2 environment per
language, each with its translations installed, so a template never mixes languages.
"""

from __future__ import annotations

from functools import cache
from importlib import resources
from io import BytesIO

from babel.core import negotiate_locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations
from jinja2 import Environment, PackageLoader, select_autoescape

LOCALES = ("fr", "en")
DEFAULT_LOCALE = "fr"
LANG_COOKIE = "lang"
LANGUAGE_NAMES = {"fr": "Français", "en": "English"}


def N_(message: str) -> str:  # noqa: N802 - the gettext convention for a no-op marker
    """Mark a message for extraction; it is translated where it is shown."""
    return message


@cache
def translations(locale: str) -> Translations:
    po_file = resources.files("partage.web").joinpath(
        "locale", locale, "LC_MESSAGES", "messages.po"
    )
    with po_file.open("rb") as handle:
        catalog = read_po(handle, locale=locale, domain="messages")
    compiled = BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return Translations(fp=compiled, domain="messages")


def gettext(locale: str, message: str) -> str:
    return translations(locale).gettext(message)


@cache
def environment(locale: str) -> Environment:
    env = Environment(
        loader=PackageLoader("partage.web", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        extensions=["jinja2.ext.i18n"],
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.install_gettext_translations(translations(locale), newstyle=True)  # type: ignore[attr-defined]
    env.globals["locale"] = locale
    return env


def _parse_accept_language(header: str) -> list[str]:
    """Language tags of an Accept-Language header, most preferred first."""
    weighted: list[tuple[float, int, str]] = []
    for position, part in enumerate(header.split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        tag = tag.strip()
        if not tag or tag == "*":
            continue
        quality = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                quality = float(params[2:])
            except ValueError:
                continue
        if quality > 0:
            weighted.append((-quality, position, tag.replace("-", "_")))
    return [tag for _, _, tag in sorted(weighted)]


def choose_locale(cookie: str | None, accept_language: str | None) -> str:
    """The `lang` cookie (the person chose), else the browser's preference, else French."""
    if cookie in LOCALES:
        return str(cookie)
    if accept_language:
        chosen = negotiate_locale(_parse_accept_language(accept_language), list(LOCALES))
        if chosen:
            return chosen.split("_")[0]
    return DEFAULT_LOCALE
