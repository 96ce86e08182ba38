"""PII detectors: what they find, what they must not find, and masks that never carry the raw value."""
from __future__ import annotations

import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ftkit.data.pii import find_pii, iban_valid, luhn_valid, masked_excerpt, redact


@pytest.mark.parametrize("text, kind", [
    ("write to jane.doe@example.co.uk", "email"), ("call (415) 555-2671", "phone"), ("tel +49 30 901820", "phone"),
    ("card 5555 5555 5555 4444", "card"), ("IBAN DE89 3704 0044 0532 0130 00", "iban"), ("ssn 123-45-6789", "national_id"),
    ("NINO AB 12 34 56 C", "national_id"), ("client 84.12.201.7", "ip"), ("AKIAIOSFODNN7EXAMPLE", "api_key"),
    ("-----BEGIN RSA PRIVATE KEY-----", "api_key"), ("db_password = 'S3cur3!pass'", "credential"),
])
def test_detects(text, kind):
    assert [h.kind for h in find_pii(text)] == [kind]


@pytest.mark.parametrize("text", [
    "<<1000-200-400=400>>", "order NW-482913 on 2024-01-15", "4111 1111 1111 1112", "GB82 WEST 1234 5698 7654 33",
    "ping 127.0.0.1 or 8.8.8.8", "version 3.1.2.0-100", "password: String!", "password=\"your_password\"",
    "0.123456789011524", "pages 2 4 6 8 10 12 14 16 18 20",
])
def test_does_not_flag(text):
    assert find_pii(text) == []


def test_checksums():
    assert luhn_valid("4012888888881881") and not luhn_valid("0000000000000000")
    assert iban_valid("FR1420041010050500013M02606") and not iban_valid("FR1420041010050500013M02607")


def test_redact_and_excerpt():
    text = "Mail jane.doe@example.com, card 4111-1111-1111-1111, thanks"
    assert redact(text) == "Mail [EMAIL], card [CARD], thanks"
    excerpt = masked_excerpt(text)
    assert "jane.doe" not in excerpt and "4111-1111-1111-1111" not in excerpt and "1111" in excerpt


def test_excerpt_masks_values_cut_by_the_window_edge():
    text = "x" * 70 + " 4111 1111 1111 1111 and more"
    excerpt = masked_excerpt(text, 0, 80)
    assert "4111 1111 1111" not in excerpt and "1111 1111 1111 1111" not in excerpt


def _luhn_complete(prefix: str) -> str:
    for d in string.digits:
        if luhn_valid(prefix + d):
            return prefix + d
    raise AssertionError


@settings(max_examples=60, deadline=None)
@given(local=st.from_regex(r"[a-z]{2,12}", fullmatch=True), host=st.from_regex(r"[a-z]{2,10}", fullmatch=True),
       digits=st.from_regex(r"4[0-9]{14}", fullmatch=True), sep=st.sampled_from([" ", "-", ""]),
       before=st.text(alphabet=string.ascii_letters + " ", max_size=60), after=st.text(alphabet=string.ascii_letters + " ", max_size=60))
def test_masks_never_contain_the_raw_value(local, host, digits, sep, before, after):
    card = _luhn_complete(digits)
    card_text = sep.join(card[i:i + 4] for i in range(0, 16, 4))
    email = f"{local}@{host}.com"
    text = f"{before} {email} paid with {card_text} {after}"
    hits = find_pii(text)
    assert {h.kind for h in hits} == {"email", "card"}
    for h in hits:
        assert email not in h.masked and card_text not in h.masked and card not in h.masked.replace(" ", "").replace("-", "")
    excerpt = masked_excerpt(text, text.index(email), 60)
    assert email not in excerpt and card_text not in excerpt and local not in excerpt.split("@")[0][-len(local):] or len(local) <= 1


# -- find_pii_many: the audit's batch scan must find exactly what find_pii finds, text by text ---------------

_PII_SAMPLES = ["write to jane.doe@example.co.uk", "call (555) 123-4567", "card 5555 5555 5555 4444",
                "IBAN DE89 3704 0044 0532 0130 00", "ssn 123-45-6789", "NINO AB 12 34 56 C", "client 84.12.201.7",
                "AKIAIOSFODNN7EXAMPLE", "db_password = 'S3cur3!pass'", "fe80:0:0:0:202:b3ff:fe1e:8329 host",
                "order NW-482913 on 2024-01-15", "İSTANBUL office, PASSWORD: hunter2hunter2", "plain words only", ""]


def test_batch_scan_equals_per_text_scan_on_known_samples():
    from ftkit.data.pii import find_pii_many

    texts = _PII_SAMPLES * 3 + ["tail text 4111 1111 1111 1111"]
    assert find_pii_many(texts) == [find_pii(t) for t in texts]
    assert find_pii_many([]) == []


def test_every_detector_has_a_batch_prefilter():
    from ftkit.data import pii

    batch = set(pii._BATCH_LITERALS) | set(pii._BATCH_LOWER_LITERALS) | set(pii._BATCH_PATTERNS)
    assert all(kind in batch or det.margin is not None for kind, det in pii.DETECTORS.items())


@settings(max_examples=80, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(_PII_SAMPLES),
                          st.text(alphabet=string.ascii_letters + string.digits + " .:@-()+=_'\x00İ", max_size=80)),
                max_size=12))
def test_batch_scan_equals_per_text_scan(texts):
    from ftkit.data.pii import find_pii_many

    assert find_pii_many(texts) == [find_pii(t) for t in texts]


# -- issue 15: validated phones and national IDs (phonenumbers, python-stdnum behind the regex prefilter) ----------

@pytest.mark.parametrize("text", [
    "call +44 20 7946 0958", "ruf an: 030 12345678", "WhatsApp +4915112345678", "tel. 020 7946 0958",
    "appelez le +33 1 23 45 67 89", "call (212) 555-1234",
])
def test_real_phone_numbers_are_found(text):
    assert [h.kind for h in find_pii(text)] == ["phone"]


@pytest.mark.parametrize("text", [
    "call (555) 123-4567",  # 555 is no North American area code
    "+1 555 123 4567", "+49 000 1234567", "+44 11 1111 1111", "order 0000 000 000",
])
def test_phone_shaped_non_numbers_are_not(text):
    assert find_pii(text) == []


@pytest.mark.parametrize("text", [
    "SSN 536-90-4399", "DNI 12345678Z", "NIE X1234567L", "codice fiscale RSSMRA85T10A562S", "personnummer 811228-9874",
    "HETU 131052-308T", "NIR 2 95 10 99 126 111 93", "BSN: 111222333", "PESEL 44051401359", "Steuer-ID 36574261809",
    "NINO AB 12 34 56 C",
])
def test_national_ids_validated_by_stdnum_are_found(text):
    assert [h.kind for h in find_pii(text)] == ["national_id"], text


@pytest.mark.parametrize("text", [
    "SSN 078-05-1120",  # the famous wallet-card number, invalidated by the SSA
    "ref 000-12-3456", "DNI 12345678A", "NIE X1234567A", "codice RSSMRA85T10A562X", "BSN: 111222334",
    "order 44051401359 shipped",  # a checksum-valid PESEL without its keyword is just a number
    "invoice 111222333",
    "2023-03-17 12:02:47.224880-0700 App[4687:158901] error",  # a timestamp's microseconds and UTC offset
])
def test_national_id_shaped_non_ids_are_not(text):
    assert [h.kind for h in find_pii(text) if h.kind == "national_id"] == [], text
