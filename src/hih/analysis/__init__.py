"""Ideal-condition quantization analysis, result tables, reports and plots."""
