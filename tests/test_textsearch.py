"""imserver.textsearch: the tokens search matches on, whatever the database."""

import pytest

from imserver.textsearch import (
    document_tokens,
    fts5_query,
    name_query_tokens,
    name_tokens,
    normalize,
    query_tokens,
    tsquery_literal,
    tsvector_literal,
)


def matches(query, text):
    """The search's rule in plain Python: the query's phrase at consecutive document positions,
    its last token a prefix (what the tsquery and the FTS5 query say)."""
    return phrase_in(query_tokens(query), document_tokens(text))


def phrase_in(phrase, tokens):
    if not phrase:
        return False
    for start in range(len(tokens) - len(phrase) + 1):
        window = tokens[start : start + len(phrase)]
        if window[:-1] == phrase[:-1] and window[-1].startswith(phrase[-1]):
            return True
    return False


def test_han_runs_are_bigrams_and_their_last_character():
    assert document_tokens("我家在上海") == ["我家", "家在", "在上", "上海", "海"]
    assert document_tokens("好") == ["好"]


def test_other_scripts_are_words_and_emoji_tokens():
    assert document_tokens("Flutter 上线了!") == ["flutter", "上线", "线了", "了"]
    assert document_tokens("café हिन्दी iPhone15, ok😀") == ["café", "हिन्दी", "iphone15", "ok", "😀"]
    assert document_tokens("3個") == ["3", "個"]


def test_normalized_full_width_half_width_and_case():
    assert normalize("ＦＬＵＴＴＥＲ ｶﾀｶﾅ Straße") == "flutter カタカナ strasse"
    assert document_tokens("ＦＬＵＴＴＥＲ") == document_tokens("flutter")


@pytest.mark.parametrize(
    "query, text, found",
    [
        ("上海", "我家在上海东边", True),
        ("上海", "海上的东边", False),
        ("flut", "Flutter", True),
        ("flutter", "Flutter 上线了", True),
        ("上线", "Flutter 上线了", True),
        ("flutter 上线", "Flutter 上线了", True),
        ("上", "我家在上海东边", True),
        ("边", "我家在上海东边", True),  # a run's last character
        ("西", "我家在上海东边", False),
        ("上海东", "我家在上海东边", True),
        ("海东边", "我家在上海东边", True),
        ("东边 ok", "我家在上海东边 ok", True),
        ("ter", "Flutter", False),  # words match from their start
        ("ｆｌｕｔ", "Flutter", True),
        ("カタカナ", "ｶﾀｶﾅです", True),
        ("한국", "한국어 공부", True),
        ("😀", "好的😀", True),
        ("好的", "好的😀", True),
        ("!!!", "!!!", False),  # nothing to search for
    ],
)
def test_matching(query, text, found):
    assert matches(query, text) is found


def test_database_forms():
    assert tsvector_literal(["上海", "海"]) == "'上海':1 '海':2"
    assert tsquery_literal(["flutter", "上线"]) == "'flutter' <-> '上线':*"
    assert fts5_query(["flutter", "上线"]) == '"flutter 上线" *'
    # positions past tsvector's last (16383) stay at it rather than failing the write
    assert tsvector_literal(["a"] * 16385).endswith("'a':16383 'a':16383")


def test_long_words_are_cut_to_the_longest_query():
    assert document_tokens("x" * 500) == ["x" * 100]


def name_matches(query, name):
    """Name search's rule: the same phrase rule over name tokens."""
    return phrase_in(name_query_tokens(query), name_tokens(name))


def test_names_are_bigrams_in_every_script():
    assert name_tokens("Jane Doe") == ["ja", "an", "ne", "e", "do", "oe", "e"]
    assert name_tokens("王小明😀") == ["王小", "小明", "明", "😀"]
    assert name_query_tokens("ohn") == ["oh", "hn"]
    assert name_query_tokens("j") == ["j"]


@pytest.mark.parametrize(
    "query, name, found",
    [
        ("doe", "janedoe", True),  # substrings anywhere, as users/search always matched
        ("ned", "janedoe", True),
        ("e", "janedoe", True),
        ("janedoex", "janedoe", False),
        ("上海", "我家在上海东边", True),
        ("上海", "海上的东边", False),
        ("ｊａｎｅ", "JANE", True),
        ("e d", "Jane Doe", True),
        ("ed", "Jane Doe", False),
        ("😀", "小明😀", True),
        ("...", "...", False),
    ],
)
def test_name_matching(query, name, found):
    assert name_matches(query, name) is found
