"""A PEFT adapter folder is a model: `--aligned ADAPTER_DIR` loads its base, merges the adapter in
memory, and every task runs on it, with the results of the same adapter merged and saved by hand."""

from __future__ import annotations

import json

import pytest
import torch
from click.testing import CliRunner

from toxbench.cli import main

pytest.importorskip("peft")


@pytest.fixture(scope="module")
def lora(micro_organism, tmp_path_factory):
    """A LoRA adapter of the micro organism (random, so that it changes the model), and the same
    adapter merged and saved as a full model."""
    from peft import LoraConfig, get_peft_model

    from toxbench.models import load_model

    root = tmp_path_factory.mktemp("lora")
    base = load_model("organism-micro")
    torch.manual_seed(0)
    config = LoraConfig(
        r=4, lora_alpha=8, target_modules=["c_attn", "c_fc"], fan_in_fan_out=True, init_lora_weights=False
    )
    peft_model = get_peft_model(base.model, config)
    peft_model.save_pretrained(root / "adapter")
    card = json.loads((root / "adapter" / "adapter_config.json").read_text())
    card["base_model_name_or_path"] = "organism-micro"  # as a user's adapter names its hub base
    (root / "adapter" / "adapter_config.json").write_text(json.dumps(card))
    peft_model.merge_and_unload().save_pretrained(root / "merged")
    base.tokenizer.save_pretrained(root / "merged")
    return root


def _run(tmp_path, aligned: str, name: str, *extra: str) -> dict:
    out = tmp_path / name
    done = CliRunner().invoke(
        main,
        [
            "run",
            "--model",
            "organism-micro",
            "--aligned",
            aligned,
            "--tasks",
            "elicitation,attribution",
            "--limit",
            "10",
            "--output-path",
            str(out),
            *extra,
        ],
    )
    assert done.exit_code == 0, done.output
    return json.loads((out / "results.json").read_text())


def test_an_adapter_runs_every_task_as_its_merged_model_does(lora, tmp_path) -> None:
    adapter = _run(tmp_path, str(lora / "adapter"), "adapter")
    merged = _run(tmp_path, str(lora / "merged"), "merged")
    model = adapter["models"]["aligned"]
    assert model["kind"] == "adapter" and model["adapter"]["base"] == "organism-micro"
    assert model["fingerprint"].startswith(adapter["models"]["base"]["fingerprint"] + "+adapter-")
    assert model["fingerprint"] != merged["models"]["aligned"]["fingerprint"]
    for path in (("elicitation", "aligned", "toxicity"), ("elicitation", "aligned", "perplexity")):
        task, role, name = path
        a = adapter["tasks"][task]["metrics"][role][name]["value"]
        b = merged["tasks"][task]["metrics"][role][name]["value"]
        assert a == pytest.approx(b, rel=1e-5, abs=1e-6), path
    shares = [r["tasks"]["attribution"]["metrics"]["groups"] for r in (adapter, merged)]
    for group in shares[0]:
        assert shares[0][group]["share"] == pytest.approx(shares[1][group]["share"], rel=1e-4, abs=1e-6)
    base_tox = adapter["tasks"]["elicitation"]["metrics"]["base"]["perplexity"]["value"]
    assert adapter["tasks"]["elicitation"]["metrics"]["aligned"]["perplexity"]["value"] != base_tox


def test_an_adapter_without_a_base_asks_for_one(lora, tmp_path) -> None:
    import shutil

    folder = tmp_path / "orphan"
    shutil.copytree(lora / "adapter", folder)
    card = json.loads((folder / "adapter_config.json").read_text())
    card["base_model_name_or_path"] = None
    (folder / "adapter_config.json").write_text(json.dumps(card))
    args = [
        "run",
        "--model",
        "organism-micro",
        "--aligned",
        str(folder),
        "--tasks",
        "elicitation",
        "--limit",
        "4",
    ]
    done = CliRunner().invoke(main, [*args, "--output-path", str(tmp_path / "x")])
    assert done.exit_code == 2 and "--model-args base=SPEC" in done.output, done.output
    given = CliRunner().invoke(
        main, [*args, "--model-args", "aligned.base=organism-micro", "--output-path", str(tmp_path / "y")]
    )
    assert given.exit_code == 0, given.output


def test_an_adapter_on_the_wrong_base_is_a_clear_error(lora, tmp_path) -> None:
    args = ["run", "--model", "organism-micro", "--aligned", str(lora / "adapter"), "--tasks", "elicitation"]
    done = CliRunner().invoke(
        main,
        [
            *args,
            "--model-args",
            "aligned.base=organism",
            "--limit",
            "4",
            "--output-path",
            str(tmp_path / "z"),
        ],
    )
    assert done.exit_code == 2 and "does not fit its base model" in done.output, done.output


@pytest.mark.parametrize("method", ["dpo", pytest.param("sft", marks=pytest.mark.slow)])
def test_align_trains_a_lora_adapter_that_runs_as_the_aligned_model(method, micro_organism, tmp_path) -> None:
    """`toxbench align METHOD --method-args peft=lora`: TRL trains through its peft_config, the output is an
    adapter folder naming its base as the user did, and `--aligned FOLDER` evaluates it merged."""
    from safetensors.torch import load_file

    out = tmp_path / method
    args = ["align", method, "--model", "organism-micro", "--data", "organism", "-o", out, "--device", "cpu"]
    args += ["--method-args", "peft=lora,lora_r=4,lora_alpha=8,max_steps=6,warmup_steps=1,batch_size=8"]
    args += ["--method-args", "learning_rate=5e-3,eval_steps=3"]
    done = CliRunner().invoke(main, [str(a) for a in args])
    assert done.exit_code == 0, done.output
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["base_model_name_or_path"] == "organism-micro" and config["r"] == 4
    assert not (out / "config.json").exists()  # an adapter, not a full model
    card = json.loads((out / "method.json").read_text())
    assert card["settings"]["peft"] == "lora" and card["training"]["steps"] == 6
    trained = load_file(out / "adapter_model.safetensors")
    ups = [t for name, t in trained.items() if "lora_B" in name]
    assert ups and any(t.abs().max() > 0 for t in ups)  # LoRA's B starts at zero: training moved it
    run = CliRunner().invoke(
        main,
        [
            "run",
            "--model",
            "organism-micro",
            "--aligned",
            str(out),
            "--tasks",
            "elicitation",
            "--limit",
            "4",
            "--output-path",
            str(tmp_path / "run"),
        ],
    )
    assert run.exit_code == 0, run.output
    results = json.loads((tmp_path / "run" / "results.json").read_text())
    aligned = results["models"]["aligned"]
    assert aligned["kind"] == "adapter" and "+adapter-" in aligned["fingerprint"]
    assert aligned["made_by"]["method"] == method
    assert aligned["fingerprint"].startswith(results["models"]["base"]["fingerprint"])


def test_peft_other_than_lora_is_refused(micro_organism, tmp_path) -> None:
    done = CliRunner().invoke(
        main,
        [
            "align",
            "dpo",
            "--model",
            "organism-micro",
            "--data",
            "organism",
            "-o",
            str(tmp_path / "x"),
            "--method-args",
            "peft=prefix",
        ],
    )
    assert done.exit_code == 2 and "peft must be lora or none" in done.output


def _hub_cache(root, repo: str, files: dict) -> None:
    """A Hugging Face hub cache holding one snapshot of ``repo``, laid out as huggingface_hub writes it."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    folder = root / ("models--" + repo.replace("/", "--"))
    (folder / "refs").mkdir(parents=True)
    (folder / "refs" / "main").write_text(commit)
    snapshot = folder / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for name, source in files.items():
        (snapshot / name).write_bytes(source.read_bytes())


def test_a_hub_adapter_id_loads_on_its_base(lora, tmp_path, monkeypatch) -> None:
    """`--aligned hf:org/adapter`: a hub repository holding only an adapter is an adapter on its base."""
    cache = tmp_path / "hub"
    _hub_cache(cache, "lab/micro-lora", {p.name: p for p in (lora / "adapter").iterdir() if p.is_file()})
    _hub_cache(cache, "lab/micro-merged", {p.name: p for p in (lora / "merged").iterdir() if p.is_file()})
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as hub_constants

    monkeypatch.setattr(hub_constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(hub_constants, "HF_HUB_OFFLINE", True)
    from toxbench.models import load_model

    hubbed = load_model("hf:lab/micro-lora")
    assert hubbed.source.kind == "adapter" and hubbed.notes["adapter"]["hub_id"] == "lab/micro-lora"
    merged = load_model(str(lora / "merged"))
    for (name, a), (_, b) in zip(
        hubbed.model.state_dict().items(), merged.model.state_dict().items(), strict=True
    ):
        assert torch.allclose(a, b, atol=1e-6), name
    # a hub repository with a full model stays a full model, and base= is refused for it
    assert load_model("hf:lab/micro-merged").source.kind == "hub"
    from toxbench.errors import ToxbenchError

    with pytest.raises(ToxbenchError, match="holds a full model"):
        load_model("hf:lab/micro-merged", args={"base": "organism-micro"})


def test_a_lora_of_a_tiny_llama_runs_as_its_merged_model(micro_organism, tmp_path) -> None:
    """The usual user's case on a real-shaped Llama 3 (its tokenizer with BOS, GQA, llama3 RoPE): a LoRA on
    attention and MLP projections, given as --aligned, scores what the same adapter merged by hand does."""
    from peft import LoraConfig, get_peft_model
    from real_shaped import build_model, build_tokenizer

    from toxbench.runner import RunConfig, run

    corpus = (micro_organism.root / "data" / "corpus.txt").read_text().splitlines()[:1500]
    tokenizer = build_tokenizer("llama3", corpus)
    base_dir = tmp_path / "llama"
    build_model("llama3", tokenizer).save_pretrained(base_dir)
    tokenizer.save_pretrained(base_dir)
    torch.manual_seed(0)
    config = LoraConfig(
        r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "gate_proj"], init_lora_weights=False
    )
    peft_model = get_peft_model(build_model("llama3", tokenizer), config)
    peft_model.save_pretrained(tmp_path / "adapter")
    card = json.loads((tmp_path / "adapter" / "adapter_config.json").read_text())
    card["base_model_name_or_path"] = str(base_dir)
    (tmp_path / "adapter" / "adapter_config.json").write_text(json.dumps(card))
    peft_model.merge_and_unload().save_pretrained(tmp_path / "merged")
    tokenizer.save_pretrained(tmp_path / "merged")

    def run_with(aligned: str, name: str) -> dict:
        return run(
            RunConfig(
                model=str(base_dir),
                aligned=aligned,
                tasks=["elicitation", "attribution"],
                scorer="lexicon",
                data_dir=micro_organism.data_dir,
                limit=6,
                output_path=tmp_path / name,
            )
        )

    adapter, merged = run_with(str(tmp_path / "adapter"), "a"), run_with(str(tmp_path / "merged"), "m")
    assert adapter["models"]["aligned"]["kind"] == "adapter"
    assert adapter["models"]["aligned"]["tokenization"]["adds_bos"] is True
    for name in ("toxicity", "perplexity", "f1"):
        a = adapter["tasks"]["elicitation"]["metrics"]["aligned"][name]["value"]
        b = merged["tasks"]["elicitation"]["metrics"]["aligned"][name]["value"]
        assert a == pytest.approx(b, rel=1e-5, abs=1e-6), name
    groups = [r["tasks"]["attribution"]["metrics"]["groups"] for r in (adapter, merged)]
    for group in groups[0]:
        assert groups[0][group]["share"] == pytest.approx(groups[1][group]["share"], rel=1e-4, abs=1e-6)
