"""Test support shipped with cloudderm: deterministic fakes, recorded HTTP fixtures and local emulators.

Nothing here is imported by ``import cloudderm``; it exists so users can test their own pipelines offline.
"""
