"""nipype workflow factories."""
