"""Saliency maps for any provider: gradients for local PyTorch models, occlusion for black boxes.

See docs/explain.md. Heavy parts (torch, captum) load only when a map is made.
"""

from __future__ import annotations

from cloudderm.explain.types import METHODS, Explanation

__all__ = ["METHODS", "Explanation"]
