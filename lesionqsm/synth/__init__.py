"""Synthetic longitudinal MS cohort made from MR physics."""
