"""ONNX Runtime session options the local ONNX adapters share (huggingface ``runtime: onnx``, azureml-onnx).

Why spinning is off: by default ONNX Runtime's worker threads busy-wait between operators and after each
run, so a session answering one image at a time burns CPU waiting (13.3 ms of CPU per MobileNetV2 image
against 8.1 ms with spinning off, for the same latency within noise). In a comparison the CPU it burns
is taken from the image decoding and the other providers' clients running beside it.
"""

from __future__ import annotations

from typing import Any

__all__ = ["session_options"]


def session_options(ort: Any, threads: int | None) -> Any:
    """``SessionOptions`` with spin-waiting off and ``threads`` intra-op threads (None: ORT's choice)."""
    options = ort.SessionOptions()
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.add_session_config_entry("session.inter_op.allow_spinning", "0")
    if threads:
        options.intra_op_num_threads = threads
    return options
