"""Local PaliGemma on a tiny random model built from a config, with a small tokenizer built in the test."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

from cloudderm.adapters._vlm_parse import parse_answer  # noqa: E402
from cloudderm.adapters.paligemma import (  # noqa: E402
    PaliGemmaClassifier,
    PaliGemmaSettings,
    answer_after_prompt,
)
from cloudderm.taxonomy import HAM10000  # noqa: E402

WORDS = [
    "<pad>", "<eos>", "<bos>", "<unk>", "<image>", "answer", "en", "which", "skin", "lesion", "class",
    "is", "this", ":", ",", "cannot_determine", *HAM10000.codes,
]  # fmt: skip


@pytest.fixture(scope="module")
def tiny_paligemma(tmp_path_factory) -> Path:
    """A 20k-parameter random PaliGemma + processor saved like a hub checkpoint (the hub is not reachable)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import (
        PaliGemmaConfig,
        PaliGemmaForConditionalGeneration,
        PaliGemmaProcessor,
        PreTrainedTokenizerFast,
    )
    from transformers.models.siglip import SiglipImageProcessor

    vocab = {w: i for i, w in enumerate(WORDS)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.WhitespaceSplit(), pre_tokenizers.Punctuation()]
    )
    tok.decoder = decoders.WordPiece(prefix="##")
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token="<bos>",
        eos_token="<eos>",
        pad_token="<pad>",
        unk_token="<unk>",
        additional_special_tokens=["<image>"],
    )
    images = SiglipImageProcessor(size={"height": 32, "width": 32}, image_mean=[0.5] * 3, image_std=[0.5] * 3)
    images.image_seq_length = 4
    processor = PaliGemmaProcessor(image_processor=images, tokenizer=fast)
    config = PaliGemmaConfig(
        vision_config={
            "model_type": "siglip_vision_model", "hidden_size": 16, "intermediate_size": 32,
            "num_hidden_layers": 1, "num_attention_heads": 2, "image_size": 32, "patch_size": 16,
            "projection_dim": 16,
        },
        text_config={
            "model_type": "gemma", "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
            "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 8, "vocab_size": len(WORDS),
        },
        image_token_index=vocab["<image>"], vocab_size=len(WORDS), projection_dim=16, hidden_size=16,
        pad_token_id=0, bos_token_id=2, eos_token_id=1,
    )  # fmt: skip
    torch.manual_seed(0)
    model = PaliGemmaForConditionalGeneration(config).eval()
    path = tmp_path_factory.mktemp("tiny-paligemma")
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path


def _classifier(path: Path, **overrides) -> PaliGemmaClassifier:
    return PaliGemmaClassifier("paligemma", PaliGemmaSettings(model=str(path), **overrides))


def _force_answer(clf: PaliGemmaClassifier, word: str) -> None:
    """Make the model say ``word``: a bias-only output layer (every other weight stays random)."""
    model, processor = clf._load()
    index = processor.tokenizer.convert_tokens_to_ids(word)
    head = torch.nn.Linear(model.lm_head.in_features, model.lm_head.out_features, bias=True)
    torch.nn.init.zeros_(head.weight)
    with torch.no_grad():
        head.bias.fill_(-10.0)
        head.bias[index] = 10.0
    model.lm_head = head


def test_answer_after_the_echoed_prompt_in_the_real_outputs(provider_payloads: Path) -> None:
    vlm = provider_payloads / "vlm"
    request = json.loads((vlm / "transformers_paligemma-answer-en_request.json").read_text())
    response = json.loads((vlm / "transformers_paligemma-answer-en_response.json").read_text())
    decoded = next(v for v in response.values() if isinstance(v, str) and "\n" in v)
    assert answer_after_prompt(decoded, request["prompt"]) == "beach"
    tgi = json.loads((vlm / "tgi_paligemma-generate_response.json").read_text())
    assert tgi["generated_text"] == "beach"
    json.loads((vlm / "tgi_paligemma-generate_request.json").read_text())  # decodes
    # "beach" is no skin-lesion class: strictly unparseable, never mapped to a nearby label
    assert parse_answer(tgi["generated_text"], HAM10000.codes).outcome == "unparseable"


def test_scores_are_label_likelihoods_and_the_answer_decides_the_outcome(
    tiny_paligemma, sample_images
) -> None:
    clf = _classifier(tiny_paligemma, max_output_tokens=1)  # the forced model never says <eos>
    _force_answer(clf, "mel")
    prediction = clf.classify(sample_images[0])
    assert prediction.outcome == "answered" and prediction.canonical == "mel", prediction.reason
    assert prediction.provider_details["score_source"] == "label-likelihood"
    assert prediction.provider_details["generated_label"] == "mel"
    assert {ls.label for ls in prediction.labels} == set(HAM10000.codes)
    assert sum(ls.score for ls in prediction.labels) == pytest.approx(1.0, abs=1e-9)
    assert prediction.top.label == "mel" and prediction.top.score > 0.99  # bias 10 vs -10: e^-20 per rival
    assert prediction.cost_usd == 0.0


def test_batched_likelihoods_equal_one_label_at_a_time(tiny_paligemma, sample_images) -> None:
    clf = _classifier(tiny_paligemma)
    image = clf.prepare(sample_images[1])
    batched = clf.label_log_likelihoods(image)
    model, processor = clf._load()
    prompt = clf.prompt_text(image).strip()
    for code in ("mel", "nv", "vasc"):
        inputs = processor(text=prompt, images=image.to_pil(), suffix=code, return_tensors="pt")
        with torch.inference_mode():
            logits = model(**{k: v for k, v in inputs.items() if k != "labels"}).logits.float()
        suffix = processor.tokenizer(code, add_special_tokens=False)["input_ids"]
        start = int(inputs["input_ids"].shape[-1]) - len(suffix) - 1  # the processor appends <eos>
        logprobs = torch.log_softmax(logits[0], dim=-1)
        single = sum(float(logprobs[start - 1 + i, t]) for i, t in enumerate(suffix))
        # float32 over ~16 hidden units and a couple of tokens: batch/padding changes the summation order only
        assert batched[code] == pytest.approx(single, abs=1e-4)
    assert all(math.isfinite(v) and v < 0 for v in batched.values())


def test_free_text_from_the_model_stays_unparseable(tiny_paligemma, sample_images) -> None:
    clf = _classifier(tiny_paligemma, max_output_tokens=2)
    _force_answer(clf, "skin")
    prediction = clf.classify(sample_images[0])
    assert prediction.outcome == "unparseable" and prediction.labels == []
    assert "skin" in prediction.reason


def test_pickles_before_and_after_loading(tiny_paligemma, sample_images) -> None:
    import pickle

    clf = _classifier(tiny_paligemma)
    clf.warm_up()
    clone = pickle.loads(pickle.dumps(clf))
    assert clone._model is None and clone.prompt.text == clf.prompt.text
    assert clone.label_log_likelihoods(clone.prepare(sample_images[0])) == pytest.approx(
        clf.label_log_likelihoods(clf.prepare(sample_images[0])), abs=1e-6
    )
