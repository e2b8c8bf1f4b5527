"""nipype interfaces: thin wrappers around lesionqsm.qsm and lesionqsm.stats."""
