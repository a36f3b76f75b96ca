"""Explain images for providers: plan (count every call first), check the budget, then make the maps.

``Explainer`` is the one engine behind ``cloudderm explain``, ``compare --explain`` and
``Classifier.explain``. Local models with a PyTorch handle (``explain_target()``) get gradient maps, which
cost no provider call; every other provider gets black-box occlusion through its adapter. Before any call,
``plan`` counts the exact images each pair still has to send (answers already in the results store are
free) so the caller can print the count and cost and refuse above the budget.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from PIL import Image

from cloudderm.errors import ConfigError
from cloudderm.explain import checks
from cloudderm.explain.calls import CachedCaller
from cloudderm.explain.gradient import DEFAULT_IG_STEPS, GRADIENT_METHODS
from cloudderm.explain.maps import normalise, place_in_box, spearman
from cloudderm.explain.occlusion import DEFAULT_GRID, OcclusionPlan, occlusion_plan
from cloudderm.explain.targets import resolve_target
from cloudderm.explain.torch_target import TorchTarget, randomised
from cloudderm.explain.types import METHODS, Explanation

if TYPE_CHECKING:
    from cloudderm.classifier import Classifier
    from cloudderm.compare.store import ResultStore
    from cloudderm.images import PreparedImage

__all__ = ["DEFAULT_MAX_CALLS", "SANITY_THRESHOLD", "CallBudgetExceeded", "ExplainOptions", "Explainer"]

DEFAULT_MAX_CALLS = 200
# Built-in adapters whose PyTorch model can be explained by gradients: adapter name -> target builder.
BUILTIN_TARGETS = {
    "huggingface": "cloudderm.explain.hf:hf_target",
    "zoo": "cloudderm.explain.zoo:zoo_target",
}
SANITY_THRESHOLD = 0.5
CHOICES = ("auto", *METHODS)


class CallBudgetExceeded(ConfigError):
    """More provider calls are needed than allowed; raised before any call (exit code 2)."""


@dataclass(frozen=True)
class ExplainOptions:
    """How to explain: method (``auto`` picks per provider), target label, checks and their sizes."""

    method: str = "auto"
    target: str | None = None
    sanity: bool = False
    deletion: bool = True
    grid: int = DEFAULT_GRID
    ig_steps: int = DEFAULT_IG_STEPS

    def __post_init__(self) -> None:
        if self.method not in CHOICES:
            raise ConfigError(f"unknown method {self.method!r}; choose one of {', '.join(CHOICES)}")


@dataclass
class PairPlan:
    """One image x provider: the method and the calls it still needs."""

    clf: Classifier
    image: PreparedImage
    method: str
    calls: int
    images: int = 0
    cost_usd: float | None = 0.0
    occlusion: OcclusionPlan | None = None
    prepared: list[PreparedImage] = field(default_factory=list)


@dataclass
class Budget:
    """What a run will send: calls per provider and their estimated cost (None = no sourced price)."""

    pairs: list[PairPlan]

    @property
    def calls(self) -> int:
        return sum(p.calls for p in self.pairs)

    def per_provider(self) -> dict[str, tuple[int, int, float | None]]:
        """Provider -> (requests, images, estimated USD or None)."""
        out: dict[str, tuple[int, int, float | None]] = {}
        for pair in self.pairs:
            calls, images, cost = out.get(pair.clf.name, (0, 0, 0.0))
            total = None if cost is None or pair.cost_usd is None else cost + pair.cost_usd
            out[pair.clf.name] = (calls + pair.calls, images + pair.images, total)
        return out

    @property
    def cost_usd(self) -> float | None:
        costs = [cost for _, _, cost in self.per_provider().values()]
        return None if any(c is None for c in costs) else float(sum(costs))  # type: ignore[arg-type]

    def lines(self) -> list[str]:
        """Human lines: one per provider, then the total (printed before any call)."""
        out = []
        for name, (calls, images, cost) in self.per_provider().items():
            price = "no per-call price (see `cloudderm cost`)" if cost is None else f"est. ${cost:.4f}"
            out.append(f"{name}: {calls} calls ({images} images), {price}")
        total = self.cost_usd
        price = "unknown" if total is None else f"${total:.4f}"
        out.append(f"total: {self.calls} provider calls, estimated cost {price}")
        return out

    def check(self, max_calls: int | None, yes: bool) -> None:
        """Refuse (before any call) above ``max_calls``, or above the default budget without ``yes``."""
        limit = max_calls if max_calls is not None else (None if yes else DEFAULT_MAX_CALLS)
        if limit is not None and self.calls > limit:
            raise CallBudgetExceeded(
                f"explaining needs {self.calls} provider calls, over the budget of {limit}. "
                f"Fix: pass --max-calls {self.calls} (or more), or --yes to accept, or fewer images, "
                "or a smaller --grid",
                field="max_calls",
            )


class Explainer:
    """Make explanations for several providers, sharing model loads and the results-store cache."""

    def __init__(self, options: ExplainOptions | None = None, store: ResultStore | None = None) -> None:
        self.options = options or ExplainOptions()
        self.store = store
        self._targets: dict[str, TorchTarget | None] = {}
        self._random: dict[str, TorchTarget] = {}
        self._callers: dict[str, CachedCaller] = {}

    # ---- which method, which model ---------------------------------------------------------------
    def torch_target(self, clf: Classifier) -> TorchTarget | None:
        """The provider's PyTorch model when one can be had (loaded once), else None (a black box).

        An adapter offers one with an ``explain_target()`` method (third-party adapters do so); the
        built-in local adapters are listed in ``BUILTIN_TARGETS`` so their modules need not know about
        explanations.
        """
        if clf.name not in self._targets:
            factory = getattr(clf, "explain_target", None)
            if not callable(factory) and clf.adapter in BUILTIN_TARGETS:
                module, _, attr = BUILTIN_TARGETS[clf.adapter].partition(":")
                builder = getattr(importlib.import_module(module), attr)
                self._targets[clf.name] = builder(clf)
            else:
                self._targets[clf.name] = factory() if callable(factory) else None
        return self._targets[clf.name]

    def method_for(self, clf: Classifier) -> str:
        wanted = self.options.method
        if wanted == "occlusion":
            return wanted
        target = self.torch_target(clf)
        if target is None:
            if wanted != "auto":
                raise ConfigError(
                    f"{wanted} needs the model's gradients, and {clf.name} ({clf.adapter}) is a black box. "
                    "Fix: use --method occlusion or auto",
                    provider=clf.name,
                    field="method",
                )
            return "occlusion"
        if wanted == "auto":
            return "rollout" if target.kind == "vit" else "gradcam"
        return wanted

    def caller(self, clf: Classifier) -> CachedCaller:
        if clf.name not in self._callers:
            self._callers[clf.name] = CachedCaller(clf, self.store)
        return self._callers[clf.name]

    # ---- planning ---------------------------------------------------------------------------------
    def plan(self, pairs: list[tuple[PreparedImage, Classifier]]) -> Budget:
        """Count the exact calls each pair needs, sending nothing."""
        return Budget([self._plan_pair(image, clf) for image, clf in pairs])

    def _plan_pair(self, image: PreparedImage, clf: Classifier) -> PairPlan:
        method = self.method_for(clf)
        if method != "occlusion":
            return PairPlan(clf, image, method, 0)
        occ = occlusion_plan(np.asarray(image.to_pil()), self.options.grid)
        prepared = [self._prepare(clf, pixels, image, k) for k, pixels in enumerate(occ.images)]
        caller = self.caller(clf)
        calls, images, cost = caller.quote(prepared)
        if self.options.deletion:
            if images:  # the masked images depend on a map not yet made, so they are new bytes too
                masked = [prepared[0], prepared[0]]  # stand-ins of the same size for the two masked images
                extra = caller.clf.plan_batches(masked)
                pricing = clf.pricing
                each = [pricing.cost_per_call(len(b)) if pricing else None for b in extra]
                calls, images = calls + len(extra), images + 2
                cost = (
                    None
                    if cost is None or None in each
                    else cost + sum(e * len(b) for e, b in zip(each, extra))
                )
            else:
                more = self._deletion_quote(clf, caller, occ, prepared, image)
                calls, images = calls + more[0], images + more[1]
                cost = None if cost is None or more[2] is None else cost + more[2]
        return PairPlan(clf, image, method, calls, images, cost, occ, prepared)

    def _deletion_quote(
        self, clf: Classifier, caller: CachedCaller, occ: OcclusionPlan, prepared: list, image: PreparedImage
    ) -> tuple[int, int, float | None]:
        """With every occlusion answer stored, the map and hence the masked images are known: quote them."""
        saved = caller.cached
        answers = caller.answer(prepared)  # all stored: sends nothing
        caller.cached = saved
        label, _ = resolve_target(clf, answers[0].labels, self.options.target)
        saliency = normalise(occ.saliency([a.labels.get(label, 0.0) for a in answers]))
        masked = checks.deletion_images(occ.images[0], saliency)
        return caller.quote([self._prepare(clf, m, image, f"masked-{i}") for i, m in enumerate(masked)])

    @staticmethod
    def _prepare(clf: Classifier, pixels: np.ndarray, image: PreparedImage, tag: object) -> PreparedImage:
        from cloudderm.images import prepare

        limits = clf.image_limits()
        return prepare(
            pixels, max_bytes=limits.max_bytes, max_side=limits.max_side, source=f"{image.source} [{tag}]"
        )

    # ---- explaining -------------------------------------------------------------------------------
    def explain(self, pair: PairPlan) -> Explanation:
        """Make one planned explanation (calls happen here, for occlusion and its deletion check)."""
        if pair.method == "occlusion":
            return self._occlusion(pair)
        return self._gradient(pair)

    def _gradient(self, pair: PairPlan) -> Explanation:
        clf, image, method = pair.clf, pair.image, pair.method
        target = self.torch_target(clf)
        assert target is not None
        pil = image.to_pil()
        pixels = np.asarray(pil)
        probs = target.scores([pil])[0]
        label, score = resolve_target(clf, dict(zip(target.labels, probs.tolist())), self.options.target)
        index = target.labels.index(label)
        saliency, params = self._gradient_map(target, method, pil, index)
        exp = self._new(pair, params, label, score, saliency)
        if self.options.deletion:

            def score_fn(images: list[np.ndarray]) -> list[float]:
                return target.scores([Image.fromarray(a) for a in images])[:, index].tolist()

            exp.deletion = checks.run_deletion(pixels, saliency, score, score_fn)
        exp.focus = checks.focus(pixels, saliency)
        if self.options.sanity:
            exp.sanity = self._sanity(clf, target, method, pil, index, saliency)
        return exp

    def _gradient_map(
        self, target: TorchTarget, method: str, pil: Image.Image, index: int
    ) -> tuple[np.ndarray, dict[str, Any]]:
        fn = GRADIENT_METHODS[method]
        kwargs = {"steps": self.options.ig_steps} if method == "integrated-gradients" else {}
        raw, params = fn(target, target.tensor(pil), index, **kwargs)
        width, height = pil.size
        return normalise(place_in_box(normalise(raw), target.box(width, height), width, height)), params

    def _sanity(
        self,
        clf: Classifier,
        target: TorchTarget,
        method: str,
        pil: Image.Image,
        index: int,
        saliency: np.ndarray,
    ) -> dict[str, Any]:
        """Adebayo et al. 2018: re-make the map with the head and last block randomised; compare ranks."""
        if clf.name not in self._random:
            self._random[clf.name] = randomised(target)
        random_map, _ = self._gradient_map(self._random[clf.name], method, pil, index)
        rho = spearman(saliency, random_map)
        flag = None
        if rho >= SANITY_THRESHOLD:
            flag = (
                f"sanity: the {method} map barely changes when the top layers are randomised "
                f"(Spearman {rho:.2f} >= {SANITY_THRESHOLD}): it may not explain this model"
            )
        return {
            "check": "model randomisation (Adebayo et al. 2018)",
            "randomised_layers": list(target.top_layers),
            "spearman": round(rho, 4),
            "threshold": SANITY_THRESHOLD,
            "required": method == "gradcam",
            "flag": flag,
        }

    def _occlusion(self, pair: PairPlan) -> Explanation:
        clf, occ = pair.clf, pair.occlusion
        assert occ is not None
        caller = self.caller(clf)
        before = caller.calls, caller.cached, caller.cost_usd, caller.images_sent
        answers = caller.answer(pair.prepared)
        label, score = resolve_target(clf, answers[0].labels, self.options.target)
        saliency = normalise(occ.saliency([a.labels.get(label, 0.0) for a in answers]))
        exp = self._new(pair, occ.parameters, label, score, saliency)
        if self.options.deletion:

            def score_fn(images: list[np.ndarray]) -> list[float]:
                prepared = [self._prepare(clf, m, pair.image, f"masked-{i}") for i, m in enumerate(images)]
                return [a.labels.get(label, 0.0) for a in caller.answer(prepared)]

            exp.deletion = checks.run_deletion(occ.images[0], saliency, score, score_fn)
        exp.focus = checks.focus(occ.images[0], saliency)
        if self.options.sanity:
            exp.sanity = {
                "check": "model randomisation",
                "applicable": False,
                "reason": "a black-box provider's weights cannot be randomised",
                "flag": None,
            }
        exp.calls = caller.calls - before[0]
        exp.cached_calls = caller.cached - before[1]
        exp.images_sent = caller.images_sent - before[3]
        if caller.cost_usd is None or before[2] is None:
            exp.cost_usd = None
        else:
            exp.cost_usd = round(caller.cost_usd - before[2], 8)
        return exp

    def _new(
        self, pair: PairPlan, params: dict[str, Any], label: str, score: float, saliency: np.ndarray
    ) -> Explanation:
        return Explanation(
            provider=pair.clf.name,
            image=pair.image.source,
            image_sha256=pair.image.sha256,
            method=pair.method,
            parameters=params,
            target_label=label,
            target_canonical=pair.clf.taxonomy.canonical(label),
            target_score=float(score),
            saliency=saliency.astype(np.float32),
        )

    def close(self) -> None:
        self._targets.clear()
        self._random.clear()


def explain_one(
    clf: Classifier,
    image: Any,
    *,
    method: str = "auto",
    target: str | None = None,
    sanity: bool = False,
    max_calls: int | None = None,
    yes: bool = False,
    store: ResultStore | None = None,
) -> Explanation:
    """``Classifier.explain``: one image, one provider; the budget rules of the CLI (``Budget.check``)."""
    explainer = Explainer(ExplainOptions(method=method, target=target, sanity=sanity), store)
    budget = explainer.plan([(clf.prepare(image), clf)])
    budget.check(max_calls, yes)
    return explainer.explain(budget.pairs[0])
