"""The lab page's texts: one table (static/i18n.json), every entry in every language the page offers, with the
same values to fill in; every key the page asks for is there, and every entry is asked for."""

import json
import re
from importlib import resources

import pytest

STATIC = resources.files("sgdlab.lab") / "static"
LANGUAGES = {"en", "ko"}
TABLE = json.loads((STATIC / "i18n.json").read_text(encoding="utf-8"))
NAMES = {"layer.affine", "layer.relu", "layer.tanh"}  # the Korean edition keeps these names
PAGE = (STATIC / "index.html").read_text(encoding="utf-8")
SCRIPT = (STATIC / "lab.js").read_text(encoding="utf-8")


def placeholders(text):
    return set(re.findall(r"\{(\w+)\}", text))


@pytest.mark.parametrize("key", sorted(TABLE))
def test_every_entry_is_in_every_language_with_the_same_values_to_fill(key):
    entry = TABLE[key]
    assert set(entry) == LANGUAGES, f"{key}: {sorted(entry)}"
    assert all(isinstance(text, str) and text.strip() for text in entry.values()), key
    assert placeholders(entry["en"]) == placeholders(entry["ko"]), key
    words = re.sub(r"%?\{[^}]*\}", "", entry["en"])  # what is said around the values filled in
    if re.search("[a-z]{2}", words) and key not in NAMES:
        assert re.search("[가-힣]", entry["ko"]), f"{key}: the Korean text is not in Korean"


def test_the_page_offers_the_languages_of_the_table():
    offered = set(re.findall(r'data-language="(\w+)"', PAGE))
    assert offered == LANGUAGES
    assert set(re.search(r"const LANGUAGES = \[([^\]]*)\]", SCRIPT)[1].replace('"', "").replace(" ", "").split(",")) \
        == LANGUAGES


def test_every_key_the_page_asks_for_is_in_the_table_and_every_entry_is_asked_for():
    static_keys = set(re.findall(r'data-i18n(?:-[a-z-]+)?="([^"]+)"', PAGE))
    script_literals = set(re.findall(r'"([a-z][a-z0-9-]*(?:\.[a-z0-9 _-]+)*)"', SCRIPT))
    keyed = {literal for literal in script_literals if "." in literal}  # "axis.loss": only ever a key
    families = set(re.findall(r'term\("([a-z-]+)"', SCRIPT))  # term("status", word): the server's words
    assert static_keys - set(TABLE) == set()
    assert keyed - set(TABLE) == set()
    asked = static_keys | (script_literals & set(TABLE))
    unused = {key for key in TABLE if key not in asked and key.split(".")[0] not in families | {"server"}}
    assert unused == set()  # (the server's messages, "server.<code>": see the test below)
    assert families == {"status", "layer"}


def test_every_message_the_server_sends_has_an_entry_in_every_language_and_every_entry_a_message():
    """The server's messages (sgdlab.lab.messages), each said by the page as "server.<code>"; in English as the
    server says it, so with the values it sends (the test above holds the Korean to the same values)."""
    from sgdlab.lab.messages import MESSAGES

    entries = {key.removeprefix("server.") for key in TABLE if key.startswith("server.")}
    assert set(MESSAGES) - entries == set()  # a code the page would show in English alone
    assert entries - set(MESSAGES) == set()  # an entry for a code the server no longer sends
    for code, text in MESSAGES.items():
        assert TABLE[f"server.{code}"]["en"] == text, code
    assert "texts[`server.${message.code}`]" in SCRIPT  # where the page looks a code up


def test_the_page_has_no_text_outside_the_table():
    body = re.sub(r"<!--.*?-->", "", PAGE.split("<body>")[1], flags=re.S)
    body = re.sub(r"<(script|style)[^>]*>.*?</\1>", "", body, flags=re.S)
    text = re.sub(r"<[^>]+>", " ", body)
    words = set(re.findall(r"[A-Za-z가-힣]{2,}", text))
    assert words == {"sgdlab", "English", "한국어"}  # the name, and the switch naming each language in its own
