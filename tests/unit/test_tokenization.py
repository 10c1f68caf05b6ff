"""Encodings are kept per tokenizer: each distinct text is tokenised once, with and without special tokens apart."""

from __future__ import annotations

from toxbench.tokenization import encode_plain


class CountingTokenizer:
    """Characters as tokens, BOS (id 1) in front by default; counts the texts it is asked to encode."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, texts, add_special_tokens: bool = True):
        self.seen += list(texts)
        prefix = [1] if add_special_tokens else []
        return {"input_ids": [prefix + [ord(c) for c in t] for t in texts]}


def test_each_distinct_text_is_encoded_once() -> None:
    tok = CountingTokenizer()
    first = encode_plain(tok, ["ab", "cd", "ab"])
    again = encode_plain(tok, ["cd", "ef"])
    assert first == [[97, 98], [99, 100], [97, 98]]
    assert again == [[99, 100], [101, 102]]
    assert tok.seen == ["ab", "cd", "ef"]


def test_plain_and_special_encodings_are_kept_apart() -> None:
    from toxbench.tokenization import _token_ids

    tok = CountingTokenizer()
    assert _token_ids(tok, ["ab"], special=False) == [[97, 98]]
    assert _token_ids(tok, ["ab"], special=True) == [[1, 97, 98]]
    assert _token_ids(tok, ["ab"], special=False) == [[97, 98]]
    assert tok.seen == ["ab", "ab"]


def test_a_returned_list_can_be_changed_without_changing_the_next() -> None:
    tok = CountingTokenizer()
    out = encode_plain(tok, ["ab"])
    out[0].append(0)
    assert encode_plain(tok, ["ab"]) == [[97, 98]]
