"""A word-level tokenizer for explanation texts, built from the training explanations.

The vocabulary is stored in the model config, so a checkpoint stands alone (no
tokenizer download). Lower-cased words and punctuation marks are tokens; words not
in the vocabulary map to <unk>.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable

PAD, BOS, EOS, UNK = 0, 1, 2, 3
SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")
_WORD = re.compile(r"[a-z0-9]+(?:['-][a-z0-9]+)*|[^\sa-z0-9]")


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def build_vocab(texts: Iterable[str], max_size: int = 2000, min_count: int = 1) -> list[str]:
    """Specials first, then words by frequency (ties alphabetical, so the vocab is deterministic)."""
    counts = Counter(w for t in texts for w in words(t))
    ranked = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
    return list(SPECIALS) + ranked[: max(0, max_size - len(SPECIALS))]


class WordTokenizer:
    def __init__(self, vocab: list[str]) -> None:
        if list(vocab[: len(SPECIALS)]) != list(SPECIALS):
            raise ValueError(f"vocab must start with {SPECIALS}")
        self.vocab = list(vocab)
        self.index = {w: i for i, w in enumerate(self.vocab)}

    def __len__(self) -> int:
        return len(self.vocab)

    def encode(self, text: str, max_len: int) -> list[int]:
        """<bos> w1 .. wn <eos>, truncated to max_len tokens (the <eos> is kept)."""
        ids = [self.index.get(w, UNK) for w in words(text)]
        return [BOS] + ids[: max(0, max_len - 2)] + [EOS]

    def decode(self, ids: Iterable[int]) -> str:
        out: list[str] = []
        for i in ids:
            if i == EOS:
                break
            if i in (PAD, BOS):
                continue
            out.append(self.vocab[i] if 0 <= i < len(self.vocab) else SPECIALS[UNK])
        text = " ".join(out)
        return re.sub(r" ([.,;:!?)])", r"\1", text).replace("( ", "(")
