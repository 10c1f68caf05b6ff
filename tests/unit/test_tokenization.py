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


def test_an_overflowing_memo_keeps_the_call_it_is_answering(monkeypatch) -> None:
    """A call that overflows the memo gets every text's ids, the memo stays within its limit, and the
    oldest encodings make room first."""
    import toxbench.tokenization as tokenization

    monkeypatch.setattr(tokenization, "_MEMO_LIMIT", 4)
    tok = CountingTokenizer()
    encode_plain(tok, ["a", "b", "c"])
    # "c" is memoised, "d".."f" are new: room must be made, without dropping "c" before it is read
    assert encode_plain(tok, ["c", "d", "e", "f"]) == [[99], [100], [101], [102]]
    memo = tok.__dict__["_toxbench_ids"][False]
    assert len(memo) == 4 and "a" not in memo and "b" not in memo and "c" in memo
    # a call larger than the whole memo is answered in full, too
    texts = [chr(ord("g") + i) for i in range(10)]
    assert encode_plain(tok, texts) == [[ord(t)] for t in texts]
    assert len(memo) == 4
