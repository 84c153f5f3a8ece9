"""CDA R2 documents: header extraction, refusal of unsafe XML, and HTML that runs nothing."""

from __future__ import annotations

import os
import re
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from partage.documents.cda import (
    CodedValue,
    InstanceId,
    InvalidCda,
    Organization,
    PersonName,
    TimePrecision,
    parse_cda,
    parse_hl7_time,
)
from partage.documents.cda_render import render_cda
from tests.documents import cda_samples as samples

CET = timezone(timedelta(hours=1))
REPOSITORY = Path(__file__).resolve().parents[2]
# Anything that would run or load in a browser, in the generated HTML.
DANGEROUS = re.compile(
    r"<script|<iframe|<object|<embed|<style|\son\w+\s*=|\sstyle\s*=|javascript:|vbscript:|data:",
    re.IGNORECASE,
)


def assert_harmless(html: str) -> None:
    assert not DANGEROUS.search(html), DANGEROUS.search(html)


# -- header ---------------------------------------------------------------------------------


def test_header_fields_of_a_level3_document() -> None:
    doc = parse_cda(samples.level3())

    assert doc.id == InstanceId("1.2.250.1.999.1.1", "DOC-42")
    assert doc.set_id == InstanceId("1.2.250.1.999.1.2", "SET-42")
    assert doc.version_number == 3
    assert doc.code == CodedValue(
        "11490-0",
        "2.16.840.1.113883.6.1",
        "Lettre de liaison à la sortie d'un établissement de soins",
    )
    assert doc.code is not None and doc.code.system == "http://loinc.org"
    assert doc.title == "Lettre de liaison de sortie"
    assert doc.effective_time is not None
    assert doc.effective_time.at == datetime(2024, 3, 12, 14, 30, tzinfo=CET)
    assert doc.effective_time.precision is TimePrecision.second
    assert doc.confidentiality_code == "N"
    assert doc.language_code == "fr-FR"

    patient = doc.patient
    assert patient.ins == "279035121518989"
    assert patient.ins_oid == "1.2.250.1.213.1.4.10"
    assert patient.ids == (InstanceId("1.2.250.1.213.1.2.3.4", "IPP-000123"),)
    assert patient.birth_family_name == "MARTIN"
    assert patient.used_family_name == "DURAND"
    assert patient.given_names == ("Claire", "Louise")
    assert patient.first_given_name == "Claire"
    assert patient.used_given_name is None
    assert patient.sex == "F"
    assert patient.birth_date == date(1979, 3, 28)
    assert patient.birth_place == "POITIERS"
    assert patient.birth_place_code == "86194"

    author = doc.author
    assert author is not None
    assert author.id == InstanceId("1.2.250.1.71.4.2.1", "810000000001")
    assert author.national_id == "810000000001"
    assert author.name == PersonName(prefix="Dr", given=("Claire",), family="DUBOIS")
    assert author.code == CodedValue(
        "G15_10/SM26", "1.2.250.1.213.1.1.4.5", "Médecin - Qualifié en Médecine Générale (SM)"
    )
    assert author.code is not None and author.code.system == "urn:oid:1.2.250.1.213.1.1.4.5"
    assert author.organization == Organization(
        InstanceId("1.2.250.1.71.4.2.2", "1860000001"), "CHU de Poitiers"
    )
    assert author.time is not None and author.time.at == datetime(2024, 3, 12, 14, 0, tzinfo=CET)
    assert author.device_name is None

    assert doc.custodian == Organization(
        InstanceId("1.2.250.1.71.4.2.2", "1860000001"), "CHU de Poitiers"
    )
    legal = doc.legal_authenticator
    assert legal is not None
    assert legal.name == PersonName(prefix="Pr", given=("Antoine",), family="GIRARD")
    assert legal.time is not None and legal.time.at == datetime(2024, 3, 12, 15, tzinfo=CET)

    event = doc.service_event
    assert event is not None
    assert event.code == CodedValue("IMP", "2.16.840.1.113883.5.4", "Hospitalisation")
    assert event.start is not None and event.start.at == datetime(2024, 3, 5, tzinfo=UTC)
    assert event.start.precision is TimePrecision.day
    assert event.end is not None and event.end.at == datetime(2024, 3, 12, 12, tzinfo=CET)
    assert event.end.precision is TimePrecision.minute
    assert doc.practice_setting == CodedValue(
        "ETABLISSEMENT", "1.2.250.1.213.1.1.4.9", "Etablissement de santé"
    )
    assert doc.facility_type == CodedValue(
        "SA01", "1.2.250.1.71.4.2.4", "Etablissement public de santé"
    )
    assert doc.template_ids == (
        InstanceId("2.16.840.1.113883.2.8.2.1"),
        InstanceId("1.2.250.1.213.1.1.1.1"),
        InstanceId("1.2.250.1.213.1.1.1.29", "2022.01"),
    )
    assert doc.level == 3
    assert doc.non_xml_body is None
    assert doc.format_code == "urn:asip:ci-sis:ldl-ses:2017"


def test_level1_pdf_is_decoded_and_gets_the_xds_sd_format_code() -> None:
    doc = parse_cda(samples.level1())

    assert doc.level == 1
    assert doc.non_xml_body is not None
    assert doc.non_xml_body.media_type == "application/pdf"
    assert doc.non_xml_body.representation == "B64"
    assert doc.non_xml_body.data == samples.PDF_BYTES
    assert doc.format_code == "urn:ihe:iti:xds-sd:pdf:2008"
    assert parse_cda(samples.level1("text/plain", b"x")).format_code == (
        "urn:ihe:iti:xds-sd:text:2008"
    )


def test_level3_without_a_known_model_is_mime_type_sufficient() -> None:
    assert parse_cda(samples.structured("<paragraph>x</paragraph>")).format_code == (
        "urn:ihe:iti:xds:2017:mimeTypeSufficient"
    )


def test_used_names_of_the_2024_ci_sis_and_a_patient_without_ins() -> None:
    data = samples.structured(
        "<paragraph>x</paragraph>",
        patient_ids='<id root="1.2.250.1.213.1.2.3.4" extension="IPP-9"/><id nullFlavor="UNK"/>',
        patient_name=(
            '<family qualifier="BR">PAT-TROIS</family><given>DOMINIQUE MARIE-LOUISE</given>'
            '<given qualifier="BR">DOMINIQUE</given><family qualifier="CL">PAT-DEUX</family>'
            '<given qualifier="CL">DOMI</given>'
        ),
    )
    patient = parse_cda(data).patient

    assert patient.ins is None and patient.ins_oid is None
    assert patient.ids == (InstanceId("1.2.250.1.213.1.2.3.4", "IPP-9"),)
    assert patient.birth_family_name == "PAT-TROIS"
    assert patient.used_family_name == "PAT-DEUX"
    assert patient.given_names == ("DOMINIQUE MARIE-LOUISE",)
    assert patient.first_given_name == "DOMINIQUE"
    assert patient.used_given_name == "DOMI"


@pytest.mark.parametrize(
    ("value", "expected", "precision"),
    [
        ("2024", datetime(2024, 1, 1, tzinfo=UTC), TimePrecision.year),
        ("20240312", datetime(2024, 3, 12, tzinfo=UTC), TimePrecision.day),
        (
            "202403121430",
            datetime(2024, 3, 12, 14, 30, tzinfo=ZoneInfo("Europe/Paris")),
            TimePrecision.minute,
        ),
        ("20240312143005+0100", datetime(2024, 3, 12, 14, 30, 5, tzinfo=CET), TimePrecision.second),
        (
            "20240312143005.25-0500",
            datetime(2024, 3, 12, 14, 30, 5, 250000, tzinfo=timezone(-timedelta(hours=5))),
            TimePrecision.second,
        ),
    ],
)
def test_hl7_timestamps(value: str, expected: datetime, precision: TimePrecision) -> None:
    parsed = parse_hl7_time(value)
    assert parsed is not None
    assert parsed.at == expected
    assert parsed.at.tzinfo is not None
    assert parsed.precision is precision


@pytest.mark.parametrize("value", ["", "2024-03-12", "20241312", "20240230", "2024031214+2500"])
def test_malformed_hl7_timestamps_give_none(value: str) -> None:
    assert parse_hl7_time(value) is None


def test_an_unparseable_effective_time_is_missing_not_fatal() -> None:
    assert parse_cda(samples.structured("", effective_time="hier")).effective_time is None


# -- refusals -------------------------------------------------------------------------------


@pytest.mark.parametrize("build", [samples.xxe, samples.billion_laughs])
def test_doctype_is_refused(build: object) -> None:
    assert callable(build)
    with pytest.raises(InvalidCda, match="contains a DOCTYPE"):
        parse_cda(build())


def test_not_well_formed_says_where() -> None:
    with pytest.raises(InvalidCda) as caught:
        parse_cda(samples.not_well_formed())
    assert str(caught.value) == (
        "the CDA document is not well-formed XML: line 3, column 10: mismatched tag"
    )


def test_other_root_element_is_refused() -> None:
    with pytest.raises(InvalidCda) as caught:
        parse_cda(samples.not_cda())
    assert str(caught.value) == (
        "the root element is {urn:example}foo, not a CDA ClinicalDocument in urn:hl7-org:v3"
    )


def test_document_without_patient_is_refused() -> None:
    with pytest.raises(InvalidCda, match=r"^the document has no recordTarget/patientRole$"):
        parse_cda(samples.without_patient())


def test_size_limit() -> None:
    data = samples.level1()
    with pytest.raises(InvalidCda, match="more than the 1000 bytes accepted"):
        parse_cda(data, max_bytes=1000)
    assert parse_cda(data, max_bytes=len(data)).level == 1


def test_empty_and_bad_base64_are_refused() -> None:
    with pytest.raises(InvalidCda, match="empty"):
        parse_cda(b"  ")
    bad = samples.level1().replace(b'representation="B64">', b'representation="B64">*!')
    with pytest.raises(InvalidCda, match="not valid base64"):
        parse_cda(bad)


# -- rendering ------------------------------------------------------------------------------


def test_level3_rendering() -> None:
    rendered = render_cda(samples.level3(), attachment_url=lambda i: f"/documents/7/media/{i}")
    html = rendered.html

    assert '<h1 class="cda-title">Lettre de liaison de sortie</h1>' in html
    assert "<dt>Patient</dt><dd>DURAND Claire Louise, nom de naissance MARTIN, né(e) le " in html
    assert "28/03/1979, sexe F, INS 279035121518989</dd>" in html
    assert "<dt>Auteur</dt><dd>Dr Claire DUBOIS (Médecin - Qualifié en Médecine" in html
    assert "<dt>Date du document</dt><dd>12/03/2024 14:30</dd>" in html
    assert "<dt>Date de l&#39;acte</dt><dd>05/03/2024 au 12/03/2024 12:00</dd>" in html
    assert "<dt>Confidentialité</dt><dd>normale</dd>" in html
    assert "<h2>Motif d&#39;hospitalisation</h2>" in html
    assert "<h3>Examens</h3>" in html
    assert "<h4>Détail</h4>" in html
    assert "<h2>Sans narratif</h2></section>" in html
    assert "Douleur <strong>thoracique</strong> aiguë" in html
    assert "<em><u>sans</u></em> irradiation.<br>Suite.</p>" in html
    assert "<ol><li>Premier point</li><li>Second point</li></ol>" in html
    assert '<p class="cda-caption">Puces</p><ul><li>a</li></ul>' in html
    assert "<caption>Biologie</caption>" in html
    assert "<thead><tr><th>Analyse</th><th>Résultat</th></tr></thead>" in html
    assert '<td colspan="2">Ionogramme</td>' in html
    assert "<td>Na<sup>+</sup></td><td>140 mmol/L<sub>1</sub></td>" in html
    assert '<small class="cda-footnote">note</small>' in html
    assert '<img class="cda-media" src="/documents/7/media/IMG-1" alt="Radio thorax">' in html
    assert [(a.id, a.media_type, a.data, a.title) for a in rendered.attachments] == [
        ("IMG-1", "image/png", samples.PNG_BYTES, "Radio thorax")
    ]
    assert_harmless(html)


def test_english_labels() -> None:
    html = render_cda(samples.level3(), locale="en").html
    assert "<dt>Document date</dt><dd>2024-03-12 14:30</dd>" in html
    assert "<dt>Confidentiality</dt><dd>normal</dd>" in html
    assert "born 1979-03-28" in html


def test_confidentiality_labels() -> None:
    html = render_cda(samples.structured("", confidentiality="V")).html
    assert "<dt>Confidentialité</dt><dd>très restreinte</dd>" in html
    html = render_cda(samples.structured("", confidentiality="R"), locale="en").html
    assert "<dt>Confidentiality</dt><dd>restricted</dd>" in html


def test_level1_pdf_is_an_attachment_with_a_link() -> None:
    rendered = render_cda(parse_cda(samples.level1()))

    assert '<a href="#attachment-body">document PDF joint</a>' in rendered.html
    assert [(a.id, a.media_type, a.data) for a in rendered.attachments] == [
        ("body", "application/pdf", samples.PDF_BYTES)
    ]
    assert rendered.attachments[0].inline_safe
    assert "<object" not in rendered.html and "<iframe" not in rendered.html
    assert_harmless(rendered.html)


def test_level1_text_is_preformatted_and_escaped() -> None:
    text = "Résultat < 5\n<script>alert(1)</script>\n".encode()
    html = render_cda(samples.level1("text/plain", text)).html
    assert (
        '<pre class="cda-text">Résultat &lt; 5\n&lt;script&gt;alert(1)&lt;/script&gt;\n</pre>'
        in html
    )
    assert_harmless(html)


def test_level1_image_is_an_img_and_its_real_type_wins() -> None:
    rendered = render_cda(samples.level1("image/jpeg", samples.PNG_BYTES))
    assert '<img src="#attachment-body" alt="Lettre de liaison de sortie">' in rendered.html
    assert rendered.attachments[0].media_type == "image/png"


def test_level1_other_types_are_downloads() -> None:
    rendered = render_cda(samples.level1("text/html", b"<script>alert(1)</script>"))
    assert '<a href="#attachment-body">pièce jointe (text/html)</a>' in rendered.html
    assert not rendered.attachments[0].inline_safe
    assert_harmless(rendered.html)


def test_script_elements_render_as_escaped_text() -> None:
    html = render_cda(samples.script_in_paragraph()).html

    assert (
        "<p>Avantalert(&#39;hl7&#39;)alert(1)&lt;script&gt;alert(2)&lt;/script&gt; après</p>"
        in (html)
    )
    assert "evil.example" not in html
    assert_harmless(html)


def test_event_and_style_attributes_are_dropped() -> None:
    html = render_cda(samples.event_and_style_attributes()).html

    assert "<p><strong>gras</strong></p>" in html
    assert "<td>cellule</td>" in html
    assert "alert" not in html and "evil" not in html and "c1" not in html
    assert_harmless(html)


def test_only_http_links_keep_their_href() -> None:
    html = render_cda(samples.hostile_links()).html

    assert "<p>un deux trois quatre cinq " in html
    assert (
        '<a href="https://example.org/wado?a=1&amp;b=&#34;2&#34;" '
        'rel="noopener noreferrer nofollow">six</a>' in html
    )
    assert html.count("<a ") == 1
    assert "alert" not in html and "msgbox" not in html
    assert_harmless(html)


def test_hostile_media_ids_are_not_used_as_attachment_ids() -> None:
    narrative = '<paragraph><renderMultiMedia referencedObject="a&quot;b missing"/></paragraph>'
    data = samples.structured(narrative).replace(
        b"</section>",
        b'<entry><observationMedia ID="a&quot;b"><value mediaType="image/svg+xml" '
        b'representation="B64">PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+PC9zdmc+</value>'
        b"</observationMedia></entry></section>",
    )
    rendered = render_cda(data)

    assert [(a.id, a.media_type) for a in rendered.attachments] == [("media-1", "image/svg+xml")]
    assert not rendered.attachments[0].inline_safe
    assert '<a class="cda-media" href="#attachment-media-1">pièce jointe (image/svg+xml)</a>' in (
        rendered.html
    )
    assert '<span class="cda-missing">[pièce jointe introuvable]</span>' in rendered.html
    assert_harmless(rendered.html)


def test_rendering_bytes_that_are_not_cda_raises() -> None:
    with pytest.raises(InvalidCda):
        render_cda(samples.xxe())


# -- the real French examples ----------------------------------------------------------------


def _fixtures() -> Path:
    configured = os.environ.get("PARTAGE_CDA_FIXTURES")
    path = Path(configured) if configured else REPOSITORY / ".." / "shared" / "fixtures" / "cda-fr"
    return path if path.is_absolute() else REPOSITORY / path


def test_every_real_french_cda_parses_and_renders() -> None:
    directory = _fixtures()
    if not directory.is_dir():
        pytest.skip(f"no CDA examples at {directory}")
    files = sorted(directory.glob("*.xml"))
    assert files, f"no .xml file in {directory}"
    for path in files:
        doc = parse_cda(path.read_bytes())
        assert doc.code is not None and doc.code.code, path.name
        assert doc.patient.ins or doc.patient.ids, path.name
        assert doc.author is not None and doc.author.id is not None, path.name
        assert doc.effective_time is not None, path.name
        rendered = render_cda(doc, attachment_url=lambda i: f"/media/{i}")
        assert rendered.html.startswith('<article class="cda-document">'), path.name
        assert_harmless(rendered.html)
        if doc.level == 1:
            assert rendered.attachments, path.name
            assert doc.non_xml_body is not None and doc.non_xml_body.data, path.name


def test_deep_nesting_is_flattened_not_a_crash() -> None:
    depth = 5000
    narrative = "<paragraph>" + "<content>" * depth + "fond" + "</content>" * depth + "</paragraph>"
    assert "fond" in render_cda(samples.structured(narrative)).html
    sections = "<component><section><title>t</title>" * depth + "</section></component>" * depth
    data = samples.document(f"<component><structuredBody>{sections}</structuredBody></component>")
    assert "<h4>t</h4>" in render_cda(data).html
