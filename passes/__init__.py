"""Passes over `ir.Module`s: small frozen dataclasses run by a checked pass manager."""
