"""Path patterns and JSON templates of every derivative file lesionqsm writes."""
