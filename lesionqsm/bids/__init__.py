"""BIDS input discovery and derivatives writing."""
