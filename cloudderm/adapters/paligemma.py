"""A local PaliGemma (``transformers`` image-to-text) used as a classifier, scored exactly.

Why exact scores: a generative model's text has no score, and sampling k answers only estimates one. Here
the score of each label is the model's own log-likelihood of that label's text after the image and the
prompt (one batched forward pass over the taxonomy's codes), turned into a distribution with a softmax
over the codes: ``score_source: label-likelihood``. The model's generated answer still decides the
outcome: it is parsed strictly after the echoed prompt (PaliGemma's decoded output repeats the prompt,
then ``\\n``, then the answer), so a reply that is no label stays ``unparseable`` and is never replaced by
the likelihood ranking.

Runs on the CPU by default; the model and processor are loaded on first use (``warm_up``) from a local
directory or a Hugging Face id, with ``local_files_only`` unless ``allow_download: true``.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from typing import Any, ClassVar

from pydantic import Field

from cloudderm.adapters._generative import GenerativeClassifier, GenerativeSettings, Reply
from cloudderm.adapters._vlm_parse import keep
from cloudderm.classifier import RawResult
from cloudderm.core import PriceQuery
from cloudderm.errors import ConfigError, MissingDependencyError, install_hint
from cloudderm.governance.card import ServiceFacts
from cloudderm.images import PreparedImage

__all__ = ["PALIGEMMA_TEMPLATE", "PaliGemmaClassifier", "PaliGemmaSettings", "answer_after_prompt"]

PALIGEMMA_TEMPLATE = "answer en which skin lesion class is this: {codes}"


class PaliGemmaSettings(GenerativeSettings):
    """Local PaliGemma settings: ``model`` is a directory (or a hub id with ``allow_download``)."""

    adapter: str = "paligemma"
    prompt: str | None = PALIGEMMA_TEMPLATE
    max_output_tokens: int = Field(default=8, ge=1, le=256)
    device: str = "cpu"
    allow_download: bool = False


def answer_after_prompt(decoded: str, prompt: str) -> str:
    """The answer in PaliGemma's decoded output: after the echoed prompt, else after the first newline."""
    text = decoded.strip()
    if text.startswith(prompt.strip()):
        return text[len(prompt.strip()) :].strip()
    _, sep, tail = text.partition("\n")
    return tail.strip() if sep else text


class PaliGemmaClassifier(GenerativeClassifier[PaliGemmaSettings]):
    """PaliGemma on this machine: greedy answer for the outcome, label likelihoods for the scores."""

    adapter = "paligemma"
    vendor: ClassVar[str] = "local"
    Settings = PaliGemmaSettings

    def __init__(self, name: str, settings: PaliGemmaSettings, **kwargs: Any) -> None:
        super().__init__(name, settings, **kwargs)
        self._lock = threading.Lock()
        self._model: Any = None
        self._processor: Any = None

    def service_facts(self) -> ServiceFacts:
        return ServiceFacts(
            service="local transformers PaliGemma",
            vendor="local",
            region="local",
            data_leaves_machine=False,
            general_purpose_model=True,
        )

    def price_query(self) -> PriceQuery:
        return PriceQuery(label=f"local PaliGemma {self.settings.model}", local=True)

    def warm_up(self) -> None:
        self._load()

    def _load(self) -> tuple[Any, Any]:
        with self._lock:
            if self._model is None:
                try:
                    import torch  # noqa: F401
                    from transformers import AutoModelForImageTextToText, AutoProcessor
                except ImportError as e:
                    raise MissingDependencyError(install_hint("hf", "transformers and torch")) from e
                options = {"local_files_only": not self.settings.allow_download}
                try:
                    self._processor = AutoProcessor.from_pretrained(self.settings.model, **options)
                    model = AutoModelForImageTextToText.from_pretrained(self.settings.model, **options)
                except OSError as e:
                    raise ConfigError(
                        f"cannot load PaliGemma from {self.settings.model!r} ({str(e)[:200]}); give a local "
                        "directory with the model and processor, or set allow_download: true",
                        provider=self.name,
                        field="model",
                    ) from None
                self._model = model.to(self.settings.device).eval()
            return self._model, self._processor

    def close(self) -> None:
        with self._lock:
            self._model = self._processor = None

    def _infer(self, images: Sequence[PreparedImage]) -> list[RawResult]:
        return [self._classify_local(image) for image in images]

    def _ask(self, image: PreparedImage) -> Reply:
        """One greedy (or sampled, with temperature > 0) generation; the answer after the echoed prompt."""
        import torch

        model, processor = self._load()
        prompt = self.prompt_text(image).strip()
        inputs = processor(text=prompt, images=image.to_pil(), return_tensors="pt").to(self.settings.device)
        sampling = (
            {"do_sample": True, "temperature": self.settings.temperature} if self.settings.temperature else {}
        )
        with torch.inference_mode():
            output = model.generate(
                **inputs, max_new_tokens=self.settings.max_output_tokens, **({"do_sample": False} | sampling)
            )
        prompt_ids = inputs["input_ids"][0]
        prompt_tokens = int(prompt_ids.shape[-1])
        if output.shape[-1] >= prompt_tokens and torch.equal(output[0, :prompt_tokens], prompt_ids):
            answer = processor.decode(output[0, prompt_tokens:], skip_special_tokens=True).strip()
        else:  # a generate() that did not return the prompt ids: strip the echoed prompt from the text
            answer = answer_after_prompt(processor.decode(output[0], skip_special_tokens=True), prompt)
        details = {"generated": keep(answer)}
        return Reply(text=answer, details=details | {"prompt_tokens": prompt_tokens})

    def _classify_local(self, image: PreparedImage) -> RawResult:
        raw = self._classify_one(image)  # the generated answer(s) decide the outcome
        if raw.outcome != "answered":
            return raw
        likelihoods = self.label_log_likelihoods(image)
        peak = max(likelihoods.values())
        weights = {code: math.exp(ll - peak) for code, ll in likelihoods.items()}
        total = sum(weights.values())
        generated = raw.labels[0][0] if raw.labels else None
        raw.labels = [(code, weight / total) for code, weight in weights.items()]
        raw.details.update(
            score_source="label-likelihood",
            label_log_likelihoods={code: round(ll, 6) for code, ll in likelihoods.items()},
            generated_label=generated,
            truncated_labels=False,
        )
        raw.warnings = [w for w in raw.warnings if "vote share of 1 sample" not in w]
        top = max(weights, key=weights.__getitem__)
        if generated is not None and top != generated:
            raw.warnings.append(
                f"generated answer {generated!r} is not the most likely label text ({top!r}); scores rank "
                "the label texts by likelihood"
            )
        return raw

    def label_log_likelihoods(self, image: PreparedImage) -> dict[str, float]:
        """log P(label text | image, prompt) for every code, in one batched forward pass."""
        import torch

        model, processor = self._load()
        prompt = self.prompt_text(image).strip()
        prefix = processor(text=prompt, images=image.to_pil(), return_tensors="pt")
        prefix_ids = prefix["input_ids"][0]
        tokenizer = processor.tokenizer
        codes = list(self.prompt.codes)
        suffixes = [tokenizer(code, add_special_tokens=False)["input_ids"] for code in codes]
        width = max(len(s) for s in suffixes)
        n, p = len(codes), int(prefix_ids.shape[0])
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        input_ids = torch.full((n, p + width), pad, dtype=torch.long)
        attention = torch.zeros((n, p + width), dtype=torch.long)
        token_types = torch.ones((n, p + width), dtype=torch.long)
        for row, suffix in enumerate(suffixes):
            input_ids[row, :p] = prefix_ids
            input_ids[row, p : p + len(suffix)] = torch.tensor(suffix, dtype=torch.long)
            attention[row, : p + len(suffix)] = 1
            token_types[row, :p] = 0
        pixel_values = prefix["pixel_values"].expand(n, *prefix["pixel_values"].shape[1:])
        with torch.inference_mode():
            logits = model(
                input_ids=input_ids.to(self.settings.device),
                attention_mask=attention.to(self.settings.device),
                token_type_ids=token_types.to(self.settings.device),
                pixel_values=pixel_values.to(self.settings.device),
            ).logits.float()
        logprobs = torch.log_softmax(logits, dim=-1)
        out: dict[str, float] = {}
        for row, (code, suffix) in enumerate(zip(codes, suffixes)):
            positions = torch.arange(p - 1, p - 1 + len(suffix))
            picked = logprobs[row, positions, torch.tensor(suffix, dtype=torch.long)]
            out[code] = float(picked.sum())
        return out
