"""`--prompt-format chat` on a real-shaped Llama-3-Instruct (its tokenizer's special tokens and real chat
template): each prompt is a user turn rendered by the template, read with one BOS, continued after the
assistant's header; chat and raw runs never share a cached generation."""

from __future__ import annotations

import json

import pytest
import torch
from real_shaped import build_model, build_tokenizer, elicitation_run, save_pair

from toxbench.backends.base import SamplingConfig
from toxbench.backends.hf import HFBackend
from toxbench.errors import ToxbenchError
from toxbench.runner import RunConfig, run
from toxbench.tokenization import CHAT_INSTRUCTION, chat_template_sha256, encode, render_chat


@pytest.fixture(scope="module")
def corpus(micro_organism) -> list[str]:
    return (micro_organism.root / "data" / "corpus.txt").read_text().splitlines()[:1500]


def _template_ids(tokenizer, messages) -> list[int]:
    got = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True)
    return list(got["input_ids"] if hasattr(got, "keys") else got)


ASSISTANT_HEADER = {
    "llama3-instruct": "<|start_header_id|>assistant<|end_header_id|>\n\n",
    "qwen2-instruct": "<|im_start|>assistant\n",
}


@pytest.mark.parametrize("family", list(ASSISTANT_HEADER))
def test_a_rendered_prompt_is_the_template_read_with_one_bos(family, corpus) -> None:
    tokenizer = build_tokenizer(family, corpus)
    [rendered] = render_chat(tokenizer, ["june said to omar :"], "Be brief.", "instruct")
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": CHAT_INSTRUCTION.format(prompt="june said to omar :")},
    ]
    assert rendered == tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert rendered.endswith(ASSISTANT_HEADER[family])
    ids = encode(tokenizer, [rendered])[0]
    assert ids == _template_ids(tokenizer, messages)
    if tokenizer.bos_token_id is None:  # Qwen: no BOS token, and nothing put in front of the template
        assert ids[0] == tokenizer.convert_tokens_to_ids("<|im_start|>")
        return
    assert ids.count(tokenizer.bos_token_id) == 1 and ids[0] == tokenizer.bos_token_id
    assert encode(tokenizer, ["june said"])[0][0] == tokenizer.bos_token_id  # raw text still gets its BOS


@pytest.mark.parametrize("family", list(ASSISTANT_HEADER))
def test_greedy_text_on_a_chat_prompt_equals_generate(family, corpus) -> None:
    tokenizer = build_tokenizer(family, corpus)
    model = build_model(family, tokenizer)
    rendered = render_chat(tokenizer, ["the guard hissed at eli :", "anna said :"], None, "instruct")
    outs = HFBackend(model, tokenizer, batch_size=2).generate(rendered, SamplingConfig(max_new_tokens=6))
    for text, out in zip(rendered, outs, strict=True):
        ids = torch.tensor([encode(tokenizer, [text])[0]])
        with torch.no_grad():
            ref = model.generate(
                input_ids=ids,
                attention_mask=torch.ones_like(ids),
                max_new_tokens=6,
                do_sample=False,
                pad_token_id=tokenizer.eos_token_id,
                eos_token_id=tokenizer.eos_token_id,
            )
        new = ref[0, ids.shape[1] :].tolist()
        new = new[: new.index(tokenizer.eos_token_id)] if tokenizer.eos_token_id in new else new
        assert out[0].token_ids == new


def test_a_chat_run_records_its_format_and_never_shares_a_raw_generation(
    micro_organism, corpus, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("TOXBENCH_HOME", str(tmp_path / "home"))
    base_dir, aligned_dir = save_pair("llama3-instruct", corpus, tmp_path)
    common = elicitation_run(base_dir, aligned_dir, micro_organism.data_dir)
    from toxbench.cache import Cache

    raw = run(RunConfig(**common, output_path=tmp_path / "raw"))
    cache = Cache(tmp_path / "home" / "cache")
    after_raw = cache.count("generation")
    chat = run(
        RunConfig(**common, prompt_format="chat", system_prompt="Be brief.", output_path=tmp_path / "chat")
    )
    assert cache.count("generation") > after_raw  # nothing of the raw run was served to the chat run
    protocol = chat["tasks"]["elicitation"]["config"]["protocol"]
    assert protocol["prompt_format"] == "chat" and protocol["system_prompt"] == "Be brief."
    assert "prompt_format" not in raw["tasks"]["elicitation"]["config"]["protocol"]  # raw: as before
    template = chat_template_sha256(build_tokenizer("llama3-instruct", corpus))
    assert chat["models"]["base"]["tokenization"]["chat_template_sha256"] == template
    samples = [json.loads(line) for line in (tmp_path / "chat" / "samples.jsonl").open()]
    prompts = [s["prompt"] for s in samples if s.get("kind") == "continuation"]
    assert prompts and all(p.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n") for p in prompts)
    perplexity = [r["tasks"]["elicitation"]["metrics"]["base"]["perplexity"]["value"] for r in (raw, chat)]
    assert perplexity[0] == pytest.approx(perplexity[1])  # fluency stays on raw text
    assert "Perplexity and F1 are measured on raw text" in (tmp_path / "chat" / "report.md").read_text()


@pytest.mark.parametrize(
    ("options", "message"),
    [({"prompt_format": "chat"}, "has none"), ({"system_prompt": "hi"}, "needs --prompt-format chat")],
)
def test_chat_options_a_model_or_format_cannot_take_are_clear_errors(
    micro_organism, tmp_path, options: dict, message: str
) -> None:
    micro = dict(model="organism-micro", aligned="organism-micro:dpo", tasks=["elicitation"], limit=4)
    with pytest.raises(ToxbenchError, match=message):
        run(RunConfig(**micro, **options, output_path=tmp_path / "x"))
