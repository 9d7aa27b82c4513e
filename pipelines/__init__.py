"""KFP pipeline definitions and their compile / submit / local-run entry points."""
