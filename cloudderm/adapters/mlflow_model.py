"""MLflow models: a registered or logged pyfunc loaded in-process, or a served model over ``/invocations``.

Two ways to reach the same model, one adapter (reference: docs/mlflow.md):

* ``model_uri`` alone (``models:/name/version``, ``models:/name@alias``, ``runs:/<run>/<path>`` or a local
  folder): ``mlflow.pyfunc.load_model`` in this process, on first use (``warm_up``). **Loading a pyfunc
  executes the model's Python code** (its cloudpickled ``python_model`` or loader module): the governance
  card says so, and ``policy.trusted_model_uris`` can refuse any other URI before it is loaded.
* ``scoring_uri`` (``http://host:port/invocations`` of ``mlflow models serve``, or an Azure ML / SageMaker
  deployment of an MLflow model): JSON ``dataframe_split``, ``instances`` or ``inputs`` over HTTP. The
  signature then comes from ``model_uri`` when given (only ``MLmodel`` is read, no code runs) or from
  ``tensor_shape``/``tensor_dtype``/``image_column``.

Images are encoded per the model's input signature and answers decoded by ``_mlflow_io`` (both documented
there). Model facts (intended use, licence, training data) come from the ``MLmodel`` metadata, a logged
``model_card.md``/``README.md`` beside it, and for ``models:/`` URIs the registered model's and version's
description and tags. MLflow itself is imported lazily, so the adapter pickles and ``import cloudderm`` stays
light.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Sequence
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from cloudderm.adapters import _mlflow_io as mio
from cloudderm.adapters._net import is_loopback
from cloudderm.classifier import AdapterSettings, Classifier, RawResult
from cloudderm.core import PriceQuery
from cloudderm.errors import (
    ConfigError,
    MissingDependencyError,
    ProviderError,
    ProviderHTTPError,
    ProviderThrottled,
    ProviderTimeout,
    ResponseFormatError,
    install_hint,
)
from cloudderm.facts import GovernanceCard, ModelFacts, ServiceFacts
from cloudderm.images import PreparedImage

__all__ = ["CODE_EXECUTION_WARNING", "ImageDoesNotFit", "MlflowClassifier", "MlflowSettings"]

CODE_EXECUTION_WARNING = (
    "loading an MLflow pyfunc executes the model's Python code in this process: use only model URIs "
    "you trust (policy.trusted_model_uris can enforce that)"
)
DEFAULT_TIMEOUT_S = 60.0
_LOCAL_PROCESS = "MLflow pyfunc (in-process)"
_SERVED = "MLflow model server (/invocations)"


class ImageDoesNotFit(ProviderError):
    """An image does not fit the model's declared input; the message quotes the spec. Not retryable."""


class MlflowSettings(AdapterSettings):
    """Settings of the ``mlflow`` adapter (reference: docs/mlflow.md)."""

    adapter: str = "mlflow"
    model_uri: str | None = Field(default=None, min_length=1)
    scoring_uri: str | None = None
    endpoint_url: str | None = None  # loopback override: its scheme and host, scoring_uri's path
    tracking_uri: str | None = None
    registry_uri: str | None = None
    api_key: SecretStr | None = None
    request_format: Literal["auto", "dataframe_split", "instances", "inputs"] = "auto"
    image_column: str | None = None
    tensor_shape: list[int] | None = None
    tensor_dtype: str = "float32"
    fit: Literal["resize", "exact"] = "resize"
    float_scale: Literal["unit", "byte"] = "unit"
    labels: list[str] | None = None
    batch_size: int = Field(default=16, ge=1, le=1024)

    @model_validator(mode="after")
    def _one_target(self) -> MlflowSettings:
        if not self.model_uri and not self.scoring_uri and not self.endpoint_url:
            raise ValueError("set model_uri (models:/name/1, runs:/..., a folder) or scoring_uri")
        return self

    @field_validator("scoring_uri", "endpoint_url", "tracking_uri", "registry_uri")
    @classmethod
    def _no_credentials_in_uri(cls, value: str | None) -> str | None:
        if value and urlsplit(value).password:
            raise ValueError(
                "must not embed a password; use api_key: ${VAR} (scoring) or MLFLOW_TRACKING_USERNAME / "
                "MLFLOW_TRACKING_PASSWORD (tracking)"
            )
        return value

    @field_validator("scoring_uri", "endpoint_url")
    @classmethod
    def _http(cls, value: str | None) -> str | None:
        if value is not None:
            parts = urlsplit(value)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise ValueError("must be an http(s) URL such as http://127.0.0.1:5000/invocations")
            if parts.scheme == "http" and not is_loopback(value):
                raise ValueError("plain http is accepted only on loopback; use https")
        return value


class MlflowClassifier(Classifier[MlflowSettings]):
    """Classify images with an MLflow model, loaded in-process or called where it is served."""

    adapter = "mlflow"
    vendor = "local"  # in-process; service_facts() says "self-hosted" for a remote scoring_uri
    Settings = MlflowSettings

    def __init__(self, name: str, settings: MlflowSettings, **kwargs: Any) -> None:
        super().__init__(name, settings, **kwargs)
        self.max_batch_size = settings.batch_size
        self.timeout_s = settings.timeout_s or DEFAULT_TIMEOUT_S
        self._lock = threading.RLock()
        self._predict_lock = threading.Lock()
        self._model: Any = None
        self._spec: mio.InputSpec | None = None
        self._class_names: list[str] | None = None
        self._info: dict[str, Any] | None = None
        self._facts: ModelFacts | None = None
        self._session: Any = None
        self._local_copy: str | None = None

    # ---- identity and governance ----------------------------------------------------------------------
    @property
    def served(self) -> bool:
        return self.url is not None

    @property
    def url(self) -> str | None:
        """Where a served model is called: ``scoring_uri``, redirected to ``endpoint_url`` when set."""
        if self.settings.endpoint_url is None:
            return self.settings.scoring_uri
        base = urlsplit(self.settings.endpoint_url)
        path = (
            urlsplit(self.settings.scoring_uri).path if self.settings.scoring_uri else ""
        ) or "/invocations"
        return f"{base.scheme}://{base.netloc}{path}"

    @property
    def model_id(self) -> str:
        return self.settings.model_uri or str(self.url)

    def price_query(self) -> PriceQuery:
        """In-process or on loopback: this machine (no charge per call). Elsewhere: unknown, unless the
        provider's ``pricing:`` says (an MLflow server can run anywhere, at any price)."""
        return PriceQuery(label=_SERVED, local=not self.served or is_loopback(self.url))

    def service_facts(self) -> ServiceFacts:
        if not self.served:
            return ServiceFacts(
                service=_LOCAL_PROCESS, vendor="local", region="local", data_leaves_machine=False
            )
        local = is_loopback(self.url)
        return ServiceFacts(
            service=_SERVED, vendor="local" if local else "self-hosted", region="local" if local else None,
            data_leaves_machine=not local,
        )  # fmt: skip

    def model_facts(self) -> ModelFacts:
        """Facts from MLmodel metadata, a logged model card and the registry; no model code runs."""
        if self._facts is None:
            from cloudderm.adapters._mlflow_facts import read_facts

            info = self._model_info() if self.settings.model_uri else {}
            self._facts = read_facts(
                self.settings.model_uri,
                info,
                model_id=self.model_id,
                tracking_uri=self.settings.tracking_uri,
                registry_uri=self.settings.registry_uri,
            )
            if not self._facts.labels and self.settings.labels:
                self._facts = self._facts.model_copy(update={"labels": list(self.settings.labels)})
        return self._facts

    @property
    def governance(self) -> GovernanceCard:
        card = super().governance
        if not self.served and CODE_EXECUTION_WARNING not in card.warnings:
            card.warnings.append(CODE_EXECUTION_WARNING)
        return card

    @property
    def executes_code_from(self) -> str | None:
        """The model URI whose Python code loading runs here (read by ``policy.trusted_model_uris``)."""
        return None if self.served else self.settings.model_uri

    # ---- lifecycle ------------------------------------------------------------------------------------
    def warm_up(self) -> None:
        """Import MLflow, read the signature and load the model (in-process) now; no image is sent."""
        self._input_spec()
        if not self.served:
            self._loaded_model()

    def close(self) -> None:
        with self._lock:
            self._model = None
            session, self._session = self._session, None
        if session is not None:
            session.close()

    # ---- inference ------------------------------------------------------------------------------------
    def _infer(self, images: Sequence[PreparedImage]) -> list[RawResult]:
        spec = self._input_spec()
        sources = [(image.source or image.sha256[:12], image.data) for image in images]
        try:
            payload = (
                mio.encode_tensor(sources, spec, fit=self.settings.fit, float_scale=self.settings.float_scale)
                if spec.kind == "tensor"
                else mio.encode_column(sources, spec)
            )
        except mio.DoesNotFit as e:
            raise ImageDoesNotFit(str(e), provider=self.name, endpoint=self.model_id) from None
        output = self._call_served(spec, payload) if self.served else self._call_local(spec, payload)
        try:
            rows = mio.decode_output(output, len(images), self._class_names)
        except mio.UnknownShape as e:
            raise ResponseFormatError(
                f"unexpected model output: {e}; expected the model card's dict (predicted_class + "
                "class_probabilities), a DataFrame (one column per class, or label/score) or a 2-D array "
                "with class names",
                provider=self.name,
                endpoint=self.model_id,
            ) from None
        kind = "served" if self.served else "in-process"
        return [
            RawResult(
                labels=labels,
                model=self.model_id,
                details={"mlflow": kind, "input": spec.describe(), "truncated_labels": len(labels) == 1},
            )
            for labels in rows
        ]

    def _call_local(self, spec: mio.InputSpec, payload: Any) -> Any:
        model = self._loaded_model()
        if spec.kind == "column":
            import pandas as pd

            payload = pd.DataFrame({spec.name: payload})
        elif spec.name:
            payload = {spec.name: payload}
        try:
            with (
                self._predict_lock
            ):  # a pyfunc's code is not known to be thread-safe; batches carry the speed
                return model.predict(payload)
        except Exception as e:  # the model's own code raised: a permanent answer for these bytes
            raise ResponseFormatError(
                f"the pyfunc's predict raised {type(e).__name__}: {str(e)[:200]}",
                provider=self.name,
                endpoint=self.model_id,
            ) from None

    def _call_served(self, spec: mio.InputSpec, payload: Any) -> Any:
        import requests

        body = _request_body(spec, payload, self.settings.request_format)
        headers = {"Content-Type": "application/json"}
        if self.settings.api_key is not None:
            headers["Authorization"] = f"Bearer {self.settings.api_key.get_secret_value()}"
        url = str(self.url)
        try:
            response = self._http().post(url, json=body, headers=headers, timeout=self.timeout_s)
        except requests.Timeout:
            raise ProviderTimeout(
                f"no answer in {self.timeout_s:g} s", provider=self.name, endpoint=url
            ) from None
        except requests.ConnectionError as e:
            raise ProviderError(
                f"cannot connect ({type(e).__name__})", provider=self.name, endpoint=url, retryable=True
            ) from None
        request_id = response.headers.get("x-request-id")
        if response.status_code == 429:
            raise ProviderThrottled("HTTP 429", provider=self.name, endpoint=url, request_id=request_id)
        if response.status_code >= 400:
            raise ProviderHTTPError(
                response.text[:200], status=response.status_code, provider=self.name, endpoint=url,
                request_id=request_id,
            )  # fmt: skip
        try:
            answer = response.json()
        except ValueError:
            raise ResponseFormatError(
                "answer is not JSON", body=response.content, provider=self.name
            ) from None
        if isinstance(answer, dict) and "predictions" in answer:
            return answer["predictions"]
        return answer

    def _http(self) -> Any:
        with self._lock:
            if self._session is None:
                import requests

                self._session = requests.Session()
            return self._session

    # ---- MLflow, lazily -------------------------------------------------------------------------------
    def _location(self) -> str:
        """Where to load from: ``model_uri`` itself, or, when this provider names its own tracking or
        registry server, a local copy of the ``models:/`` / ``runs:/`` model fetched with explicit clients
        (MLflow's ``set_tracking_uri`` would change the whole process, environment variables included)."""
        uri = str(self.settings.model_uri)
        if not (self.settings.tracking_uri or self.settings.registry_uri) or not uri.startswith(
            ("models:/", "runs:/")
        ):
            return uri
        if self._local_copy is None or not os.path.isdir(self._local_copy):
            import_mlflow()
            from cloudderm.adapters._mlflow_facts import download, version_source

            source = (
                version_source(uri, self.settings.tracking_uri, self.settings.registry_uri)
                if uri.startswith("models:/")
                else uri
            )
            self._local_copy = download(source, self.settings.tracking_uri)
        return self._local_copy

    def _model_info(self) -> dict[str, Any]:
        """Signature and metadata from the ``MLmodel`` file only (no model code runs)."""
        if self._info is None:
            import_mlflow()
            from mlflow.models import get_model_info

            try:
                info = get_model_info(self._location())
            except Exception as e:
                raise ConfigError(
                    f"cannot read the MLmodel of {self.settings.model_uri!r} "
                    f"({type(e).__name__}: {str(e)[:200]})",
                    provider=self.name,
                    field="model_uri",
                ) from None
            self._info = {"signature": info.signature, "metadata": dict(info.metadata or {})}
        return self._info

    def _input_spec(self) -> mio.InputSpec:
        if self._spec is not None:
            return self._spec
        with self._lock:
            if self._spec is None:
                self._spec, self._class_names = self._resolve_spec()
            return self._spec

    def _resolve_spec(self) -> tuple[mio.InputSpec, list[str] | None]:
        signature = metadata = None
        if self.settings.model_uri:
            info = self._model_info()
            signature, metadata = info["signature"], info["metadata"]
        names = self.settings.labels or _class_names(signature, metadata)
        try:
            if self.settings.tensor_shape is not None:
                return mio.tensor_spec(self.settings.tensor_shape, self.settings.tensor_dtype), names
            if self.settings.image_column is not None and signature is None:
                return mio.InputSpec("column", "binary", name=self.settings.image_column), names
            if signature is None or signature.inputs is None:
                raise mio.SpecError(
                    "the model has no input signature: set tensor_shape (e.g. [-1, 28, 28]) and "
                    "tensor_dtype, or image_column"
                )
            return mio.spec_from_schema(signature.inputs, self.settings.image_column), names
        except mio.SpecError as e:
            raise ConfigError(str(e), provider=self.name, field="model_uri") from None

    def _loaded_model(self) -> Any:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    mlflow = import_mlflow()
                    try:
                        self._model = mlflow.pyfunc.load_model(self._location())
                    except Exception as e:
                        raise ConfigError(
                            f"cannot load {self.settings.model_uri!r} ({type(e).__name__}: {str(e)[:200]})",
                            provider=self.name,
                            field="model_uri",
                        ) from None
        return self._model


def import_mlflow() -> Any:
    """``mlflow.pyfunc`` (which needs pandas), or the install hint."""
    try:
        import mlflow
        import mlflow.pyfunc
    except ImportError as e:
        raise MissingDependencyError(
            install_hint("mlflow", f"MLflow and pandas ({e.name} is missing)")
        ) from e
    return mlflow


def _class_names(signature: Any, metadata: dict[str, Any] | None) -> list[str] | None:
    """Class names for array outputs: metadata ``class_names``/``labels``/``classes``, else output columns."""
    for key in ("class_names", "labels", "classes"):
        value = (metadata or {}).get(key)
        if isinstance(value, list) and value:
            return [str(v) for v in value]
    outputs = getattr(signature, "outputs", None)
    if outputs is not None and not outputs.is_tensor_spec():
        names = [str(c.name) for c in outputs.inputs if c.name]
        if len(names) > 1 and mio.CARD_PROBS not in names:
            return names
    return None


def _request_body(spec: mio.InputSpec, payload: Any, request_format: str) -> dict[str, Any]:
    """The JSON body ``/invocations`` accepts for this input (MLflow's scoring protocol)."""
    if spec.kind == "column":
        if request_format in ("auto", "dataframe_split"):
            return {"dataframe_split": {"columns": [spec.name], "data": [[_b64(v)] for v in payload]}}
        return {request_format: [{spec.name: _b64(v)} for v in payload]}
    data = payload.tolist()
    if spec.name:
        data = {spec.name: data}
    if request_format == "dataframe_split":
        raise ConfigError("request_format dataframe_split needs a column input; use inputs or instances")
    return {"instances" if request_format == "instances" else "inputs": data}


def _b64(value: bytes | str) -> str:
    import base64

    return value if isinstance(value, str) else base64.b64encode(value).decode("ascii")
