"""Small CDA R2 documents built for the tests: well-formed ones of each level, hostile ones.

All identities, identifiers and texts are made up; the INS is the fictitious one of the
ANS test sets' shape with a valid key (test OID), the RPPS numbers are demo values.
"""

from __future__ import annotations

import base64

PDF_BYTES = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
PNG_BYTES = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + bytes(13) + b"fake"

_PROLOG = '<?xml version="1.0" encoding="UTF-8"?>\n'
_ROOT_OPEN = '<ClinicalDocument xmlns="urn:hl7-org:v3" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'


def header(
    *,
    effective_time: str = "20240312143000+0100",
    confidentiality: str = "N",
    template_ids: str = '<templateId root="1.2.250.1.213.1.1.1.1"/>',
    code: str = (
        '<code code="11490-0" codeSystem="2.16.840.1.113883.6.1" '
        'displayName="Lettre de liaison à la sortie d\'un établissement de soins"/>'
    ),
    title: str = "Lettre de liaison de sortie",
    patient_ids: str = (
        '<id root="1.2.250.1.213.1.4.10" extension="279035121518989"/>'
        '<id root="1.2.250.1.213.1.2.3.4" extension="IPP-000123"/>'
    ),
    patient_name: str = (
        '<family qualifier="BR">MARTIN</family><family qualifier="SP">DURAND</family>'
        "<given>Claire</given><given>Louise</given>"
    ),
) -> str:
    """The header elements of a CI-SIS-like document, without the ClinicalDocument tags."""
    return f"""
  <realmCode code="FR"/>
  <typeId root="2.16.840.1.113883.1.3" extension="POCD_HD000040"/>
  <templateId root="2.16.840.1.113883.2.8.2.1"/>
  {template_ids}
  <id root="1.2.250.1.999.1.1" extension="DOC-42"/>
  {code}
  <title>{title}</title>
  <effectiveTime value="{effective_time}"/>
  <confidentialityCode code="{confidentiality}" codeSystem="2.16.840.1.113883.5.25"/>
  <languageCode code="fr-FR"/>
  <setId root="1.2.250.1.999.1.2" extension="SET-42"/>
  <versionNumber value="3"/>
  <recordTarget>
    <patientRole>
      {patient_ids}
      <patient>
        <name>{patient_name}</name>
        <administrativeGenderCode code="F" codeSystem="2.16.840.1.113883.5.1"/>
        <birthTime value="19790328"/>
        <birthplace><place><addr><county>86194</county><city>POITIERS</city></addr></place></birthplace>
      </patient>
    </patientRole>
  </recordTarget>
  <author>
    <time value="20240312140000+0100"/>
    <assignedAuthor>
      <id root="1.2.250.1.71.4.2.1" extension="810000000001"/>
      <code code="G15_10/SM26" codeSystem="1.2.250.1.213.1.1.4.5"
            displayName="Médecin - Qualifié en Médecine Générale (SM)"/>
      <assignedPerson><name><prefix>Dr</prefix><given>Claire</given><family>DUBOIS</family></name></assignedPerson>
      <representedOrganization>
        <id root="1.2.250.1.71.4.2.2" extension="1860000001"/>
        <name>CHU de Poitiers</name>
      </representedOrganization>
    </assignedAuthor>
  </author>
  <custodian><assignedCustodian><representedCustodianOrganization>
    <id root="1.2.250.1.71.4.2.2" extension="1860000001"/>
    <name>CHU de Poitiers</name>
  </representedCustodianOrganization></assignedCustodian></custodian>
  <legalAuthenticator>
    <time value="20240312150000+0100"/>
    <signatureCode code="S"/>
    <assignedEntity>
      <id root="1.2.250.1.71.4.2.1" extension="810000000002"/>
      <assignedPerson><name><prefix>Pr</prefix><given>Antoine</given><family>GIRARD</family></name></assignedPerson>
    </assignedEntity>
  </legalAuthenticator>
  <documentationOf>
    <serviceEvent>
      <code code="IMP" codeSystem="2.16.840.1.113883.5.4" displayName="Hospitalisation"/>
      <effectiveTime><low value="20240305"/><high value="202403121200+0100"/></effectiveTime>
      <performer typeCode="PRF"><assignedEntity>
        <id root="1.2.250.1.71.4.2.1" extension="810000000001"/>
        <representedOrganization>
          <standardIndustryClassCode code="ETABLISSEMENT" codeSystem="1.2.250.1.213.1.1.4.9"
                                     displayName="Etablissement de santé"/>
        </representedOrganization>
      </assignedEntity></performer>
    </serviceEvent>
  </documentationOf>
  <componentOf><encompassingEncounter>
    <effectiveTime><low value="20240305"/></effectiveTime>
    <location><healthCareFacility>
      <code code="SA01" codeSystem="1.2.250.1.71.4.2.4"
            displayName="Etablissement public de santé"/>
    </healthCareFacility></location>
  </encompassingEncounter></componentOf>
"""


def document(body: str, **header_overrides: str) -> bytes:
    return (
        _PROLOG + _ROOT_OPEN + header(**header_overrides) + body + "</ClinicalDocument>"
    ).encode("utf-8")


def structured(narrative: str, **header_overrides: str) -> bytes:
    """A level-3 document with one section whose narrative block is `narrative`."""
    body = f"""<component><structuredBody><component><section>
      <title>Section</title><text>{narrative}</text>
    </section></component></structuredBody></component>"""
    return document(body, **header_overrides)


def level3() -> bytes:
    """Nested sections, a table, a list, styled content and an observationMedia image."""
    png = base64.b64encode(PNG_BYTES).decode("ascii")
    body = f"""<component><structuredBody>
  <component><section>
    <code code="42346-7" codeSystem="2.16.840.1.113883.6.1"/>
    <title>Motif d'hospitalisation</title>
    <text><paragraph>Douleur <content styleCode="Bold">thoracique</content> aiguë,
      <content styleCode="Italics Underline">sans</content> irradiation.<br/>Suite.</paragraph>
      <list listType="ordered"><item>Premier point</item><item>Second point</item></list>
      <list><caption>Puces</caption><item>a</item></list>
    </text>
    <component><section>
      <title>Examens</title>
      <text><table border="1">
        <caption>Biologie</caption>
        <thead><tr><th>Analyse</th><th>Résultat</th></tr></thead>
        <tbody><tr><td colspan="2">Ionogramme</td></tr>
               <tr><td rowspan="abc">Na<sup>+</sup></td><td>140 mmol/L<sub>1</sub></td></tr></tbody>
      </table>
      <paragraph>Cliché : <renderMultiMedia referencedObject="IMG-1"><caption>Radio thorax</caption>
        </renderMultiMedia></paragraph>
      </text>
      <component><section>
        <title>Détail</title>
        <text><paragraph>Niveau trois<footnote>note</footnote></paragraph></text>
        <entry><observationMedia classCode="OBS" moodCode="EVN" ID="IMG-1">
          <value mediaType="image/png" representation="B64">{png}</value>
        </observationMedia></entry>
      </section></component>
    </section></component>
  </section></component>
  <component><section><title>Sans narratif</title></section></component>
</structuredBody></component>"""
    return document(
        body,
        template_ids=(
            '<templateId root="1.2.250.1.213.1.1.1.1"/>'
            '<templateId root="1.2.250.1.213.1.1.1.29" extension="2022.01"/>'
        ),
    )


def level1(media_type: str = "application/pdf", data: bytes = PDF_BYTES) -> bytes:
    """A level-1 document embedding `data` (base64) as its nonXMLBody."""
    encoded = base64.encodebytes(data).decode("ascii")
    body = f"""<component><nonXMLBody>
  <text mediaType="{media_type}" representation="B64">{encoded}</text>
</nonXMLBody></component>"""
    return document(body, template_ids='<templateId root="1.3.6.1.4.1.19376.1.2.20"/>')


# -- hostile documents -----------------------------------------------------------------------


def script_in_paragraph() -> bytes:
    return structured(
        "<paragraph>Avant<script>alert('hl7')</script>"
        '<x:script xmlns:x="http://www.w3.org/1999/xhtml">alert(1)</x:script>'
        "&lt;script&gt;alert(2)&lt;/script&gt; après</paragraph>"
        '<x:iframe xmlns:x="http://www.w3.org/1999/xhtml" src="https://evil.example/"/>'
    )


def event_and_style_attributes() -> bytes:
    return structured(
        '<paragraph onclick="alert(1)" style="background:url(https://evil.example/x)">'
        '<content styleCode="Bold" onmouseover="alert(2)" style="color:red" ID="c1">gras</content>'
        "</paragraph>"
        '<table onload="alert(3)"><tbody><tr>'
        '<td onclick="alert(4)" colspan="2&quot; onclick=&quot;x">cellule</td>'
        "</tr></tbody></table>"
    )


def hostile_links() -> bytes:
    return structured(
        '<paragraph><linkHtml href="javascript:alert(1)">un</linkHtml> '
        '<linkHtml href="  JaVa&#9;ScRiPt:alert(2)">deux</linkHtml> '
        '<linkHtml href="data:text/html;base64,PHNjcmlwdD4=">trois</linkHtml> '
        '<linkHtml href="vbscript:msgbox(1)">quatre</linkHtml> '
        '<linkHtml href="//evil.example/">cinq</linkHtml> '
        '<linkHtml href="https://example.org/wado?a=1&amp;b=&quot;2&quot;" onclick="x()">'
        "six</linkHtml>"
        "</paragraph>"
    )


def xxe() -> bytes:
    return (
        b'<?xml version="1.0"?>\n<!DOCTYPE ClinicalDocument [\n'
        b'  <!ENTITY xxe SYSTEM "file:///etc/passwd">\n]>\n'
        b'<ClinicalDocument xmlns="urn:hl7-org:v3"><title>&xxe;</title></ClinicalDocument>'
    )


def billion_laughs() -> bytes:
    entities = '<!ENTITY lol "lol">\n' + "".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">\n'
        for i in range(1, 10)
    )
    return (
        f'<?xml version="1.0"?>\n<!DOCTYPE lolz [\n{entities}]>\n'
        '<ClinicalDocument xmlns="urn:hl7-org:v3"><title>&lol9;</title></ClinicalDocument>'
    ).encode()


def not_well_formed() -> bytes:
    return b'<?xml version="1.0"?>\n<ClinicalDocument xmlns="urn:hl7-org:v3">\n<title>x</code>\n'


def not_cda() -> bytes:
    return b'<?xml version="1.0"?><foo xmlns="urn:example"><bar/></foo>'


def without_patient() -> bytes:
    return (
        _PROLOG
        + _ROOT_OPEN
        + "<title>Orphelin</title><component><structuredBody/></component></ClinicalDocument>"
    ).encode()
