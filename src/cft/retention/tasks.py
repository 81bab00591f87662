"""The retention tasks: a registry of loaders that turn a benchmark's rows into scoreable items.

The paper's five tinyBenchmarks tasks (100 items each, prompts from the datasets' prebuilt
`input_formatted` few-shot strings) load from the Hugging Face hub or from a local folder of JSONL
exports. Neither is reachable offline, so the embedded default runs packaged stand-ins of the same
shape, scored by the same code: BIG-bench's 299-question multiple-choice TruthfulQA and its arithmetic
tasks as GSM8K-style generation (vendored under `cft/retention/data/bigbench/`, Apache-2.0).

Adding a task is one loader function plus one `register_task(...)` entry, then its name under
`evaluate.retention.tinybench.tasks`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from cft.retention.answers import gold_answer, normalize_number

VENDORED = Path(__file__).resolve().parent / "data"
BIGBENCH = VENDORED / "bigbench"


class TaskDataUnavailable(FileNotFoundError):
    """A task's data cannot be found; the message names what is missing and how to provide it."""


@dataclass(frozen=True)
class Choice:
    context: str          # the user turn (the chat template wraps it)
    continuation: str     # scored after the assistant header
    text: str             # the choice without its leading space, for length normalization


@dataclass(frozen=True)
class MultipleChoiceItem:
    item_id: str
    choices: tuple[Choice, ...]
    gold: int                              # index of the (first) correct choice
    labels: tuple[float, ...] | None = None  # truth labels of every choice (mc2)

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "multiple_choice", **asdict(self)}


@dataclass(frozen=True)
class GenerationItem:
    item_id: str
    prompt: str
    gold: str             # normalized number

    def to_dict(self) -> dict[str, Any]:
        return {"kind": "generation", **asdict(self)}


def item_from_dict(row: Mapping[str, Any]) -> MultipleChoiceItem | GenerationItem:
    if row["kind"] == "generation":
        return GenerationItem(item_id=row["item_id"], prompt=row["prompt"], gold=row["gold"])
    return MultipleChoiceItem(
        item_id=row["item_id"],
        choices=tuple(Choice(**c) for c in row["choices"]),
        gold=int(row["gold"]),
        labels=None if row["labels"] is None else tuple(float(x) for x in row["labels"]),
    )


@dataclass(frozen=True)
class RetentionTask:
    """One task.

    metric: acc (argmax of summed log-likelihood), acc_norm (argmax of log-likelihood per character),
    mc2 (probability mass on the true choices) or exact_match (generation, strict and flexible).
    benchmark: the tinyBenchmarks scenario whose IRT model gives the gp-IRT estimate; None for
    stand-ins, which report raw accuracy only.
    """

    name: str
    metric: str
    benchmark: str | None
    stand_in: bool
    load: Callable[[Path | None], list[MultipleChoiceItem | GenerationItem]]
    description: str

    @property
    def kind(self) -> str:
        return "generation" if self.metric == "exact_match" else "multiple_choice"


TASKS: dict[str, RetentionTask] = {}


def register_task(task: RetentionTask) -> RetentionTask:
    if task.name in TASKS:
        raise ValueError(f"retention task {task.name!r} is registered twice")
    TASKS[task.name] = task
    return task


def get_task(name: str) -> RetentionTask:
    if name not in TASKS:
        raise KeyError(f"unknown retention task {name!r}; known: {', '.join(TASKS)}")
    return TASKS[name]


def load_items(name: str, data_dir: str | Path | None, limit: int | None = None):
    """The first `limit` items of a task (all when None), in the dataset's order."""
    items = get_task(name).load(None if data_dir is None else Path(data_dir))
    return items if limit is None else items[:limit]


# --- tinyBenchmarks (the paper's tasks) ----------------------------------------------------------

TINY_DATASETS = {
    # task: (hub dataset, config, split)
    "tiny_mmlu": ("tinyBenchmarks/tinyMMLU", None, "test"),
    "tiny_hellaswag": ("tinyBenchmarks/tinyHellaswag", None, "validation"),
    "tiny_truthfulqa": ("tinyBenchmarks/tinyTruthfulQA", "multiple_choice", "validation"),
    "tiny_winogrande": ("tinyBenchmarks/tinyWinogrande", "winogrande_xl", "validation"),
    "tiny_gsm8k": ("tinyBenchmarks/tinyGSM8k", "main", "test"),
}


def tiny_rows(task: str, data_dir: Path | None) -> list[dict[str, Any]]:
    """The 100 rows of a tinyBenchmarks dataset, from `<data_dir>/<dataset>.jsonl` or the hub."""
    dataset, config, split = TINY_DATASETS[task]
    export = (
        f"python -c \"from datasets import load_dataset; load_dataset('{dataset}', {config!r}, "
        f"split='{split}').to_json('{dataset.split('/')[1]}.jsonl')\""
    )
    if data_dir is not None:
        path = data_dir / f"{dataset.split('/')[1]}.jsonl"
        if not path.is_file():
            raise TaskDataUnavailable(
                f"{task}: {path} not found. Export it where the hub is reachable with\n  {export}\n"
                f"and put it in {data_dir} (evaluate.retention.tinybench.data_dir)."
            )
        with open(path, encoding="utf-8") as handle:
            rows = [json.loads(line) for line in handle if line.strip()]
    else:
        try:
            from datasets import load_dataset

            rows = list(load_dataset(dataset, config, split=split))
        except Exception as error:  # noqa: BLE001  (any hub or cache failure means the same to the user)
            raise TaskDataUnavailable(
                f"{task}: cannot load {dataset} from the Hugging Face hub ({type(error).__name__}: "
                f"{str(error).splitlines()[0] if str(error) else ''}). Export it where the hub is reachable "
                f"with\n  {export}\nand set evaluate.retention.tinybench.data_dir to the folder holding it."
            ) from None
    if len(rows) != 100:
        raise ValueError(f"{task}: expected the 100 tinyBenchmarks rows, got {len(rows)}")
    return rows


def with_space(context: str, continuation: str) -> str:
    return continuation if context[-1:].isspace() else " " + continuation


def load_tiny_mmlu(data_dir):
    items = []
    for i, row in enumerate(tiny_rows("tiny_mmlu", data_dir)):
        context = row["input_formatted"]
        choices = tuple(Choice(context, with_space(context, letter), letter) for letter in "ABCD")
        items.append(MultipleChoiceItem(f"tiny_mmlu/{i}", choices, int(row["answer"])))
    return items


def hellaswag_ending(text: str) -> str:
    text = text.strip().replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    return text.replace("  ", " ", 1)


def load_tiny_hellaswag(data_dir):
    items = []
    for i, row in enumerate(tiny_rows("tiny_hellaswag", data_dir)):
        context = row["input_formatted"]
        endings = [hellaswag_ending(e) for e in row["endings"]]
        choices = tuple(Choice(context, " " + e, e) for e in endings)
        items.append(MultipleChoiceItem(f"tiny_hellaswag/{i}", choices, int(row["label"])))
    return items


def load_tiny_truthfulqa(data_dir):
    items = []
    for i, row in enumerate(tiny_rows("tiny_truthfulqa", data_dir)):
        context = row["input_formatted"]
        targets = row["mc2_targets"]
        labels = tuple(float(x) for x in targets["labels"])
        choices = tuple(Choice(context, " " + c, c) for c in targets["choices"])
        items.append(MultipleChoiceItem(f"tiny_truthfulqa/{i}", choices, labels.index(1.0), labels))
    return items


def load_tiny_winogrande(data_dir):
    """Partial scoring: the two options complete the context, the shared rest of the sentence is scored."""
    items = []
    for i, row in enumerate(tiny_rows("tiny_winogrande", data_dir)):
        formatted, sentence = row["input_formatted"], row["sentence"]
        gold = int(row["answer"]) - 1
        options = (row["option1"], row["option2"])
        if not formatted.endswith(options[gold]):
            raise ValueError(f"tiny_winogrande/{i}: input_formatted does not end with the gold option")
        prefix = formatted[: -len(options[gold])]
        continuation = " " + sentence[sentence.index("_") + 1 :].strip()
        choices = tuple(Choice(prefix + option, continuation, option) for option in options)
        items.append(MultipleChoiceItem(f"tiny_winogrande/{i}", choices, gold))
    return items


def load_tiny_gsm8k(data_dir):
    return [
        GenerationItem(f"tiny_gsm8k/{i}", row["input_formatted"], gold_answer(row["answer"]))
        for i, row in enumerate(tiny_rows("tiny_gsm8k", data_dir))
    ]


register_task(RetentionTask("tiny_mmlu", "acc", "mmlu", False, load_tiny_mmlu,
                            "tinyMMLU, 5-shot in input_formatted, answer letters scored"))
register_task(RetentionTask("tiny_hellaswag", "acc_norm", "hellaswag", False, load_tiny_hellaswag,
                            "tinyHellaswag, endings scored per character"))
register_task(RetentionTask("tiny_truthfulqa", "mc2", "truthfulqa", False, load_tiny_truthfulqa,
                            "tinyTruthfulQA, mc2: probability mass on the true answers"))
register_task(RetentionTask("tiny_winogrande", "acc", "winogrande", False, load_tiny_winogrande,
                            "tinyWinogrande, partial scoring of the sentence after the blank"))
register_task(RetentionTask("tiny_gsm8k", "exact_match", "gsm8k", False, load_tiny_gsm8k,
                            "tinyGSM8k, greedy generation, strict (####) and flexible (last number)"))


# --- Packaged stand-ins (BIG-bench, Apache-2.0) ----------------------------------------------------

def bigbench_task(relative: str) -> dict[str, Any]:
    path = BIGBENCH / relative
    if not path.is_file():
        raise TaskDataUnavailable(f"vendored BIG-bench file {path} is missing from the cft package")
    return json.loads(path.read_text(encoding="utf-8"))


def load_standin_truthfulqa(data_dir):
    """BIG-bench's TruthfulQA multiple choice: its QA preamble, then `Q: ...\\nA:`, like tinyTruthfulQA."""
    task = bigbench_task("truthful_qa/task_mc.json")
    items = []
    for i, example in enumerate(task["examples"]):
        context = f"{task['task_prefix']}\nQ: {example['input']}\nA:"
        answers = list(example["target_scores"])
        labels = tuple(float(example["target_scores"][a] > 0) for a in answers)
        choices = tuple(Choice(context, " " + a, a) for a in answers)
        items.append(MultipleChoiceItem(f"standin_truthfulqa/{i}", choices, labels.index(1.0), labels))
    return items


# GSM8K marks its answers with `#### n`. A 135M chat model asked the bare question (or shown
# `Question/Answer` demonstrations inside one user turn) does not pick that convention up, so the
# stand-in asks for it in words; flexible extraction still reads the last number of any answer.
ARITHMETIC_INSTRUCTION = "End your answer with '#### <number>'."


def arithmetic_loader(subtask: str) -> Callable[[Path | None], list[GenerationItem]]:
    """GSM8K-shaped items from a BIG-bench arithmetic task: the question, the answer-format request."""

    def load(data_dir):
        examples = bigbench_task(f"arithmetic/{subtask}/task.json")["examples"]
        return [
            GenerationItem(f"standin_arithmetic_{subtask}/{i}", f"{e['input']} {ARITHMETIC_INSTRUCTION}",
                           normalize_number(e["target"]))
            for i, e in enumerate(examples)
        ]

    return load


register_task(RetentionTask("standin_truthfulqa", "mc2", None, True, load_standin_truthfulqa,
                            "stand-in for tinyTruthfulQA: BIG-bench truthful_qa (299 questions, one true answer)"))
for _subtask in ("2_digit_addition", "2_digit_subtraction", "2_digit_multiplication", "2_digit_division"):
    register_task(RetentionTask(f"standin_arithmetic_{_subtask}", "exact_match", None, True,
                                arithmetic_loader(_subtask),
                                f"stand-in for tinyGSM8k: BIG-bench arithmetic/{_subtask}, zero-shot"))
