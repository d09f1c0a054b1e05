"""kompress.llmlingua.PromptCompressor against llmlingua 0.2.2's recorded results (the Rust tests'
fixtures, tests/fixtures/llmlingua2/: made by scripts/llmlingua_fixtures.py), and its argument errors."""

from __future__ import annotations

import asyncio
import json
import warnings

import pytest

import kompress
from conftest import ROOT, model_dir
from kompress.llmlingua import PromptCompressor

FIXTURES = ROOT / "tests" / "fixtures" / "llmlingua2"
LL_MODELS = ["llmlingua-2-bert-base-multilingual-cased-tiny", "llmlingua-2-xlm-roberta-large-tiny"]
TEXTS = json.loads((FIXTURES / "texts.json").read_text())
# The fields every fixture case records (llmlingua's dict less `saving`, which the Rust tests skip too).
RECORDED = ["compressed_prompt", "compressed_prompt_list", "origin_tokens", "compressed_tokens", "ratio", "rate"]


def cases():
    for model in LL_MODELS:
        for case in json.loads((FIXTURES / f"{model}.json").read_text())["cases"]:
            yield pytest.param(model, case, id=f"{model.split('-')[2]}/{case['name']}")


@pytest.fixture(scope="module")
def compressors():
    return {
        m: PromptCompressor(model_name=model_dir(m), device_map="cpu", use_llmlingua2=True) for m in LL_MODELS
    }


def context_of(case):
    keys = case["context"]
    return TEXTS[keys] if isinstance(keys, str) else [TEXTS[k] for k in keys]


@pytest.mark.parametrize("model,case", list(cases()))
def test_compress_prompt_llmlingua2_is_llmlinguas(compressors, model, case):
    got = compressors[model].compress_prompt_llmlingua2(context_of(case), **case["options"])
    assert {k: got[k] for k in RECORDED} == {k: case[k] for k in RECORDED}
    # llmlingua's dict: its keys in its order, `saving` as it formats it.
    assert list(got) == RECORDED + ["saving"]
    saving = (case["origin_tokens"] - case["compressed_tokens"]) * 0.06 / 1000
    assert got["saving"] == f", Saving ${saving:.1f} in GPT-4."


@pytest.mark.parametrize("model,case", [c for c in cases() if c.values[1]["name"].startswith("contexts_filter")])
def test_compress_prompt_forwards_as_llmlingua_does(compressors, model, case):
    """compress_prompt passes its LLMLingua-2 arguments on (the LLMLingua-1 ones are ignored), with
    its own default use_context_level_filter=True: the fixtures' filter cases name it explicitly."""
    pc = compressors[model]
    options = dict(case["options"])
    assert options.pop("use_context_level_filter") is True
    got = pc.compress_prompt(context_of(case), question="ignored", instruction="ignored", **options)
    assert {k: got[k] for k in RECORDED} == {k: case[k] for k in RECORDED}
    assert pc(context_of(case), **options) == got


def api_cases():
    for model in LL_MODELS:
        for case in json.loads((FIXTURES / f"api-{model}.json").read_text())["cases"]:
            yield pytest.param(model, case, id=f"{model.split('-')[2]}/{case['name']}")


@pytest.mark.parametrize("model,case", list(api_cases()))
def test_whole_result_dicts_are_llmlinguas(compressors, model, case):
    """llmlingua's whole dict (scripts/llmlingua_api_fixtures.py): word labels with their separators,
    empty and whitespace contexts, the context-level options, compress_prompt's own defaults."""
    keys = case["context"]
    context = keys["text"] if isinstance(keys, dict) else [TEXTS[k] for k in keys] if isinstance(keys, list) else TEXTS[keys]
    got = getattr(compressors[model], case["method"])(context, **case["options"])
    assert got == case["result"]
    assert list(got) == list(case["result"])


def test_llmlingua1_is_refused():
    with pytest.raises(kompress.InvalidOptionError, match="use_llmlingua2=False: kompress serves only LLMLingua-2"):
        PromptCompressor(model_name=model_dir(LL_MODELS[0]), device_map="cpu")
    with pytest.raises(kompress.InvalidOptionError, match="LLMLingua-1"):
        PromptCompressor()  # llmlingua's defaults: Llama-2 with LLMLingua-1


def test_a_kompress_model_is_refused():
    with pytest.raises(kompress.InvalidOptionError, match="ModernBERT"):
        PromptCompressor(model_name=model_dir("v5"), device_map="cpu", use_llmlingua2=True)


def test_device_map_and_config(compressors):
    pc = compressors[LL_MODELS[0]]
    assert (pc.device, pc.dtype, pc.max_batch_size, pc.max_force_token) == ("cpu", "f32", 50, 100)
    name = model_dir(LL_MODELS[0])
    if "cuda" not in kompress._kompress.GPU_BACKENDS:
        with pytest.warns(RuntimeWarning, match="no CUDA support, so the model runs on the CPU"):
            assert PromptCompressor(model_name=name, use_llmlingua2=True).device == "cpu"  # llmlingua's default
    small = PromptCompressor(
        model_name=name,
        device_map="cpu",
        use_llmlingua2=True,
        model_config={"torch_dtype": "float32", "trust_remote_code": True},
        llmlingua2_config={"max_batch_size": 1, "max_force_token": 2},
    )
    text = TEXTS["long"]  # several chunks: one a forward pass gives the same result
    assert small.compress_prompt_llmlingua2(text, rate=0.4) == pc.compress_prompt_llmlingua2(text, rate=0.4)
    with pytest.raises(kompress.InvalidOptionError, match=r"force_tokens: 3 tokens, more than .*max_force_token'\] \(2\)"):
        small.compress_prompt_llmlingua2(text, force_tokens=["a", "b", "c"])
    with pytest.warns(UserWarning, match="model_config: attn_fancy: no meaning in kompress"):
        PromptCompressor(model_name=name, device_map="cpu", use_llmlingua2=True, model_config={"attn_fancy": 1})
    for kwargs, message in [
        ({"device_map": "tpu"}, "device_map: 'tpu'"),
        ({"device_map": "cpu", "model_config": {"torch_dtype": "int4"}}, "torch_dtype 'int4'"),
        ({"device_map": "cpu", "llmlingua2_config": {"max_batch": 1}}, "llmlingua2_config: unknown key 'max_batch'"),
        ({"device_map": "cpu", "llmlingua2_config": {"max_batch_size": 0}}, "max_batch_size'\\]: 0"),
    ]:
        with pytest.raises(kompress.InvalidOptionError, match=message):
            PromptCompressor(model_name=name, use_llmlingua2=True, **kwargs)
    with pytest.raises(kompress.ModelNotFoundError):
        PromptCompressor(model_name=str(ROOT / "no-such-model"), device_map="cpu", use_llmlingua2=True)


@pytest.mark.parametrize(
    "kwargs,error,message",
    [
        ({"rate": "0.5"}, TypeError, "rate: must be a number, not str"),
        ({"rate": float("nan")}, kompress.InvalidOptionError, "rate: nan"),
        ({"rate": 0}, kompress.InvalidOptionError, "rate 0: not in "),
        ({"target_token": 40.5}, kompress.InvalidOptionError, "target_token: 40.5: must be a whole number"),
        ({"target_token": "40"}, TypeError, "target_token: must be an int, not str"),
        ({"force_tokens": ["\n", 3]}, TypeError, r"force_tokens\[1\]: must be str, not int"),
        ({"force_tokens": ["x"] * 101}, kompress.InvalidOptionError, "101 tokens"),
        ({"token_to_word": "last"}, kompress.InvalidOptionError, "token_to_word: 'last'"),
        ({"return_word_label": "yes"}, TypeError, "return_word_label: must be True or False"),
        ({"chunk_end_tokens": 5}, TypeError, "chunk_end_tokens: must be a list of str, not int"),
        ({"force_context_ids": ["0"]}, TypeError, r"force_context_ids\[0\]: must be an int"),
    ],
)
def test_bad_arguments_raise_clearly(compressors, kwargs, error, message):
    with pytest.raises(error, match=message):
        compressors[LL_MODELS[0]].compress_prompt_llmlingua2("Some text. More text.", **kwargs)


@pytest.mark.parametrize(
    "context,message",
    [(None, "context must be a str or a list of str, not NoneType"), ([b"x"], r"context\[0\] must be str, not bytes"), (["a", 1], r"context\[1\] must be str, not int")],
)
def test_bad_contexts_raise_clearly(compressors, context, message):
    with pytest.raises(kompress.InvalidInputError, match=message):
        compressors[LL_MODELS[0]].compress_prompt_llmlingua2(context)


def test_numpy_and_whole_float_arguments_are_taken(compressors):
    np = pytest.importorskip("numpy")
    pc = compressors[LL_MODELS[0]]
    text = TEXTS["english"]
    want = pc.compress_prompt_llmlingua2(text, target_token=40, force_reserve_digit=True)
    assert pc.compress_prompt_llmlingua2(text, target_token=np.int64(40), force_reserve_digit=np.bool_(True)) == want
    assert pc.compress_prompt_llmlingua2(text, target_token=40.0, force_reserve_digit=True) == want
    # A str of force tokens is iterated by character, as llmlingua does.
    assert pc.compress_prompt_llmlingua2(text, force_tokens=".,") == pc.compress_prompt_llmlingua2(text, force_tokens=[".", ","])


def test_async_methods_equal_the_sync_ones(compressors):
    pc = compressors[LL_MODELS[1]]

    async def main():
        return await asyncio.gather(
            pc.acompress_prompt_llmlingua2(TEXTS["english"], rate=0.5),
            pc.acompress_prompt([TEXTS["english"], TEXTS["code"]], rate=0.5),
        )

    one, two = asyncio.run(main())
    assert one == pc.compress_prompt_llmlingua2(TEXTS["english"], rate=0.5)
    assert two == pc.compress_prompt([TEXTS["english"], TEXTS["code"]], rate=0.5)
