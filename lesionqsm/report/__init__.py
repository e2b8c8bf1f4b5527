"""Figures and HTML report."""
