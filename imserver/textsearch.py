"""The tokens of text search (contract 20), the same on PostgreSQL and SQLite, with no extension.

Text is normalized (NFKC, then case-folded: full-width `ＦＬＵＴＴＥＲ` is `flutter`, half-width
kana are full-width) and cut into tokens, in order:
- a run of Han, kana or Hangul letters gives its overlapping character bigrams and then its last
  character alone (`我家在上海` -> 我家 家在 在上 上海 海), so any substring of two or more
  characters is a phrase of consecutive bigrams, and a single character is the prefix of a token;
- a run of other letters, marks, digits and connectors is one word (`Flutter`, `iphone15`);
- each emoji is a token of its own; punctuation and spaces only separate.

A query is cut the same way and matched as a phrase whose last token is a prefix: `flut` finds
`Flutter`, `上海` finds `我家在上海东边` but not `海上的东边`. A query that ends inside a CJK run
drops that run's lone last character (the text may go on after it), unless the run is one
character long, which then matches any token that starts with it.

Names (usernames, nicknames, group names) are short and found by substring in every script, as
`users/search` always matched (`doe` finds `janedoe`): name_tokens cuts every run of letters the
way a CJK run is cut, so `ohn` is the phrase `oh hn` and finds `John`.
"""

import unicodedata

import regex

# Words longer than a query can be (100 characters) are cut: prefixes still match them.
MAX_WORD_LENGTH = 100

_CJK = r"[[\p{scx=Han}\p{scx=Hiragana}\p{scx=Katakana}\p{scx=Hangul}]&&[\p{L}\p{M}\p{N}]]"
_TOKEN = regex.compile(
    rf"(?P<cjk>{_CJK}+)|(?P<word>[[\p{{L}}\p{{M}}\p{{N}}\p{{Pc}}]--{_CJK}]+)|(?P<emoji>\p{{Extended_Pictographic}})",
    regex.V1,
)


def normalize(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


def _runs(text):
    """(kind, run) pairs of normalized text: kind "cjk", "word" or "emoji"."""
    for match in _TOKEN.finditer(normalize(text)):
        yield match.lastgroup, match.group()


def _bigrams(run):
    return [run[i : i + 2] for i in range(len(run) - 1)] + [run[-1]]


def document_tokens(text: str) -> list[str]:
    """The tokens of a text, in order (a token's position is its index)."""
    tokens = []
    for kind, run in _runs(text):
        if kind == "cjk":
            tokens.extend(_bigrams(run))
        else:
            tokens.append(run[:MAX_WORD_LENGTH])
    return tokens


def query_tokens(query: str) -> list[str]:
    """The phrase a query stands for; its last token is matched as a prefix. Empty when the query
    has nothing to search for (only punctuation): it then matches nothing."""
    runs = list(_runs(query))
    tokens = document_tokens(query)
    if runs and runs[-1][0] == "cjk" and len(runs[-1][1]) > 1:
        tokens.pop()
    return tokens


def name_tokens(text: str) -> list[str]:
    """The tokens of a name: every run of letters cut into bigrams and its last character (a
    substring of a name is then a phrase of them), each emoji a token."""
    tokens = []
    for kind, run in _runs(text):
        tokens.extend([run] if kind == "emoji" else _bigrams(run[:MAX_WORD_LENGTH]))
    return tokens


def name_query_tokens(query: str) -> list[str]:
    """The phrase a name query stands for, its last token a prefix (as query_tokens)."""
    runs = list(_runs(query))
    tokens = name_tokens(query)
    if runs and runs[-1][0] != "emoji" and len(runs[-1][1]) > 1:
        tokens.pop()
    return tokens


# --- The two databases' forms of the same tokens ------------------------------------------------
# Tokens hold only letters, marks, digits, connectors and emoji: never a quote, backslash or space.


def tsvector_literal(tokens: list[str]) -> str:
    """PostgreSQL's `tsvector` input form, read as is (no parser, no dictionary, no locale)."""
    return " ".join(f"'{token}':{min(position, 16383)}" for position, token in enumerate(tokens, 1))


def tsquery_literal(tokens: list[str]) -> str:
    """PostgreSQL's `tsquery` input form of query_tokens: a phrase, the last token a prefix."""
    return " <-> ".join(f"'{token}'" for token in tokens) + ":*"


def fts5_document(tokens: list[str]) -> str:
    """The text SQLite's FTS5 indexes (its tokenizer, set up to split on spaces only, keeps them)."""
    return " ".join(tokens)


def fts5_query(tokens: list[str]) -> str:
    """An FTS5 phrase query whose last token is a prefix."""
    return '"' + " ".join(tokens) + '" *'
